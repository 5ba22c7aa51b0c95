"""Logger factories whose behaviour depends on the environment (W&B with or without a key)."""

import logging
import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pytorch_lightning.loggers import Logger, WandbLogger
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only

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
    logger = WandbLogger(
        offline=mode == "offline", mode=mode,
        settings=wandb.Settings(init_timeout=init_timeout), **kwargs,
    )  # fmt: skip
    logger.factory_kwargs = kwargs  # to rebuild it offline if the online start fails
    return logger


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
        started.append(logger)
    return started


def offline_fallback(logger: WandbLogger) -> WandbLogger | None:
    import wandb

    if wandb.run is not None:
        wandb.finish(exit_code=1, quiet=True)
    try:
        offline = wandb_logger(mode="offline", **getattr(logger, "factory_kwargs", {}))
        offline.experiment  # noqa: B018
        return offline
    except Exception as error:
        log.warning("W&B offline failed too (%s); continuing without W&B", error)
        return None
