"""Loggers that survive a resume and W&B that can never stop training (Lightning gaps: its
CSV writer deletes metrics.csv when a run starts again; WandbLogger starts a new W&B run on
resume, fails the run when W&B cannot start, and leaves its files half-written at exit)."""

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

from omegaconf import OmegaConf
from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only

from src.metrics.names import HIGHER_IS_BETTER, LOWER_IS_BETTER
from src.utils.checkpoint import atomic_write

log = logging.getLogger(__name__)
OURS: dict[str, str] = {}  # the W&B directories set here (a user's own settings are kept)


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
    """At its first save it drops only the rows at or past the first step it logs (work redone
    since the checkpoint): no row lost, none duplicated."""

    def _check_log_dir_exists(self) -> None:  # Lightning's deletes metrics.csv here
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


def wandb_logger(
    mode: str | None = None, init_timeout: float = 30.0, **kwargs: Any
) -> WandbLogger | None:
    """A WandbLogger, offline (`<save_dir>/wandb/offline-run-*`, for `wandb sync`) unless a key
    is available or WANDB_MODE/mode says otherwise; an online start waits `init_timeout` s.
    W&B's own files stay there too; None (one warning) when save_dir is not writable."""
    import wandb  # lazily: runs with logger=csv never pay for importing W&B

    folder = Path(kwargs.get("save_dir") or ".") / "wandb"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        id_file = folder / "convgan_run_id"  # made once: a resume continues the same W&B run
        if not id_file.is_file():
            id_file.write_text(secrets.token_hex(4) + "\n")  # not `random`: training uses it
        run_id = id_file.read_text().strip()
    except OSError as error:
        log.warning("W&B off: %s is not writable (%s); metrics.csv still records", folder, error)
        return None
    for variable in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):  # not ~/.cache
        if os.environ.get(variable) in (None, OURS.get(variable)):
            os.environ[variable] = OURS[variable] = str(folder / variable.split("_")[1].lower())

    default = "online" if wandb_api_key_available() else "offline"
    mode = mode or os.environ.get("WANDB_MODE") or default
    if mode == "offline":
        rank_zero_info("W&B: logging offline (upload later with `wandb sync`).")
    os.environ.setdefault("WANDB_SILENT", "true")
    agent = os.environ.get("WANDB_SWEEP_ID")  # a W&B sweep agent names the run itself
    if rank_zero_only.rank == 0 and "id" not in kwargs and not agent:
        kwargs = {**kwargs, "id": run_id, "resume": "allow"}
    if not kwargs.get("name"):
        kwargs = {**kwargs, **run_identity(kwargs.get("save_dir"))}
    logger = WandbLogger(
        offline=mode == "offline", mode=mode,
        settings=wandb.Settings(init_timeout=init_timeout), **kwargs,
    )  # fmt: skip
    logger._wandb_init.pop("anonymous", None)  # Lightning passes None; W&B warns it is unused
    logger.factory_kwargs = kwargs  # to rebuild it offline if the online start fails
    return logger


def run_identity(save_dir: str | None) -> dict[str, str]:
    """A run's W&B name: a sweep job's swept values (`lr=0.0001,momentum=0.9`; a sampler's
    trial number in front), in the sweep's group; a single run's overrides
    (hydra.job.override_dirname), or its run folder's name when it has none."""
    from hydra.core.hydra_config import HydraConfig

    from src.utils.hydra_callbacks import in_multirun

    folder = Path(save_dir or ".").resolve().name
    if not HydraConfig.initialized():
        return {"name": folder}
    hydra_cfg = HydraConfig.get()
    if not in_multirun():
        return {"name": hydra_cfg.job.get("override_dirname") or folder}
    sampled = set((hydra_cfg.sweeper.get("params") or {}).keys())  # Optuna's search space
    swept = swept_keys() | sampled
    task = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)
    values = [o.split("=", 1) for o in task if "=" in o and o.split("=", 1)[0] in swept]
    name = ",".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, value in values) or folder
    number = f"{hydra_cfg.job.num}_" if sampled else ""
    return {"name": number + name, "group": Path(hydra_cfg.sweep.dir).name, "job_type": "sweep"}


def swept_keys() -> set[str]:
    """The keys given several values on the sweep's command line, parsed by Hydra's own
    override parser (none in a process started without them: a relaunched DDP rank)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        arguments = [a for a in sys.argv[1:] if not a.startswith("-")]  # -m, --multirun
        parsed = OverridesParser.create().parse_overrides(arguments)
    except Exception:  # not this process's sweep command line
        return set()
    return {o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()}


def ensure_loggers_start(loggers: list[Logger]) -> list[Logger]:
    """Starts W&B now: if it cannot (server unreachable, bad key, ...) an offline W&B run with
    one warning takes its place, or none (the CSV logger still records)."""
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
            run = logger.experiment  # val/* and the sample grids against the epoch
            run.define_metric("epoch")
            run.define_metric("samples", step_metric="epoch")
            run.define_metric("val/*", step_metric="epoch")
            for names, goal in ((LOWER_IS_BETTER, "min"), (HIGHER_IS_BETTER, "max")):
                for name in names:  # the best value in the run summary, where its way is known
                    run.define_metric(name, step_metric="epoch", summary=goal)
        started.append(logger)
    return started


def offline_fallback(logger: WandbLogger) -> WandbLogger | None:
    import wandb

    if wandb.run is not None:
        wandb.finish(exit_code=1, quiet=True)
    try:
        # a fresh id: W&B does not reuse the id of the online start that just failed
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
    """Ends this job's W&B run (failed if the job failed) so the next job starts its own, and
    waits for W&B's service to write the rest of the event log (what `wandb sync` uploads)."""
    failed = True
    try:
        yield
        failed = False
    finally:
        if any(isinstance(logger, WandbLogger) for logger in loggers) and "wandb" in sys.modules:
            import wandb

            if wandb.run is not None:
                run_dir = Path(wandb.run.dir).parents[1]  # <save_dir>/wandb/offline-run-*/files
                wandb.run.finish(exit_code=1 if failed else 0)
                (run_dir / "latest-run").unlink(missing_ok=True)  # `wandb sync` saw runs twice
            try:
                wandb.teardown()
            except (Exception, SystemExit) as error:  # never hide the job's own outcome
                log.warning("W&B did not shut down cleanly (%s)", error)
