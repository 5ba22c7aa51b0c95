"""Issue 40, a researcher's first day (round two): runs named in W&B, a resume that keeps the
run's own settings, every advertised logger, the headline command on a laptop, pictures to
look at, what a mistake leaves, smoke runs that train both networks, `make help`, the config
shown and logged, a sweep's summary."""

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from src.utils.checkpoint import load_checkpoint
from tests.conftest import ROOT, TINY, run_cli, run_entry, stopped_by_sigterm


def test_a_single_wandb_run_is_named_by_its_overrides(train_cli):
    run_dir = train_cli("logger=wandb", "optimizer.lr=3e-4")
    (events,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    log = events.read_bytes()
    assert b"optimizer.lr=3e-4" in log  # hydra.job.override_dirname (as typed), not `train`
    assert b"model.generator.ngf=8" in log


@pytest.mark.slow  # a run stopped by SIGTERM, then resumed by the hint it printed
def test_the_printed_resume_hint_continues_the_run_as_it_was_started(tmp_path):
    """Non-default epochs, lr, loss and widths: the hint alone (no other override) ends at the
    run's own trainer.max_epochs with its own lr and networks."""
    run_dir = tmp_path / "run"
    args = [*TINY, "logger=csv", "trainer.max_epochs=6", "trainer.limit_train_batches=4",
            "optimizer.lr=3e-4", "model/loss=hinge", f"hydra.run.dir={run_dir}"]  # fmt: skip
    stderr = stopped_by_sigterm(args, run_dir)
    hint = stderr.strip().splitlines()[-1].split("continue with ", 1)[1].split()
    resumed = subprocess.run([sys.executable, "-m", "src.train", *hint], cwd=ROOT,
                             capture_output=True, text=True)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert checkpoint["epoch"] == 5  # the sixth epoch: the run's own trainer.max_epochs
    config = checkpoint["config"]
    assert config["optimizer"]["lr"] == 3e-4 and config["model"]["generator"]["ngf"] == 8
    assert config["model"]["loss"]["_target_"].endswith("Hinge")


def test_a_resume_names_what_it_changes_and_keeps_the_rest(train_entry, tmp_path):
    assert train_entry("optimizer.lr=3e-4")[0] == 0
    result = run_cli("ckpt_path=auto", f"hydra.run.dir={tmp_path / 'run'}",
                     "trainer.max_epochs=2", "logger=csv")  # fmt: skip
    assert "resuming with trainer.max_epochs=2 (was 1)" in result.stdout + result.stderr
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert checkpoint["config"]["optimizer"]["lr"] == 3e-4 and checkpoint["epoch"] == 1


@pytest.mark.parametrize(("logger", "files"), [
    ("tensorboard", ["tensorboard/events.out.tfevents.*", "metrics.csv"]),
    ("many", ["tensorboard/events.out.tfevents.*", "wandb/offline-run-*", "metrics.csv"]),
])  # fmt: skip
def test_every_logger_the_readme_offers_is_installed_and_writes_its_files(train_cli, logger, files):
    run_dir = train_cli(f"logger={logger}")
    for pattern in files:
        assert list(run_dir.glob(pattern)), pattern
    if logger == "tensorboard":
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        (events,) = run_dir.glob("tensorboard/events.out.tfevents.*")
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        assert "train/loss_d" in accumulator.Tags()["scalars"]
        assert {"samples", "real"} <= set(accumulator.Tags()["images"])


@pytest.mark.slow  # four processes
def test_the_headline_command_runs_four_cpu_processes_on_a_small_machine(tmp_path):
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "src.train", "model=dcgan", "trainer.devices=4", "debug=fast",
         *TINY, "data.batch_size=8", "logger=csv", f"hydra.run.dir={run_dir}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "effective batch 8 x 4 device(s) = 32" in result.stdout + result.stderr
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 8


def test_a_mistake_before_training_is_written_into_the_runs_log(tmp_path):
    run_dir = tmp_path / "run"
    status, err = run_entry("src.train", "debug=fast", "data.batch_size=-4",
                            f"hydra.run.dir={run_dir}")  # fmt: skip
    assert status == 2
    log = (run_dir / "train.log").read_text()
    assert "error: config error: data.batch_size=-4: allowed: an integer >= 1" in log
    assert not (run_dir / "checkpoints").exists()


def test_a_smoke_run_steps_g_whatever_the_d_steps_per_g_step(tmp_path):
    """experiment=sngan_cifar10 (5 D steps per G step) with debug=fast on fake data: the smoke
    run is 5 batches, so G steps once."""
    run_dir = tmp_path / "run"
    status, err = run_entry(
        "src.train", "experiment=sngan_cifar10", "debug=fast", "data=fake", *TINY,
        "logger=csv", f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert status == 0, err[-2000:]
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    g_state = checkpoint["optimizer_states"][1]["state"]
    assert int(g_state[0]["step"]) == 1 and checkpoint["global_step"] == 6


def test_make_help_lists_the_targets():
    result = subprocess.run(["make", "help"], cwd=ROOT, capture_output=True, text=True)
    targets = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert {"train", "test", "help", "bench", "sweep", "smoke"} <= set(targets)


def test_the_composed_config_is_in_the_runs_log(train_entry, tmp_path):
    assert train_entry("optimizer.lr=3e-4")[0] == 0
    log = (tmp_path / "run" / "train.log").read_text()
    assert "The composed config:" in log and "lr: 0.0003" in log


def test_a_sweeps_last_line_sums_up_its_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(
        "-m", "debug=fast", *TINY, "logger=csv", "trainer.limit_train_batches=2",
        "optimized_metric=train/loss_g", "optimizer.lr=1e-4,2e-4", f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("sweep: 2 job(s), 2 done, 0 failed; best train/loss_g ")
    assert Path(line.rsplit(": ", 1)[1]).parent == sweep


def test_readme_and_stored_notebooks_name_no_machine_paths():
    """The stored outputs and the README are read on other machines: no /home/<user>, no /tmp
    run folder, no checkout path (paths are shown relative to the working directory or ~)."""
    machine = re.compile(r"(?<![\w.~$])/(?:home|root|tmp|Users|work)/[\w.-]+")
    texts = {"README.md": (ROOT / "README.md").read_text()}
    for name in ("01_quickstart.ipynb", "02_evaluate.ipynb"):
        notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        outputs = [o for c in notebook.cells for o in c.get("outputs", [])]
        texts[name] = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain"))
                                 for o in outputs)  # fmt: skip
    found = {name: machine.findall(text) for name, text in texts.items()}
    assert not any(found.values()), found
