"""Crashes and divergence: nothing is lost, runs continue exactly, failures are one line."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from src.callbacks.health import Health
from src.errors import ConfigError
from src.utils.checkpoint import load_checkpoint
from tests.conftest import ROOT, TINY, run_cli
from tests.helpers import (
    PoisonedDiscriminator,
    assert_same_state,
    fit_batches,
    resumed_and_straight,
    tiny_module,
)

DETERMINISTIC = ["trainer.deterministic=true", "logger=csv", "seed=3"]


@pytest.mark.slow  # SIGKILL and resume
def test_sigkilled_run_resumes_to_the_bitwise_same_weights(tmp_path):
    """Epochs of 5 batches; the crashed run dies inside epoch 2 and resumes from epoch 1's end."""
    common = [*TINY, *DETERMINISTIC, "trainer.max_epochs=3", "trainer.limit_train_batches=5"]
    straight = tmp_path / "straight"
    run_cli(*common, f"hydra.run.dir={straight}")

    crashed = tmp_path / "crashed"
    kill = ["+callbacks.kill._target_=tests.helpers.KillAt", "+callbacks.kill.batch=12"]
    result = run_cli(*common, *kill, f"hydra.run.dir={crashed}", check=False, fresh_process=True)
    assert result.returncode == -signal.SIGKILL
    assert load_checkpoint(crashed / "checkpoints" / "last.ckpt")["epoch"] == 1
    run_cli(*common, "ckpt_path=auto", f"hydra.run.dir={crashed}")

    a = load_checkpoint(straight / "checkpoints" / "last.ckpt")
    b = load_checkpoint(crashed / "checkpoints" / "last.ckpt")
    assert (a["epoch"], a["global_step"]) == (b["epoch"], b["global_step"]) == (2, 30)
    assert_same_state(a, b, optimizers=True)


@pytest.mark.slow  # three training runs
def test_resume_with_spectral_norm_lazy_r1_and_lecam_is_bitwise(train_entry, tmp_path):
    """Spectral norm's vectors, the lazy penalty's batch counter (every 3rd of 4 batches per
    epoch: the resumed epoch's first due step is its 2nd batch) and LeCam's averages all
    continue exactly: 1 epoch + resume to 2 equals 2 epochs, bitwise."""
    # optimizer=adam: no lr schedule, whose length would depend on max_epochs
    settings = ["model.generator.norm=spectral", "model.discriminator.norm=spectral",
                "model/regularizers=[r1,lecam]", "model.regularizers.r1.weight=1",
                "model.regularizers.r1.every=3", "optimizer=adam"]  # fmt: skip
    a, b = resumed_and_straight(train_entry, settings, tmp_path)
    assert a["global_step"] == b["global_step"] == 16
    assert "regularizers.lecam.ema" in a["state_dict"]
    assert any(k.endswith("_u") for k in a["state_dict"])
    assert_same_state(a, b)
    full, resumed = (penalty_column(tmp_path / n / "metrics.csv") for n in ("full", "resumed"))
    assert full[4:] == resumed  # the resumed epoch logged the same values


def penalty_column(metrics_csv: Path) -> list[str]:
    with open(metrics_csv, newline="") as file:
        return [row["train/r1"] for row in csv.DictReader(file) if row.get("train/loss_d")]


def test_ckpt_path_auto_starts_fresh_when_the_run_dir_has_no_checkpoint(train_cli):
    run_dir = train_cli("logger=csv", "ckpt_path=auto")
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


def test_deterministic_runs_give_identical_metrics(tmp_path):
    runs = [tmp_path / "a", tmp_path / "b"]
    for run_dir in runs:
        run_cli("debug=fast", *TINY, *DETERMINISTIC, f"hydra.run.dir={run_dir}")
    a, b = ((run_dir / "metrics.csv").read_text() for run_dir in runs)
    assert a == b and len(a.splitlines()) == 5


WRITER = """
import sys, torch
sys.path.insert(0, {root!r})
from src.utils.checkpoint import AtomicCheckpointIO
io = AtomicCheckpointIO()
for i in range(1_000_000):
    io.save_checkpoint({{"state_dict": {{"w": torch.full((8_000_000,), float(i))}}}}, {path!r})
"""


@pytest.mark.slow
def test_a_kill_during_saving_never_leaves_a_truncated_checkpoint(tmp_path):
    path = tmp_path / "last.ckpt"
    script = WRITER.format(root=str(ROOT), path=str(path))
    for delay in (0.0, 0.05, 0.1, 0.17, 0.23, 0.31):
        before = path.stat().st_mtime_ns if path.exists() else 0
        writer = subprocess.Popen([sys.executable, "-c", script])
        deadline = time.monotonic() + 120
        while (
            not path.exists() or path.stat().st_mtime_ns == before
        ) and time.monotonic() < deadline:
            time.sleep(0.01)  # until this writer has completed its first save
        time.sleep(delay)  # then kill it somewhere inside a later 32 MB write
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        value = load_checkpoint(path)["state_dict"]["w"]
        assert value.shape == (8_000_000,) and (value == value[0]).all()


