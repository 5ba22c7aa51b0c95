"""hydra.utils.instantiate for the run config: plain containers as arguments (checkpoints
hold no OmegaConf objects) and a constructor's mistake reported as a ConfigError."""

import re
from typing import Any

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from src.utils.errors import ConfigError


def instantiate(cfg: DictConfig, **kwargs: Any) -> Any:
    """The object `cfg` describes. A ConfigError raised by a constructor is re-raised as
    itself; arguments a constructor does not take, or a `_target_` that does not exist, are
    config errors too."""
    try:
        return hydra.utils.instantiate(cfg, _convert_="all", **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        while cause is not None and not isinstance(cause, ConfigError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        if missing := re.search(r"Error locating target '([^']+)'", str(error)):
            raise ConfigError("_target_", missing[1], "no such class or function") from None
        if isinstance(error.__cause__, TypeError):
            target = cfg.get("_target_", "?")
            raise ConfigError(f"{target}", "arguments", str(error.__cause__)) from None
        raise


def instantiate_list(cfg: DictConfig | None) -> list[Any]:
    """Every entry with a `_target_` of a config group such as callbacks or logger."""
    if not cfg:
        return []
    return [instantiate(c) for c in cfg.values() if c and "_target_" in c]
