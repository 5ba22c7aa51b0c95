"""A run stopped anywhere in an epoch continues with the next unseen batch (issue 36): stopped
by `trainer.max_steps`, SIGKILLed between step-interval checkpoints, stopped by SIGTERM or by
SIGUSR1 (a cluster's warning before its time limit, with the SLURM requeue), then resumed by
`ckpt_path=auto`, it ends with bitwise the G, D, optimizer and lr-schedule states of the run
that was never stopped; on the resident digits, a DataLoader path, and 2 processes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from src.utils.checkpoint import load_checkpoint
from tests import fixtures
from tests.conftest import ROOT, run_cli
from tests.helpers import assert_same_state

# 2 epochs of 8 batches of the digits (16 D and 16 G steps), small networks
RUN = ["model.generator.ngf=8", "model.discriminator.ndf=8", "data.batch_size=32",
       "trainer.limit_train_batches=8", "callbacks.progress_bar.refresh_rate=0",
       "trainer.limit_val_batches=0", "logger=csv", "seed=3", "trainer.max_epochs=2"]  # fmt: skip
STEPS = 2 * 2 * 8
FOLDER = ["data=folder", "data.image_size=16", "data.channels=1", "data.resident=false",
          "data.batch_size=8", "data.num_workers=2"]  # fmt: skip
TWO = ["hardware=cpu", "trainer.devices=2"]
LONG = ["data.batch_size=16", "trainer.limit_train_batches=60"]  # time to signal mid-epoch


def last(run_dir: Path) -> dict:
    return load_checkpoint(run_dir / "checkpoints" / "last.ckpt")


def assert_same_run(a: dict, b: dict) -> None:
    """Weights, buffers, optimizer and lr-schedule states, step and data position: equal."""
    assert a["global_step"] == b["global_step"]
    assert_same_state(a, b, optimizers=True)
    assert a["lr_schedulers"] == b["lr_schedulers"]
    assert torch.equal(a["rng_states"]["torch"], b["rng_states"]["torch"])


def straight(tmp_path_factory, *settings: str, fresh_process: bool = False) -> dict:
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    run_cli(*RUN, *settings, f"hydra.run.dir={run_dir}", fresh_process=fresh_process)
    return last(run_dir)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> dict:
    return straight(tmp_path_factory)


def test_a_run_stopped_by_max_steps_resumes_where_it_stopped(digits_run, tmp_path):
    """Lightning ends an epoch stopped by max_steps with its end-of-epoch hooks and marks it
    done; the saved data position reopens it, and max_steps does not reshape the lr decay."""
    run_dir = tmp_path / "run"
    run_cli(*RUN, "trainer.max_steps=9", f"hydra.run.dir={run_dir}")
    stopped = last(run_dir)
    assert stopped["global_step"] == 10
    assert stopped["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": 0, "batches": 5}
    ]
    resumed = run_cli(*RUN, "ckpt_path=auto", "trainer.max_steps=-1", f"hydra.run.dir={run_dir}")
    assert "trainer.max_steps" in resumed.stderr + resumed.stdout  # the changed override, said
    assert_same_run(digits_run, last(run_dir))


@pytest.mark.slow  # two more runs
def test_step_and_time_intervals_are_ordinary_keys_and_the_final_step_is_saved(
    digits_run, tmp_path
):
    """every_n_train_steps (Lightning saves nothing at the end then; ours does) and
    train_time_interval through Hydra's own `_target_` for a timedelta."""
    run_dir = tmp_path / "steps"
    run_cli(*RUN, "callbacks.model_checkpoint.every_n_train_steps=5", f"hydra.run.dir={run_dir}")
    assert_same_run(digits_run, last(run_dir))
    run_dir = tmp_path / "time"
    run_cli(*RUN, "callbacks.model_checkpoint.train_time_interval="
            "{_target_:datetime.timedelta,seconds:1}", f"hydra.run.dir={run_dir}")  # fmt: skip
    assert last(run_dir)["global_step"] == STEPS


def start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "src.train", *args], cwd=ROOT, stderr=subprocess.PIPE,
        text=True, start_new_session=True, env={**os.environ, **(env or {})},
    )  # fmt: skip


def wait_for(path: Path, process: subprocess.Popen) -> None:
    deadline = time.time() + 300
    while not path.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert path.exists(), process.stderr.read()[-3000:] if process.poll() is not None else path


@pytest.mark.slow  # a run SIGKILLed in a fresh interpreter (and its DDP peer), then resumed
@pytest.mark.parametrize(
    "where", ["digits", "digits, 2 processes", "folder through DataLoader workers",
              "streamed shards, 2 processes"],
)  # fmt: skip
def test_a_run_killed_anywhere_resumes_bitwise(tmp_path_factory, tmp_path, where):
    """SIGKILL (no handler runs) at a moment after the first step-interval checkpoint; the
    resume starts from that mid-epoch last.ckpt."""
    settings = {"digits": [], "digits, 2 processes": TWO}.get(where)
    if where.startswith("streamed"):
        shards = tmp_path / "shards"
        run_cli(f"out={shards}", "workers=1", module="src.prepare")
        settings = [*TWO, "data=streaming", f"data.root={shards}", "data.num_workers=1"]
    elif settings is None:
        root = fixtures.write_folder(tmp_path / "images", n=70)
        (root / "b" / "corrupt.png").unlink(missing_ok=True)
        settings = [*FOLDER, f"data.root={root}"]
    expected = straight(tmp_path_factory, *settings, fresh_process=bool(settings))
    run_dir = tmp_path / "run"
    args = [*RUN, *settings, "callbacks.model_checkpoint.every_n_train_steps=6",
            f"hydra.run.dir={run_dir}"]  # fmt: skip
    process = start(args)
    wait_for(run_dir / "checkpoints" / "last.ckpt", process)
    time.sleep(0.3)
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    killed = last(run_dir)["global_step"]
    assert 0 < killed < expected["global_step"]
    run_cli(*args, "ckpt_path=auto", fresh_process=True)
    assert_same_run(expected, last(run_dir))


@pytest.fixture(scope="module")
def long_run(tmp_path_factory) -> dict:
    return straight(tmp_path_factory, *LONG)


@pytest.mark.slow  # signals to a fresh interpreter
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_sigterm_and_sigusr1_save_the_exact_position_and_requeue_on_slurm(long_run, tmp_path, sig):
    """Stopped after the batch in progress, last.ckpt written there (exit 128 + signal); under
    SLURM, SIGUSR1 also requeues the job (`scontrol requeue <id>`, a stand-in on PATH)."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "scontrol.calls"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "scontrol").chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "4242"}
    run_dir = tmp_path / "run"
    args = [*RUN, *LONG, "callbacks.model_checkpoint.every_n_train_steps=20",
            f"hydra.run.dir={run_dir}"]  # fmt: skip
    process = start(args, env)
    wait_for(run_dir / "checkpoints" / "last.ckpt", process)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + sig, stderr[-3000:]
    name = signal.Signals(sig).name
    assert f"error: stopped by {name}" in stderr and "ckpt_path=auto" in stderr
    stopped = last(run_dir)
    assert f"at step {stopped['global_step']};" in stderr  # saved where it stopped
    if sig == signal.SIGUSR1:
        assert calls.read_text() == "requeue 4242\n" and "SLURM job 4242 requeued" in stderr
    else:
        assert not calls.exists()
    run_cli(*args, "ckpt_path=auto", fresh_process=True)
    assert_same_run(long_run, last(run_dir))
