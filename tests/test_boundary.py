"""Issue 16: hostile and unusual inputs. Each gives one line and the right exit status, loses
nothing and writes nothing outside its run directory. In-process through the entry functions
(`run_entry`); a few real subprocesses prove the same end to end (test_validation.py)."""

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from src.errors import ConfigError
from src.utils.checkpoint import (
    CHECKSUM_KEY,
    AtomicCheckpointIO,
    load_checkpoint,
    payload_checksum,
)
from src.utils.hydra_callbacks import RunLock
from tests import fixtures
from tests.conftest import ROOT, TINY, run_entry, stopped_by_sigterm


def one_line(status: int, stderr: str, expected_status: int, *fragments: str) -> None:
    assert status == expected_status, stderr[-2000:]
    lines = [line for line in stderr.strip().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, stderr[-2000:]
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture
def trained(train_entry, tmp_path) -> Path:
    status, err = train_entry()
    assert status == 0, err
    return tmp_path / "run"


def rewrite(path: Path, edit) -> Path:
    """A checkpoint edited as an attacker would, checksum recomputed so only our checks stop it."""
    checkpoint = torch.load(path, weights_only=True)
    edit(checkpoint)
    checkpoint[CHECKSUM_KEY] = payload_checksum(checkpoint)
    out = path.with_name("edited.ckpt")
    torch.save(checkpoint, out)
    return out


# --- 1. a checkpoint's config never runs code ---------------------------------------------
@pytest.mark.parametrize("module", ["src.generate", "src.evaluate"])
@pytest.mark.parametrize("section", ["generator", "data"])
def test_a_stored_config_target_outside_the_project_is_refused(ckpt, tmp_path, module, section):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    evil = {"_target_": "builtins.open", "_args_": [str(victim), "w"]}

    def edit(checkpoint):
        if section == "generator":
            checkpoint["config"]["model"]["generator"] = evil
        else:
            checkpoint["config"]["data"] = evil

    edited = rewrite(ckpt, edit)
    status, err = run_entry(module, f"ckpt_path={edited}", f"out={tmp_path / 'out'}")
    if module == "src.generate" and section == "data":  # generate never builds the data
        assert status == 0, err
    else:
        one_line(status, err, 2, "builtins.open", "refused")
    assert victim.read_text() == "precious"


# --- 2. resuming keeps every metrics row --------------------------------------------------
def test_resume_and_rerun_keep_every_metrics_row(train_entry, trained):
    before = rows(trained)
    assert len(before) == 4
    status, err = train_entry("ckpt_path=auto", "trainer.max_epochs=2")
    assert status == 0, err
    after = rows(trained)
    assert after[:4] == before and len(after) == 8
    assert [int(r["step"]) for r in after] == sorted({int(r["step"]) for r in after})  # no dups
    status, err = train_entry("ckpt_path=auto", "trainer.max_epochs=2")  # a requeued, done job
    assert status == 0, err
    assert rows(trained) == after


def test_each_launch_keeps_its_config_and_overrides(train_entry, tmp_path):
    """A resume (ckpt_path=auto) keeps the first launch's .hydra files as launch_1/."""
    import yaml

    assert train_entry("optimizer.lr=3e-4")[0] == 0
    assert train_entry("ckpt_path=auto", "trainer.max_epochs=2")[0] == 0
    hydra_dir = tmp_path / "run" / ".hydra"
    first = yaml.safe_load((hydra_dir / "launch_1" / "overrides.yaml").read_text())
    assert "optimizer.lr=3e-4" in first and "ckpt_path=auto" not in first
    assert "ckpt_path=auto" in yaml.safe_load((hydra_dir / "overrides.yaml").read_text())
    assert (hydra_dir / "launch_1" / "config.yaml").is_file()


def test_rows_logged_past_the_resumed_checkpoint_are_replaced_not_duplicated(train_entry, tmp_path):
    """What a run killed mid-epoch leaves: rows past its last checkpoint. Resuming from an
    earlier checkpoint redoes those steps; each step must end up in metrics.csv once."""
    status, err = train_entry("trainer.max_epochs=2", "callbacks.model_checkpoint.save_top_k=-1")
    assert status == 0, err
    run_dir = tmp_path / "run"
    before = rows(run_dir)
    assert len(before) == 8
    first_epoch = run_dir / "checkpoints" / "epoch_000.ckpt"
    status, err = train_entry("trainer.max_epochs=2", f"ckpt_path={first_epoch}")
    assert status == 0, err
    after = rows(run_dir)
    assert [int(r["step"]) for r in after] == list(range(8))
    assert after[:4] == before[:4]


@pytest.mark.slow
def test_sigterm_saves_exits_143_and_resume_keeps_the_rows(tmp_path):
    run_dir = tmp_path / "run"
    args = [*TINY, "logger=csv", "trainer.max_epochs=200", "trainer.limit_train_batches=4",
            "trainer.log_every_n_steps=1", f"hydra.run.dir={run_dir}"]  # fmt: skip
    stderr = stopped_by_sigterm(args, run_dir)
    assert "stopped by SIGTERM" in stderr and "ckpt_path=auto" in stderr
    kept = rows(run_dir)
    assert len(kept) >= 12
    resumed = subprocess.run([sys.executable, "-m", "src.train", *args, "ckpt_path=auto",
                              "trainer.max_epochs=6"], cwd=ROOT,
                             capture_output=True, text=True)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = rows(run_dir)
    # The first 3 epochs' rows survive the stop and the resume; every step appears once.
    assert final[:12] == kept[:12]
    assert [int(r["step"]) for r in final] == list(range(24))


# --- 4. one run directory, one run ---------------------------------------------------------
def test_a_second_run_into_a_directory_in_use_is_refused(train_entry, tmp_path):
    run_dir = tmp_path / "run"
    with RunLock(run_dir):
        status, err = train_entry()
    one_line(status, err, 2, "hydra.run.dir", "in use by another run")
    assert not (run_dir / "metrics.csv").exists()
    (run_dir / ".lock").write_text("999999\n")  # left by a killed run: no flock is held
    status, err = train_entry()
    assert status == 0, err


def test_a_refused_second_run_leaves_the_running_runs_hydra_files(train_entry, tmp_path):
    """Hydra would write .hydra/ before the job starts, over the running run's provenance:
    src.train writes it only once it holds the lock."""
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    written = {n: f"{n} of the running run\n" for n in ("config.yaml", "overrides.yaml")}
    for name, text in written.items():
        (run_dir / ".hydra" / name).write_text(text)
    with RunLock(run_dir):
        status, err = train_entry("optimizer.lr=1e-3")
    one_line(status, err, 2, "in use by another run")
    for name, text in written.items():
        assert (run_dir / ".hydra" / name).read_text() == text


def test_orphaned_temp_checkpoints_are_removed(train_entry, tmp_path):
    checkpoints = tmp_path / "run" / "checkpoints"
    checkpoints.mkdir(parents=True)
    orphan = checkpoints / ".last.ckpt.999999.tmp"
    orphan.write_bytes(b"half a checkpoint")
    status, err = train_entry()
    assert status == 0, err
    assert not orphan.exists()


# --- 5. more D steps per G step than batches in an epoch -----------------------------------
def test_d_steps_per_g_step_counts_across_epochs(train_entry, tmp_path):
    status, err = train_entry(
        "model.d_steps_per_g_step=6", "trainer.max_epochs=3", "trainer.limit_train_batches=4"
    )
    assert status == 0, err
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    g_state = checkpoint["optimizer_states"][1]["state"]
    assert int(g_state[0]["step"]) == 2  # 12 batches of 4 per epoch: G stepped at 6 and 12


# --- 6. non-finite values and weights ---------------------------------------------------------
def test_nonfinite_weights_are_never_saved_and_the_last_checkpoint_stays(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)
    with pytest.warns(UserWarning, match="non-finite"):
        io.save_checkpoint({"state_dict": {"w": torch.tensor([1.0, float("nan")])}}, path)
    assert torch.equal(load_checkpoint(path)["state_dict"]["w"], torch.ones(3))


# --- 8/9. one line for every misuse -------------------------------------------------------------
TRAIN_CASES = [
    (["optimizer.lr=inf"], "optimizer.lr=inf"),
    (["optimizer.generator.weight_decay=inf"], "optimizer.generator.weight_decay=inf"),
    (["optimizer.discriminator.lr=0"], "optimizer.discriminator.lr=0"),
    (["optimizer.momentum=1.5"], "optimizer.momentum=1.5: allowed: a number in [0, 1)"),
    (["optimizer.generator.betas=[1.5,0.9]"], "Invalid beta parameter at index 0: 1.5"),
    (["optimizer=sgd", "optimizer.momentum=-0.5"], "optimizer.momentum=-0.5"),
    (["optimizer.generator._target_=torch.optim.NoSuchOptimizer"], "NoSuchOptimizer"),
    (["optimizer.scheduler.decay_start=1.5"], "optimizer.scheduler.decay_start=1.5"),
    (["data.batch_size=0"], "data.batch_size=0"),
    (["data.channels=2"], "data.channels=2"),
    (["optimizer.lr=nan"], "optimizer.lr=nan"),
    (["trainer.limit_train_batches=0"], "trainer.limit_train_batches=0"),
    (["seed=-1"], "seed=-1"),
    (["seed=99999999999999999999"], "seed="),
    (["trainer.devices=1.5"], "trainer.devices=1.5"),
    (["trainer.devices=abc"], "trainer.devices='abc'"),
    (["trainer.precision=64-true"], "trainer.precision='64-true'"),
    (["+trainer.gradient_clip_val=1.0"], "gradient_clip_val"),
    (["+trainer.accumulate_grad_batches=2"], "accumulate_grad_batches"),
    (["model.generator.latent_dim=0"], "model.generator.latent_dim=0"),
    (["model.generator.ngf=-8"], "model.generator.ngf=-8"),
    (["model.discriminator.ndf=0"], "model.discriminator.ndf=0"),
    (["model.discriminator.ndf=wide"], "model.discriminator.ndf='wide'"),
    (["model/ema=average", "model.ema.decay=abc"], "model.ema.decay='abc'"),
    (["+model.generator.colour=1"], "colour"),
    (["model.num_fixed_noise=0"], "model.num_fixed_noise=0"),
    (["model.num_fixed_noise=1000000000"], "model.num_fixed_noise=1000000000: allowed: an int"),
    (["data=fake", "data.num_images=1000000000000"], "data.num_images=1000000000000: allowed"),
    (["data=fake", "data.num_images=many"], "data.num_images='many'"),
    (["optimizer.lr=${oc.env:CONVGAN_NO_SUCH_VARIABLE}"], "CONVGAN_NO_SUCH_VARIABLE"),
]


@pytest.mark.parametrize(("overrides", "fragment"), TRAIN_CASES, ids=lambda c: str(c)[:40])
def test_train_misuse_gives_one_line_and_status_2(train_entry, tmp_path, overrides, fragment):
    status, err = train_entry(*overrides)
    one_line(status, err, 2, fragment)
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()


def test_an_unwritable_cache_dir_is_one_line(train_entry, tmp_path):
    root = fixtures.write_folder(tmp_path / "images", n=8)
    status, err = train_entry("data=folder", f"data.root={root}", "data.image_size=32",
                              "data.num_workers=0", "data.cache_dir=/proc/convgan")  # fmt: skip
    one_line(status, err, 2, "data.cache_dir='/proc/convgan'", "not writable")


def test_a_filesystem_root_is_not_a_dataset(train_entry):
    status, err = train_entry("data=folder", "data.root=/", "data.image_size=32")
    one_line(status, err, 2, "data.root='/'", "not a dataset folder")
    assert not Path("/.convgan_cache").exists()


def test_a_folder_of_only_broken_images_is_one_line(train_entry, tmp_path):
    root = tmp_path / "broken"
    root.mkdir()
    for i in range(4):
        (root / f"{i}.png").write_bytes(b"" if i % 2 else b"\x89PNG\r\n\x1a\n garbage")
    status, err = train_entry("data=folder", f"data.root={root}", "data.image_size=32")
    one_line(status, err, 2, "data.root")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """One tiny run's last.ckpt, shared by the tests that only read it (or edit copies)."""
    run_dir = tmp_path_factory.mktemp("shared") / "run"
    status, err = run_entry(
        "src.train", "debug=fast", *TINY, "logger=csv", f"hydra.run.dir={run_dir}"
    )
    assert status == 0, err
    return run_dir / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["n=0"], "n=0"),
        (["n=1000000000"], "n=1000000000"),
        (["nrow=0"], "nrow=0"),
        (["interpolation_steps=0"], "interpolation_steps=0"),
        (["seed=abc"], "seed='abc'"),
    ],
)
def test_generate_misuse(ckpt, tmp_path, args, fragment):
    status, err = run_entry("src.generate", f"ckpt_path={ckpt}", f"out={tmp_path / 'g'}", *args)
    one_line(status, err, 2, fragment)
    assert not (tmp_path / "g").exists()