class Payload:
    """A pickle that would create a file when loaded by an unsafe torch.load."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_carrying_code_is_refused_without_running_it(tmp_path):
    marker, evil = tmp_path / "pwned", tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": Payload(marker)}, evil)
    with pytest.raises(ConfigError, match="refused"):
        load_checkpoint(evil)
    result = run_cli(f"ckpt_path={evil}", f"hydra.run.dir={tmp_path / 'run'}", check=False)
    assert result.returncode == 2
    assert "ckpt_path=" in result.stderr and "refused" in result.stderr
    assert not marker.exists()
    torch.load(evil, weights_only=False)  # the control: an unsafe load does run it
    assert marker.exists()


@pytest.mark.slow  # a network timeout
def test_wandb_server_unreachable_falls_back_to_offline(tmp_path):
    """Online mode against a closed loopback port: training goes on, offline files are kept."""
    env = {
        "WANDB_MODE": "online",
        "WANDB_API_KEY": "0" * 40,
        "WANDB_BASE_URL": "http://127.0.0.1:9",  # discard port: nothing listens
    }
    run_dir = tmp_path / "run"
    result = run_cli(
        "debug=fast", *TINY, "logger.wandb.init_timeout=5", f"hydra.run.dir={run_dir}", env=env
    )
    assert "W&B could not start online" in result.stdout + result.stderr
    assert list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    with open(run_dir / "metrics.csv") as f:
        assert len(list(csv.DictReader(f))) == 4


def test_a_nonfinite_step_is_skipped_and_counted():
    """D's output is NaN on the first batch: neither network moves, the skip is counted."""
    module = tiny_module(discriminator=PoisonedDiscriminator(16, 1, ndf=4, poison_from=0))
    before = [p.detach().clone() for p in module.parameters()]
    health = Health()
    trainer = fit_batches(module, 1, callbacks=[health])
    assert all(torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))
    assert health.total.item() == 1
    for optimizer in trainer.optimizers:  # no Adam step was counted either
        assert all(s["step"].item() == 0 for s in optimizer.state.values())


def test_persistent_divergence_stops_the_run_with_one_line_and_keeps_the_checkpoint(tmp_path):
    """D turns NaN in epoch 1 (6 batches per epoch, 3 D forwards per batch)."""
    run_dir = tmp_path / "run"
    result = run_cli(
        *TINY, "logger=csv", "trainer.max_epochs=3", "trainer.limit_train_batches=6",
        "trainer.log_every_n_steps=2", "callbacks.health.max_nonfinite_steps=3",
        "model.discriminator._target_=tests.helpers.PoisonedDiscriminator",
        "+model.discriminator.poison_from=18", f"hydra.run.dir={run_dir}", check=False,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: training diverged: ")
    assert "callbacks.health.max_nonfinite_steps=3" in line
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert checkpoint["epoch"] == 0
    assert all(t.isfinite().all() for t in checkpoint["state_dict"].values())


def test_d_collapse_is_warned_once_per_episode(caplog):
    monitor = Health(max_nonfinite_steps=10, collapse_warn_steps=3)
    ok, collapsed = (torch.tensor(0.6), torch.tensor(0.4)), (torch.tensor(1.0), torch.tensor(0.0))
    for d_real, d_fake in [ok, collapsed, collapsed, collapsed, collapsed, ok, *[collapsed] * 3]:
        monitor.update(torch.tensor(False), d_real, d_fake)
        monitor.check(step=0, completed_epochs=0)
    warnings = [r for r in caplog.records if "D collapse" in r.getMessage()]
    assert len(warnings) == 2  # one per episode of >= 3 collapsed steps


SEPARATED = [  # G frozen, D fast: D separates real from generated images within ~20 batches
    "model/augmentation=none", "optimizer.generator.lr=1e-12", "optimizer.discriminator.lr=2e-3",
    "callbacks.health.collapse_warn_steps=20", "trainer.limit_train_batches=60",
    "trainer.log_every_n_steps=10",
]  # fmt: skip


@pytest.mark.parametrize(
    ("loss", "separated"),
    [("least_squares", True), ("least_squares", False),
     *(pytest.param(loss, True, marks=pytest.mark.slow) for loss in ("bce", "hinge", "rpgan"))],
)  # fmt: skip
def test_d_collapse_is_read_at_each_losss_own_boundary(train_entry, tmp_path, loss, separated):
    """Under least squares D's targets 1 and 0 are sigmoid 0.73 and 0.5: read as shares taken
    for real at the loss's own boundary, a D that separates warns under every loss, and the
    logged train/d_real and train/d_fake are those shares; a game that is played does not."""
    settings = SEPARATED if separated else SEPARATED[-2:]
    status, err = train_entry(f"model/loss={loss}", *settings)
    assert status == 0, err
    log = (tmp_path / "run" / "train.log").read_text()
    assert ("D collapse at batch" in log) == separated
    if separated:
        last = rows(tmp_path / "run")[-1]
        assert (float(last["train/d_real"]), float(last["train/d_fake"])) == (1.0, 0.0)


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))
