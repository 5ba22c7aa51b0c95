"""Hydra callbacks (conf/hydra/default.yaml) and what they keep: the run directory a run owns
(Hydra gap: nothing stops a second run from writing into a directory in use, and Hydra writes
`.hydra/` before the job starts, so a refused run would overwrite the running run's and a
resume its first launch's), and a sweep's failed jobs (Hydra's sweepers stop at the first)."""

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from src.errors import ConfigError
from src.metrics.names import HIGHER_IS_BETTER
from src.utils.checkpoint import remove_orphaned_temp_files

HYDRA_FILES = ("config.yaml", "overrides.yaml", "hydra.yaml")


def is_running(path: str | os.PathLike) -> bool:
    """Whether a live process holds `<path>/.lock` (a run training in that directory)."""
    try:
        with open(Path(path) / ".lock") as file:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(file, fcntl.LOCK_UN)
            return False
    except OSError:
        return False


class RunLock:
    """`with RunLock(path):` an OS file lock (flock, released with a killed process) on
    `<path>/.lock`; a second run into the directory is refused in one line."""

    def __init__(self, path: str | os.PathLike, key: str = "hydra.run.dir"):
        self.path, self.key = Path(path), key
        self.file: IO[str] | None = None

    def __enter__(self) -> "RunLock":
        if problem := unusable(self.path):
            raise ConfigError(self.key, str(self.path), problem)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path / ".lock", "a+")  # noqa: SIM115 (held for the run)
        except OSError as error:
            raise ConfigError(
                self.key, str(self.path), f"not writable ({error.strerror})"
            ) from None
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            owner = self.file.read().strip() or "?"
            self.file.close()
            raise ConfigError(
                self.key, str(self.path),
                f"in use by another run (pid {owner}); wait for it or choose another directory",
            ) from None  # fmt: skip
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"{os.getpid()}\n")
        self.file.flush()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()
            self.file = None


class RunDirectory(Callback):
    """conf/hydra/default.yaml: a run's (or each sweep job's) directory locked for the run, an
    earlier launch's `.hydra/` files moved to `.hydra/launch_<n>/`, orphaned temp files gone.
    A refusal ends the process with its one line (Hydra turns a callback's exception into a
    warning and goes on)."""

    def __init__(self) -> None:
        self.locks: dict[Path, RunLock] = {}

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        expand_home(config, "run")
        with refusals():
            self.claim(config.hydra.run.dir, "hydra.run.dir", config.hydra.output_subdir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        expand_home(config, "sweep")
        sweep = Path(config.hydra.sweep.dir)
        with refusals():
            if problem := unusable(sweep):
                raise ConfigError("hydra.sweep.dir", str(sweep), problem)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        with refusals():
            self.claim(config.hydra.runtime.output_dir, "hydra.sweep.dir", None)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        self.release(config.hydra.runtime.output_dir)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.release(config.hydra.run.dir)

    def claim(self, path: str, key: str, output_subdir: str | None) -> None:
        """Locks `path` (a rank other than the first shares the first's directory: Lightning's
        or torchrun's processes, another node's)."""
        typed, path = Path(path), Path(path).resolve()
        ranks = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")
        if path in self.locks or any(os.environ.get(v, "0") != "0" for v in ranks):
            return
        self.locks[path] = RunLock(typed, key).__enter__()
        if output_subdir:
            keep_earlier_launch(path / output_subdir)
        remove_orphaned_temp_files(path / "checkpoints")

    def release(self, path: str) -> None:
        lock = self.locks.pop(Path(path).resolve(), None)
        if lock is not None:
            lock.__exit__()


def expand_home(config: DictConfig, mode: str) -> None:
    """`~` in hydra.run.dir / hydra.sweep.dir as a shell would expand it (Hydra would make a
    folder named `~`); Hydra then makes the directory this config names."""
    from omegaconf import read_write

    node = config.hydra[mode]
    if str(node.dir).startswith("~"):
        with read_write(node):
            node.dir = os.path.expanduser(str(node.dir))


@contextlib.contextmanager
def refusals() -> Iterator[None]:
    """A ConfigError as the entry points' one line and exit status."""
    from src.cli import EXIT_CONFIG, fail

    try:
        yield
    except ConfigError as error:
        fail(f"config error: {error}", EXIT_CONFIG)


def unusable(path: Path) -> str | None:
    """Why a run cannot write at `path` (a file, a dangling link, a read-only or forbidden
    place), or None; said before anything is created there."""
    if path.is_symlink() and not path.exists():
        return "a dangling symbolic link"
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is a file; give a directory"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{ancestor} is not writable (read-only or no permission)"
    return None


def keep_earlier_launch(folder: Path) -> None:
    """An earlier launch's `.hydra/` files (a resume's first run) into `launch_<n>/`, before
    Hydra writes this launch's."""
    if not (folder / "config.yaml").exists():
        return
    earlier = folder / f"launch_{len(list(folder.glob('launch_*'))) + 1}"
    earlier.mkdir()
    for name in HYDRA_FILES:
        if (folder / name).exists():
            (folder / name).rename(earlier / name)


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


FAILED_JOBS: list[tuple[str, str, int]] = []  # (job, line, exit status) of this multirun


def job_failed(message: str, status: int) -> float:
    """A failed multirun job: its line on stderr and in `<job dir>/failed.txt` (the report
    shows it), remembered for the sweep's exit status; NaN goes to the sweeper (Optuna marks
    the trial failed) and the next job runs."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    line = " ".join(message.split())
    print(f"error: job {hydra_cfg.job.num}: {line}", file=sys.stderr, flush=True)
    FAILED_JOBS.append((str(hydra_cfg.job.num), line, status))
    with contextlib.suppress(OSError):  # an unwritable job directory is the failure itself
        (Path(hydra_cfg.runtime.output_dir) / "failed.txt").write_text(line + "\n")
    return float("nan")


class SweepStatus(Callback):
    """conf/hydra/default.yaml: after a multirun, a line summing its jobs up (done, failed, the
    best `optimized_metric` and where), one line per failed job and a non-zero exit status if
    any failed (the worst: 1 for a bug, else the first's)."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, Any]] = []  # (job folder, its optimized_metric or None)

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        value = job_return.return_value if job_return.status.name == "COMPLETED" else None
        self.jobs.append((str(config.hydra.runtime.output_dir), value))

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        print(self.summary(config.get("optimized_metric")), flush=True)
        if not FAILED_JOBS:
            return
        statuses = [status for _, _, status in FAILED_JOBS]
        jobs = ", ".join(job for job, _, _ in FAILED_JOBS)
        print(f"error: {len(FAILED_JOBS)} job(s) failed: {jobs}", file=sys.stderr, flush=True)
        FAILED_JOBS.clear()
        sys.exit(1 if 1 in statuses else statuses[0])

    def summary(self, metric: str | None) -> str:
        failed = len(FAILED_JOBS)
        line = f"sweep: {len(self.jobs)} job(s), {len(self.jobs) - failed} done, {failed} failed"
        scored = [(v, job) for job, v in self.jobs if isinstance(v, float) and v == v]
        if metric and scored:
            lower = metric not in HIGHER_IS_BETTER
            value, job = min(scored) if lower else max(scored)
            line += f"; best {metric} {value:.4g}: {job}"
        return line