def test_generate_needs_a_checkpoint_and_a_directory(ckpt, tmp_path):
    one_line(*run_entry("src.generate"), 2, "ckpt_path")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    one_line(*run_entry("src.generate", f"ckpt_path={ckpt}", f"out={a_file}"), 2, "is a file")


def test_evaluate_checks_its_output_before_the_work(ckpt, tmp_path):
    one_line(*run_entry("src.evaluate", f"ckpt_path={ckpt}", "num_real=0"), 2, "num_real=0")
    blocked = tmp_path / "file.txt"
    blocked.write_text("x")
    status, err = run_entry("src.evaluate", f"ckpt_path={ckpt}", f"out={blocked}/m.json")
    one_line(status, err, 2, "out=")

    def no_data(checkpoint):
        del checkpoint["config"]["data"]

    edited = rewrite(ckpt, no_data)
    one_line(*run_entry("src.evaluate", f"ckpt_path={edited}"), 2, "no data section")


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["model.generator.ngf=16"], "model.generator.ngf=16: the checkpoint was trained with G's"),
        (["model.generator.latent_components=0"], "latent_components=0: the checkpoint was tra"),
        (["model=resnet"], "model.generator._target_='src.models.resnet.Generator': the chec"),
        (["data.image_size=64"], "data.image_size=64: the checkpoint was trained with the imag"),
        (["optimizer=sgd"], "optimizer.generator='SGD': the checkpoint was trained with Adam"),
    ],
)
def test_resuming_into_another_model_is_one_line(train_entry, ckpt, tmp_path, overrides, fragment):
    status, err = train_entry(f"ckpt_path={ckpt}", *overrides, run_dir=tmp_path / "other")
    one_line(status, err, 2, fragment)


