"""Loggers that survive a resume (metrics.csv keeps its rows; W&B continues the same run id)
and W&B that depends on the environment (online with a key, else offline)."""

import contextlib
import csv
import io
import logging
import netrc
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only

from src.utils.checkpoint import atomic_write

log = logging.getLogger(__name__)


def wandb_api_key_available() -> bool:
    """True when W&B could authenticate: WANDB_API_KEY or a ~/.netrc entry for its host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    path = os.environ.get("NETRC", Path.home() / ".netrc")
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


class _ResumingWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing metrics.csv when it starts, so a resumed run
    lost every row written before the crash. This one keeps them: at its first save it drops
    only the rows at or past the first step it logs (work redone since the checkpoint), so
    no row is lost and none is duplicated."""

    def _check_log_dir_exists(self) -> None:
        self._trimmed = False

    def save(self) -> None:
        # The first save that has rows (Lightning also saves, with none, at log_hyperparams).
        if self.metrics and not self._trimmed:
            self._trimmed = True
            if os.path.isfile(self.metrics_file_path):
                self.keep_rows_before(min(m["step"] for m in self.metrics))
        super().save()

    def keep_rows_before(self, first: int) -> None:
        with open(self.metrics_file_path, newline="") as file:
            reader = csv.DictReader(file)
            keys, rows = list(reader.fieldnames or []), list(reader)
        kept = [r for r in rows if r.get("step") and float(r["step"]) < first]

        def write(out) -> None:
            text = io.StringIO()
            writer = csv.DictWriter(text, fieldnames=keys)
            writer.writeheader()
            writer.writerows(kept)
            out.write(text.getvalue().encode())

        atomic_write(self.metrics_file_path, write)
        self.metrics_keys = sorted(set(self.metrics_keys) | set(keys))


class ResumableCSVLogger(CSVLogger):
    """CSVLogger whose metrics.csv survives `ckpt_path=auto` (see _ResumingWriter)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ResumingWriter(log_dir=self.log_dir)
        return self._experiment


def wandb_run_id(save_dir: str | None) -> str:
    """The W&B run id of this run directory: made once, reused by every resume of it, so a
    resumed run continues the same W&B run."""
    path = Path(save_dir or ".") / "wandb" / "convgan_run_id"
    if path.is_file():
        return path.read_text().strip()
    run_id = secrets.token_hex(4)  # not the `random` module: training draws from it
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n")
    return run_id


def wandb_logger(mode: str | None = None, init_timeout: float = 30.0, **kwargs: Any) -> WandbLogger:
    """A WandbLogger that runs offline unless a key is available or WANDB_MODE/mode says otherwise.

    Offline runs write everything under `<save_dir>/wandb/offline-run-*`; upload them later
    with `wandb sync <that dir>`. `init_timeout` bounds how long an online start may take
    before `ensure_loggers_start` falls back to offline.
    """
    import wandb  # lazily: runs with logger=csv never pay for importing W&B

    mode = (
        mode
        or os.environ.get("WANDB_MODE")
        or ("online" if wandb_api_key_available() else "offline")
    )
    if mode == "offline":
        rank_zero_info("W&B: logging offline (upload later with `wandb sync`).")
    os.environ.setdefault("WANDB_SILENT", "true")
    agent = os.environ.get("WANDB_SWEEP_ID")  # a W&B sweep agent names the run itself
    if rank_zero_only.rank == 0 and "id" not in kwargs and not agent:
        kwargs = {**kwargs, "id": wandb_run_id(kwargs.get("save_dir")), "resume": "allow"}
    kwargs = {**kwargs, **sweep_identity()}
    logger = WandbLogger(
        offline=mode == "offline", mode=mode,
        settings=wandb.Settings(init_timeout=init_timeout), **kwargs,
    )  # fmt: skip
    logger.factory_kwargs = kwargs  # to rebuild it offline if the online start fails
    return logger


def sweep_identity() -> dict[str, str]:
    """For a job of a Hydra multirun: a W&B run name saying what differs (its values of the
    swept keys, e.g. `lr=0.0001,momentum=0.9`), the sweep directory's name as the group
    shared by all its jobs, and job_type `sweep`; nothing for a single run (named by
    `task_name`). Swept keys: the command line's sweep overrides (`a=1,2`, ranges) and the
    sweeper's own search space (`hydra.sweeper.params`, e.g. Optuna's)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return {}
    hydra_cfg = HydraConfig.get()
    try:
        arguments = [a for a in sys.argv[1:] if not a.startswith("-")]  # -m, --multirun
        parsed = OverridesParser.create().parse_overrides(arguments)
        swept = {o.get_key_element() for o in parsed if o.is_sweep_override()}
    except Exception:  # not the sweep's command line (e.g. a relaunched rank)
        swept = set()
    swept |= set((hydra_cfg.sweeper.get("params") or {}).keys())
    job = dict(o.split("=", 1) for o in hydra_cfg.overrides.task if "=" in o)
    shown = [f"{key.rsplit('.', 1)[-1]}={job[key]}" for key in job if key in swept]
    name = ",".join(shown) or f"job {hydra_cfg.job.num}"
    return {"name": name, "group": Path(hydra_cfg.sweep.dir).name, "job_type": "sweep"}


