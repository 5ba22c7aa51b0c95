"""README's bad-input examples are the real lines: each command is run and its line compared."""

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli, run_entry

README = (ROOT / "README.md").read_text()
EXAMPLES = re.findall(r"^\$ python -m (src\.\w+) (.+)\n(error: .+)$", README, flags=re.M)


def test_readme_has_bad_input_examples():
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize(("module", "args", "line"), EXAMPLES, ids=[e[1][:40] for e in EXAMPLES])
def test_a_readme_example_gives_its_line(tmp_path, module, args, line):
    if "CPUs here" in line or "[0, 8]" in line and (os.cpu_count() or 1) != 2:
        pytest.skip("the bound depends on this machine's CPU count")
    arguments = shlex.split(args)  # as a shell would pass them
    if not any(a.startswith("hydra.run.dir=") for a in arguments):
        arguments.append(f"hydra.run.dir={tmp_path / 'run'}")
    status, err = run_entry(module, "logger=csv", *arguments)
    assert status == 2, err[-2000:]
    assert err.strip().splitlines()[-1] == line


def readme_commands() -> list[str]:
    """Every command in README's bash blocks, continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            command = " ".join(line.split(" #")[0].split())
            if command:
                commands.append(command)
    return commands


COMMANDS = readme_commands()
# What this 2-CPU machine cannot run as written (4 devices, GPUs, SLURM, two nodes): composed
# and printed with `--cfg job`; their multi-process form is run by tests/test_ddp.py.
COMPOSE_ONLY = ("trainer.devices=4", "hardware=ddp", "hydra/launcher=slurm")
# Shrunk to test size where a README command asks for more
SHRINK = {"trainer.max_epochs": "2", "n": "16", "data.batch_size": "16",
          "callbacks.snapshots.every_n_epochs": "1"}  # fmt: skip
APPENDED = {  # test-size settings, each unless the command sets the key itself
    "debug": "fast", "data.batch_size": "16", "logger": "csv",
    "callbacks.progress_bar.refresh_rate": "0", "trainer.limit_val_batches": "0",
}  # fmt: skip
OPTUNA = ["hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.n_startup_trials=2",
          "trainer.limit_val_batches=1.0", "trainer.check_val_every_n_epoch=1",
          "data.val_size=200", "model.metrics.domain_epochs=1"]  # fmt: skip


def test_every_readme_command_is_one_a_test_runs():
    """Each README command is a `python -m src.*` or `torchrun` line the slow test below runs,
    the "Extend it" example's (`PYTHONPATH=. python -m src.*`, tests/test_extend.py), a
    Makefile target, or W&B's own CLI (its uploads need a network)."""
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), flags=re.M))
    for command in COMMANDS:
        words = command.split()
        if words[0] == "make":
            assert words[1] in targets, command
        else:
            assert command.startswith(
                ("python -m src.", "torchrun ", "wandb ", "PYTHONPATH=. python -m src.")
            ), command
    assert sum(c.startswith("python -m src.") for c in COMMANDS) >= 25


def test_make_install_takes_the_cpu_wheels_from_torch_index():
    dry = ["make", "-n", "-W", "pyproject.toml", "install"]
    default = subprocess.run(dry, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "pip install --quiet -e '.[dev]'" in default and "index-url" not in default
    index = "https://download.pytorch.org/whl/cpu"
    cpu = subprocess.run([*dry, f"TORCH_INDEX={index}"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    assert f"pip install --quiet -e '.[dev]' --extra-index-url {index}" in cpu


@pytest.mark.slow  # ~30 tiny runs: every train, sweep, report, generate and evaluate command
def test_every_readme_command_runs(tmp_path):
    from tests.fixtures import write_celeba, write_folder

    data = write_celeba(tmp_path / "data")
    folder = write_folder(tmp_path / "pictures")
    places = {
        "outputs/train/my_run": str(tmp_path / "my_run"),
        "outputs/train/cond_run": str(tmp_path / "cond_run"),
        "outputs/train/big_run": str(tmp_path / "big_run"),
        "$HOME/pets": str(folder), "~/pets": str(folder), "~/pictures": str(folder),
        "outputs/shards/pictures64": str(tmp_path / "shards"),
        "outputs/train/streamed": str(tmp_path / "streamed"),
        "outputs/train/snapped": str(tmp_path / "snapped"),
        "stats/digits32.npz": str(tmp_path / "digits32.npz"),
    }  # fmt: skip
    sweep = reported = None
    for number, command in enumerate(COMMANDS):
        if command.startswith("torchrun "):
            command = "python -m src.train " + command.split(" -m src.train ", 1)[1]
        if not command.startswith("python -m src."):
            continue
        module, *args = shlex.split(command)[2:]
        for old, new in places.items():
            args = [a.replace(old, new) for a in args]
        if sweep:
            args = [sweep if a == "outputs/train/multiruns/<date>_<time>" else a for a in args]
        args = [f"data.root={data}" if a == "data.root=/data" else a for a in args]
        args = [f"{a.split('=')[0]}={SHRINK[a.split('=')[0]]}" if a.split("=")[0] in SHRINK
                else a for a in args]  # fmt: skip
        args = [f"out={tmp_path / 'out' / a[4:]}" if a.startswith("out=") else a for a in args]
        if module == "src.train":
            keys = {a.lstrip("+").split("=")[0] for a in args}
            args += [f"{k}={v}" for k, v in APPENDED.items() if k not in keys]
            if "hydra.run.dir" not in keys:
                args.append(f"hydra.run.dir={tmp_path / f'run_{number}'}")
            if "-m" in args or "hparams_search=optuna" in args:
                sweep = str(tmp_path / f"sweep_{number}")
                args.append(f"hydra.sweep.dir={sweep}")
            if "hparams_search=optuna" in args:
                args = [a for a in args if a != "trainer.limit_val_batches=0"] + OPTUNA
            if any(part in args for part in COMPOSE_ONLY):
                args = [a for a in args if a != "-m"] + ["--cfg", "job"]  # one, not a sweep
        print(module, *args, flush=True)  # which command, when one fails
        reported = args[0] if module == "src.report" else reported
        # several processes: Lightning starts the others from the command line, so a real one
        result = run_cli(
            *args, module=module, check=False, fresh_process="trainer.devices=2" in args
        )
        assert result.returncode == 0, f"{command}\n{' '.join(args)}\n{result.stderr[-3000:]}"
    assert (Path(reported) / "report.html").is_file()  # the report of the sweep before it