# --- checkpoints: checksum and fuzzing ------------------------------------------------------
def fuzzed(data: bytes, rng: random.Random) -> bytes:
    kind = rng.choice(["flip", "truncate", "zero"])
    data = bytearray(data)
    if kind == "truncate":
        return bytes(data[: rng.randrange(len(data))])
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(data))
        data[i] = data[i] ^ (1 << rng.randrange(8)) if kind == "flip" else 0
    return bytes(data)


def fuzz(ckpt: Path, tmp_path: Path, cases: int, seed: int) -> None:
    """Every damaged copy either loads to exactly the original or is refused as a ConfigError."""
    original, data = load_checkpoint(ckpt), ckpt.read_bytes()
    rng = random.Random(seed)
    for case in range(cases):
        path = tmp_path / f"fuzz_{case}.ckpt"
        path.write_bytes(fuzzed(data, rng))
        try:
            loaded = load_checkpoint(path)
        except ConfigError:
            continue
        assert payload_checksum(loaded) == payload_checksum(original), f"case {case}"


def test_damaged_checkpoints_are_refused_or_identical(ckpt, tmp_path):
    fuzz(ckpt, tmp_path, cases=60, seed=0)


@pytest.mark.slow
def test_checkpoint_fuzzer_long(ckpt, tmp_path):
    fuzz(ckpt, tmp_path, cases=600, seed=1)