def ensure_loggers_start(loggers: list[Logger]) -> list[Logger]:
    """Starts W&B runs now, so a W&B failure can never stop training later.

    If W&B cannot start (server unreachable, bad key, ...), it is replaced by an offline W&B
    run with one warning; if even that fails, it is dropped (the CSV logger still records).
    """
    started = []
    for logger in loggers:
        if isinstance(logger, WandbLogger) and rank_zero_only.rank == 0:
            try:
                logger.experiment  # noqa: B018  (wandb.init happens on first access)
            except Exception as error:  # W&B raises many types (CommError, UsageError, ...)
                reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
                log.warning("W&B could not start online (%s); logging offline instead", reason)
                logger = offline_fallback(logger)
                if logger is None:
                    continue
            plot_against_epochs(logger.experiment)
        started.append(logger)
    return started


def plot_against_epochs(run: Any) -> None:
    """W&B plots the validation metrics and sample grids against the epoch and keeps each
    metric's best value in the run summary."""
    from src.metrics.quality import LOGGED, LOWER_IS_BETTER

    run.define_metric("epoch")
    run.define_metric("samples", step_metric="epoch")
    for name in LOGGED.values():
        goal = "min" if name in LOWER_IS_BETTER else "max"
        run.define_metric(name, step_metric="epoch", summary=goal)


def offline_fallback(logger: WandbLogger) -> WandbLogger | None:
    import wandb

    if wandb.run is not None:
        wandb.finish(exit_code=1, quiet=True)
    try:
        # A fresh id: W&B does not reuse the id of the online start that just failed.
        kwargs = {**getattr(logger, "factory_kwargs", {}), "id": secrets.token_hex(4)}
        kwargs.pop("resume", None)
        offline = wandb_logger(mode="offline", **kwargs)
        offline.experiment  # noqa: B018
        return offline
    except Exception as error:
        log.warning("W&B offline failed too (%s); continuing without W&B", error)
        return None


@contextlib.contextmanager
def finished(loggers: list[Logger]) -> Iterator[None]:
    """Ends this job's W&B run on the way out, so the next job of a multirun (or the next
    run in the same process) starts its own run instead of reusing this one; a failed job's
    run is marked failed. The run's files are complete on disk when this returns: `finish`
    only tells W&B's service process that the run ended, and the service writes the rest of
    the event log (`run-*.wandb`, what `wandb sync` uploads) when it closes the run, so this
    waits for the service to shut down (the next run starts a new one)."""
    failed = True
    try:
        yield
        failed = False
    finally:
        wandb_runs = [
            logger for logger in loggers
            if isinstance(logger, WandbLogger) and logger._experiment is not None
        ]  # fmt: skip
        for logger in wandb_runs:
            logger._experiment.finish(exit_code=1 if failed else 0)
            logger._experiment = None
        if wandb_runs:
            import wandb

            try:
                wandb.teardown()
            except (Exception, SystemExit) as error:  # never hide the job's own outcome
                log.warning("W&B did not shut down cleanly (%s)", error)
