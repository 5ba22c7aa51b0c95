import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs one worker per core (pytest -n)
    # One thread each: the workers already fill the cores, and the tiny test networks gain
    # nothing from a second thread (the default suite took 1.7x longer with two per worker).
    # Set before torch is imported, so subprocesses started by the tests inherit it too.
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

# the decoded-data and extractor caches of the tests stay out of the user's ~/.cache
os.environ.setdefault("XDG_CACHE_HOME", tempfile.mkdtemp(prefix="convgan-test-cache-"))

ROOT = Path(__file__).resolve().parents[1]
# Small networks and batches so each CLI run takes seconds on a 2-core CPU.
TINY = [
    "model.generator.ngf=8",
    "model.discriminator.ndf=8",
    "data.batch_size=16",
    "callbacks.progress_bar.refresh_rate=0",
    # sample-quality metrics train a domain CNN at the first evaluation: only where tested
    "trainer.limit_val_batches=0",
]


def run_cli(
    *args: str,
    module: str = "src.train",
    env: dict[str, str] | None = None,
    check: bool = True,
    fresh_process: bool = False,
) -> subprocess.CompletedProcess:
    """Runs `python -m <module> <args>` from the repository root, as a user would: through the
    same entry function in this process (no interpreter start-up), or in a new interpreter
    with `fresh_process=True` (what depends on process state: signals, SIGKILL, spawning)."""
    full_env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", **(env or {})}
    if fresh_process:
        result = subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=ROOT, env={**os.environ, **full_env}, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    else:
        result = run_in_process(module, args, full_env)
    if check and result.returncode != 0:
        raise AssertionError(
            f"`python -m {module} {' '.join(args)}` exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-5000:]}"
        )
    return result


def stopped_by_sigterm(args: list[str], run_dir: Path, after: str = "epoch_002.ckpt") -> str:
    """Starts `python -m src.train <args>` in a new interpreter, sends SIGTERM once `after` is
    in <run_dir>/checkpoints, and returns its stderr (the exit must be 143)."""
    process = subprocess.Popen([sys.executable, "-m", "src.train", *args], cwd=ROOT,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 240
    while not (run_dir / "checkpoints" / after).exists() and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr[-2000:]
    return stderr


def run_in_process(
    module: str, args: tuple[str, ...] | list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`python -m <module> <args>` in this process: its exit status, stdout and stderr, with
    `env` set for the duration. The same entry function and error boundary as the command."""
    import contextlib
    import io
    import runpy

    stdout, stderr, argv, cwd = io.StringIO(), io.StringIO(), sys.argv, os.getcwd()
    saved_env = dict(os.environ)
    os.environ.update(env or {})
    sys.argv = [str(ROOT / (module.replace(".", "/") + ".py")), *args]
    os.chdir(ROOT)
    try:
        quiet = warnings.catch_warnings()  # running an imported module again as __main__
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), quiet:
            warnings.filterwarnings("ignore", message=r".*found in sys.modules after import")
            runpy.run_module(module, run_name="__main__", alter_sys=False)
        status = 0
    except SystemExit as exit:
        status = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    finally:
        sys.argv = argv
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(
        [module, *args], status, stdout.getvalue(), stderr.getvalue()
    )


@pytest.fixture
def train_cli(tmp_path: Path):
    """Runs a tiny `debug=fast` training through the real CLI into a fresh run dir."""

    def run(*overrides: str, run_dir: Path | None = None, **kwargs) -> Path:
        run_dir = run_dir or tmp_path / "run"
        run_cli("debug=fast", *TINY, f"hydra.run.dir={run_dir}", *overrides, **kwargs)
        return run_dir

    return run


def run_entry(module: str, *args: str) -> tuple[int, str]:
    """`python -m <module> <args>` in this process: exit status and stderr."""
    result = run_in_process(module, args)
    return result.returncode, result.stderr


@pytest.fixture
def train_entry(tmp_path: Path):
    """A tiny `debug=fast` training through src.train's entry function, in this process."""

    def run(*overrides: str, run_dir: Path | None = None) -> tuple[int, str]:
        run_dir = run_dir or tmp_path / "run"
        return run_entry(
            "src.train", "debug=fast", *TINY, "logger=csv", f"hydra.run.dir={run_dir}", *overrides
        )

    return run