def test_a_type_swapped_state_dict_entry_is_refused(ckpt, tmp_path):
    checkpoint = torch.load(ckpt, weights_only=True)
    name = next(iter(checkpoint["state_dict"]))
    checkpoint["state_dict"][name] = "not a tensor"
    torch.save(checkpoint, tmp_path / "swapped.ckpt")  # checksum left as it was
    with pytest.raises(ConfigError, match="checksum mismatch"):
        load_checkpoint(tmp_path / "swapped.ckpt")


def nan_weight(c):
    name = next(k for k in c["state_dict"] if k.startswith("generator.") and "weight" in k)
    c["state_dict"][name] = torch.full_like(c["state_dict"][name], float("nan"))


def int_weight(c):
    name = next(k for k in c["state_dict"] if k.startswith("generator.") and "weight" in k)
    c["state_dict"][name] = c["state_dict"][name].long()


def reshaped_weight(c):
    name = next(k for k in c["state_dict"] if k.startswith("generator.") and "weight" in k)
    c["state_dict"][name] = c["state_dict"][name].flatten()


def missing_weight(c):
    del c["state_dict"][next(k for k in c["state_dict"] if k.startswith("generator."))]


def no_optimizer_states(c):
    del c["optimizer_states"]


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [(nan_weight, "non-finite values"), (int_weight, "is torch.int64, the model needs"),
     (reshaped_weight, "has shape"), (missing_weight, "is missing from the checkpoint"),
     (no_optimizer_states, "no optimizer states")],
    ids=lambda e: getattr(e, "__name__", "")[:20],
)  # fmt: skip
@pytest.mark.parametrize("module", ["src.generate", "src.evaluate", "src.train"])
def test_checkpoint_values_are_checked_on_load(ckpt, tmp_path, train_entry, module, edit, fragment):
    """NaN, integer, reshaped or missing weights and missing training state: one line, exit 2,
    for generate, evaluate and resume alike (the checksum recomputed, as an editor would)."""
    edited = rewrite(ckpt, edit)
    if module == "src.train":
        status, err = train_entry(f"ckpt_path={edited}", run_dir=tmp_path / "resumed")
    elif edit is no_optimizer_states:  # sampling needs no optimizer
        return
    else:
        status, err = run_entry(module, f"ckpt_path={edited}", f"out={tmp_path / 'out'}")
    one_line(status, err, 2, fragment)


