"""hydra.utils.instantiate for the run config: plain containers as arguments (checkpoints
hold no OmegaConf objects) and a constructor's refusal reported as a ConfigError."""

import re
from typing import Any

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from src.errors import ConfigError


def instantiate(cfg: DictConfig, **kwargs: Any) -> Any:
    """The object `cfg` describes; a missing `_target_`, or arguments its constructor refuses
    (e.g. Lightning's checks of its Trainer keys), as a ConfigError naming the key."""
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
            key = refused_key(cfg, reason)
            node = cfg._get_full_key(key) or "config"
            value = cfg[key] if key else ConfigError.UNSHOWN
            raise ConfigError(node, value, f"{target} refused it: {reason}") from None
        raise


def refused_key(cfg: DictConfig, message: str) -> str | None:
    """The key of `cfg` that a constructor's error message is about: the one it names, else
    the one whose value it quotes (None when that is not one key)."""
    keys = [k for k in cfg if k != "_target_" and not isinstance(cfg.get(k), DictConfig)]
    words = set(re.findall(r"[a-z_][a-z0-9_]*", message.lower()))
    named = [k for k in keys if k.lower() in words]
    if len(named) == 1:
        return named[0]
    quoted = [
        k for k in keys
        if isinstance(cfg.get(k), str | int | float) and not isinstance(cfg.get(k), bool)
        and re.search(rf"(?<![\w.-]){re.escape(str(cfg.get(k)))}(?![\w.-])", message)
    ]  # fmt: skip
    return quoted[0] if len(quoted) == 1 else None


def instantiate_list(cfg: DictConfig | None) -> list[Any]:
    """Every entry with a `_target_` of a config group such as callbacks or logger."""
    if not cfg:
        return []
    built = (instantiate(c) for c in cfg.values() if c and "_target_" in c)
    return [obj for obj in built if obj is not None]  # a factory may decline (W&B unwritable)
