"""hydra.utils.instantiate for the run config: plain containers as arguments (checkpoints
hold no OmegaConf objects) and a constructor's refusal reported as a ConfigError."""

import re
from typing import Any

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from src.errors import ConfigError, blamed, check_types, plain_keys, written


def instantiate(cfg: DictConfig, **kwargs: Any) -> Any:
    """The object `cfg` describes; a missing `_target_`, a value its constructor's annotation
    does not admit, or arguments it refuses (e.g. Lightning's checks of its Trainer keys), as
    a ConfigError naming the key (where the user wrote it, through interpolations)."""
    check_types(cfg)
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
        from lightning_fabric.utilities.exceptions import MisconfigurationException

        if isinstance(error.__cause__, TypeError | ValueError | MisconfigurationException):
            target = str(cfg.get("_target_", "?")).rsplit(".", 1)[-1]
            reason = " ".join(str(error.__cause__).split())
            key = blamed({k: cfg.get(k) for k in plain_keys(cfg)}, reason)
            value = cfg[key] if key else ConfigError.UNSHOWN
            raise ConfigError(written(cfg, key), value, f"{target} refused it: {reason}") from None
        raise


def instantiate_list(cfg: DictConfig | None) -> list[Any]:
    """Every entry with a `_target_` of a config group such as callbacks or logger."""
    if not cfg:
        return []
    built = (instantiate(c) for c in cfg.values() if c and "_target_" in c)
    return [obj for obj in built if obj is not None]  # a factory may decline (W&B unwritable)