# --- the property test: invalid values generated per config key -----------------------------
def numeric_keys() -> list[str]:
    """Every user-facing key whose value is a number (data's shape keys come from the data)."""
    from omegaconf import DictConfig, OmegaConf

    from src.train import compose_config

    cfg = compose_config(["debug=fast"], "/tmp/convgan-schema")
    keys = ["seed"]

    def visit(node: DictConfig, path: str) -> None:
        for key in node:
            value, where = node[key], f"{path}.{key}"
            if isinstance(value, DictConfig) and OmegaConf.is_interpolation(node, key):
                continue  # a node written elsewhere (model.optimizer_g): checked there
            if isinstance(value, DictConfig):
                visit(value, where)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                keys.append(where)

    for group in ("optimizer", "model", "data", "trainer", "callbacks"):
        visit(cfg[group], group)
    shaped = ("image_size", "channels", ".seed")  # interpolated from data / seed
    return [k for k in keys if not k.endswith(shaped)]


# each a value of the wrong type, null, out of range, an interpolation loop
INVALID = ["'abc'", "null", "-1", "${{{key}}}"]
# values Lightning documents for these keys: -1 no limit / keep all / every batch; null the
# default (all batches, Lightning's sanity steps, no epoch interval)
MEANINGFUL = {
    "trainer.max_epochs": {"-1"},
    "trainer.max_steps": {"-1"},
    "trainer.limit_train_batches": {"null"},
    "trainer.limit_val_batches": {"null"},
    "trainer.check_val_every_n_epoch": {"null"},
    "trainer.num_sanity_val_steps": {"null", "-1"},
    "callbacks.model_checkpoint.save_top_k": {"-1"},
    "callbacks.model_checkpoint.every_n_epochs": {"null"},
    "callbacks.progress_bar.refresh_rate": {"-1"},
    "model.augmentation.target": {"null"},  # a fixed p (model.augmentation.p)
}


