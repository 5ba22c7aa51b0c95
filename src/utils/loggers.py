"""Logger factories whose behaviour depends on the environment (W&B with or without a key)."""

import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_info


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


def wandb_logger(mode: str | None = None, **kwargs: Any) -> WandbLogger:
    """A WandbLogger that runs offline unless a key is available or WANDB_MODE/mode says otherwise.

    Offline runs write everything under `<save_dir>/wandb/offline-run-*`; upload them later
    with `wandb sync <that dir>`.
    """
    mode = (
        mode
        or os.environ.get("WANDB_MODE")
        or ("online" if wandb_api_key_available() else "offline")
    )
    if mode == "offline":
        rank_zero_info("W&B: no API key found, logging offline (upload later with `wandb sync`).")
    os.environ.setdefault("WANDB_SILENT", "true")
    return WandbLogger(offline=mode == "offline", mode=mode, **kwargs)