# every key in CI (the slow suite); every 4th in the default suite, which must stay quick
@pytest.mark.parametrize("key", [
    pytest.param(key, marks=() if i % 4 == 0 else pytest.mark.slow)
    for i, key in enumerate(numeric_keys())
])  # fmt: skip
def test_property_every_numeric_key_refuses_bad_values_in_one_line(tmp_path, key):
    """One line naming the key, exit 2, nothing written beside the run: src.train's entry
    function in this process (`test_one_misuse_end_to_end_in_a_real_process` shows the same
    boundary on the real command line)."""
    from src.cli import one_line as boundary
    from src.train import compose_config, train

    for value in INVALID:
        if value in MEANINGFUL.get(key, ()):
            continue
        run_dir = tmp_path / f"run_{INVALID.index(value)}"
        overrides = ["debug=fast", *TINY, "logger=csv", f"{key}={value.format(key=key)}"]
        with pytest.raises(Exception) as caught:  # noqa: PT011 (the boundary sorts them)
            train(compose_config(overrides, str(run_dir)))
        line, status = boundary(caught.value)
        assert status == 2 and key in line and "\n" not in line, (value, line)
        assert not list(tmp_path.glob("*/checkpoints/*"))
        assert {p.name for p in tmp_path.iterdir()} <= {f"run_{i}" for i in range(len(INVALID))}


def test_one_misuse_end_to_end_in_a_real_process(tmp_path):
    """The in-process tables above hold for the real command line too (one example)."""
    result = subprocess.run(
        [sys.executable, "-m", "src.train", *TINY, "optimizer.lr=inf", "logger=csv",
         f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "WANDB_MODE": "offline"},
    )  # fmt: skip
    one_line(result.returncode, result.stderr, 2, "optimizer.lr=inf")


# --- the file system: where a run writes ---------------------------------------------------
def read_only_dir() -> Path:
    """A directory this process cannot write, even as root (a read-only file system)."""
    for candidate in (Path("/proc/sys"), Path("/sys")):
        if candidate.is_dir() and not os.access(candidate, os.W_OK):
            return candidate
    pytest.skip("no read-only file system here")


@pytest.mark.parametrize("kind", ["read-only", "a file", "under a file", "dangling link"])
def test_a_run_directory_it_cannot_use_is_one_line_before_hydra_starts(tmp_path, kind):
    (tmp_path / "file").write_text("precious\n")
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    target = {
        "read-only": read_only_dir() / "convgan_run", "a file": tmp_path / "file",
        "under a file": tmp_path / "file" / "run", "dangling link": tmp_path / "link",
    }[kind]  # fmt: skip
    status, err = run_entry("src.train", "debug=fast", *TINY, f"hydra.run.dir={target}")
    fragment = {"read-only": "is not writable", "a file": "is a file", "under a file": "is a file",
                "dangling link": "dangling symbolic link"}[kind]  # fmt: skip
    one_line(status, err, 2, "hydra.run.dir=", fragment)
    assert (tmp_path / "file").read_text() == "precious\n" and not (tmp_path / "nowhere").exists()


@pytest.mark.slow  # a fresh interpreter under a file size limit
def test_a_full_disk_is_one_line_naming_the_file_and_nothing_written_is_lost(tmp_path):
    """A file size limit (ulimit -f) stops the first checkpoint write: exit 2 naming it, no
    temp file left, the rows and grid written before it intact."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))

    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "src.train", "debug=fast", "logger=csv",
         "callbacks.progress_bar.refresh_rate=0", f"hydra.run.dir={run_dir}"],
        cwd=ROOT, capture_output=True, text=True, preexec_fn=limit, timeout=300,
    )  # fmt: skip
    one_line(result.returncode, result.stderr, 2, "file-system error:", ".ckpt", "File too large")
    assert len(rows(run_dir)) == 4 and (run_dir / "samples" / "epoch_000.png").is_file()
    assert not list((run_dir / "checkpoints").iterdir())  # no half-written or temp file


def test_an_unwritable_wandb_dir_turns_wandb_off_and_training_goes_on(train_entry, tmp_path):
    where = read_only_dir() / "convgan_wandb"
    status, err = train_entry("logger=wandb", f"logger.wandb.save_dir={where}")
    assert status == 0, err
    assert len(rows(tmp_path / "run")) == 4  # the CSV logger still recorded every step


@pytest.mark.slow  # two fresh interpreters
def test_nothing_is_written_to_home_or_the_temp_directory(tmp_path):
    """A default-logger (W&B offline) training run and src.generate, with HOME and TMPDIR
    empty directories: W&B's files stay in the run; torch's and matplotlib's caches go to
    convgan's own cache directory (~/.cache/convgan, as the domain model's), nothing else."""
    home, temp, run_dir = tmp_path / "home", tmp_path / "tmp", tmp_path / "run"
    home.mkdir()
    temp.mkdir()
    env = {**os.environ, "HOME": str(home), "TMPDIR": str(temp), "WANDB_MODE": "offline"}
    for variable in ("TORCHINDUCTOR_CACHE_DIR", "MPLCONFIGDIR", "XDG_CACHE_HOME", "WANDB_DIR",
                     "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):  # fmt: skip
        env.pop(variable, None)
    for args in (
        ["-m", "src.train", "debug=fast", *TINY, f"hydra.run.dir={run_dir}"],
        ["-m", "src.generate", f"ckpt_path={run_dir}/checkpoints/last.ckpt", "n=8"],
    ):
        result = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=300)  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
    ours = home / ".cache" / "convgan"
    assert [p for p in home.rglob("*") if not ours.is_relative_to(p) and not
            p.is_relative_to(ours)] == []  # fmt: skip
    assert list(temp.rglob("*")) == []
    assert list((run_dir / "wandb").glob("offline-run-*"))


@pytest.mark.slow  # a real process and its loader workers
def test_no_loader_worker_outlives_a_sigtermed_run(tmp_path):
    """Streaming data with worker processes: after SIGTERM the run exits 143 and every child
    process it had is gone."""
    root = fixtures.write_folder(tmp_path / "images", n=40)
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "src.train", *TINY, "logger=csv", "data=folder",
            f"data.root={root}", "data.image_size=16", "data.resident=false",
            "data.num_workers=2", "trainer.max_epochs=500", f"hydra.run.dir={run_dir}"]  # fmt: skip
    process = subprocess.Popen(args, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline, children = time.time() + 240, []
    # training (a checkpoint written) with its workers up: on a loaded machine the first
    # checkpoint can appear while the workers of the next epoch are not read back yet
    while time.time() < deadline and not (
        (run_dir / "checkpoints" / "epoch_001.ckpt").exists() and children
    ):
        time.sleep(0.2)
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    assert children, "the loader workers should be running"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr[-2000:]
    time.sleep(1)
    assert [pid for pid in children if Path(f"/proc/{pid}").exists()] == []


def test_a_missing_inception_file_is_said_before_the_domain_model_trains(ckpt, tmp_path):
    cache = tmp_path / "cache"
    status, err = run_entry(
        "src.evaluate", f"ckpt_path={ckpt}", f"inception_weights={tmp_path}/none.pth",
        f"cache_dir={cache}", f"out={tmp_path / 'm.json'}",
    )  # fmt: skip
    assert status == 2 and "inception_weights=" in err and "no such file" in err
    assert not cache.exists() and not (tmp_path / "m.json").exists()
