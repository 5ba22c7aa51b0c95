"""hydra.utils.instantiate for the run config: plain containers as arguments (checkpoints hold
no OmegaConf objects), and a constructor's refusal as one line naming the key."""

import difflib
import importlib
import inspect
import re
from dataclasses import fields
from typing import Any

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig, ListConfig
from omegaconf.errors import OmegaConfBaseException

from src.config import TrainConfig
from src.errors import ConfigError

SECTIONS = {f.name for f in fields(TrainConfig)}  # a key starting with one of these is absolute

# Hydra gap: an InstantiationException names the node that failed only in its message's last
# line (`full_key: model.regularizers.r1`), not as an attribute
FULL_KEY = re.compile(r"\nfull_key: (\S+)\s*$")


def instantiate(cfg: DictConfig, **kwargs: Any) -> Any:
    """The object `cfg` describes. A refusal is a ConfigError naming the key: a constructor's
    own ConfigError (a key relative to its node, e.g. `weight`, is put under the node's), an
    argument it does not take (with the nearest it does), a missing class, or what a
    constructor raised (Lightning's checks of its Trainer keys too)."""
    try:
        return hydra.utils.instantiate(cfg, _convert_="all", **kwargs)
    except InstantiationException as error:
        raise refusal(error, cfg) from None
    except OmegaConfBaseException as error:  # OmegaConf names no key for a recursive one
        if not getattr(error, "full_key", None):
            error.full_key = unresolvable(cfg) or ""
        raise


def unresolvable(node: Any) -> str | None:
    """The full key of the first value under `node` that cannot be resolved."""
    for key in node.keys() if isinstance(node, DictConfig) else range(len(node)):
        try:
            value = node[key]
        except OmegaConfBaseException:  # OmegaConf gap: no public API for a node's full key
            return node._get_full_key(key)
        if isinstance(value, DictConfig | ListConfig) and (found := unresolvable(value)):
            return found
    return None


def refusal(error: InstantiationException, cfg: DictConfig) -> Exception:
    """The innermost node that failed and why, as one ConfigError."""
    node, cause = "", error
    while isinstance(cause, InstantiationException):
        if found := FULL_KEY.search(str(cause)):
            node = found[1]
        if cause.__cause__ is None:
            break
        cause = cause.__cause__
    node = node or "config"
    if isinstance(cause, ConfigError):
        relative = cause.key.split(".")[0] not in SECTIONS
        return ConfigError(f"{node}.{cause.key}", cause.value, cause.allowed) if relative else cause
    found = node_config(cfg, node)
    target = found if found is not None else cfg  # the failing node: within cfg, or cfg
    name = str(target.get("_target_", "?")) if isinstance(target, DictConfig) else "?"
    if isinstance(cause, InstantiationException):  # Hydra's own: the class is not there
        return ConfigError(f"{node}._target_", name, "no such class or function (importable?)")
    known = accepted(name)
    if isinstance(cause, TypeError) and (unknown := unexpected(known, target)):
        near = difflib.get_close_matches(unknown, known, n=1, cutoff=0.5)
        hint = f"did you mean {', '.join(f'{node}.{k}' for k in near)}?" if near else (
            f"keys here: {', '.join(known)}")  # fmt: skip
        return ConfigError(f"{node}.{unknown}", target.get(unknown), f"not read by {name}; {hint}")
    reason = " ".join(str(cause).split())
    arguments = {k: v for k, v in target.items() if not str(k).startswith("_")} if isinstance(
        target, DictConfig) else {}  # fmt: skip
    plain = {k: v for k, v in arguments.items() if not isinstance(v, DictConfig)}
    key = blamed(plain, reason)
    value = plain[key] if key else ConfigError.UNSHOWN
    short = name.rsplit(".", 1)[-1]
    return ConfigError(f"{node}.{key}" if key else node, value, f"{short} refused it: {reason}")


def node_config(cfg: DictConfig, node: str) -> Any:
    """The config node at the full key `node`, looked up from `cfg`, which may itself be a
    node of the run config (its full key a prefix of `node`)."""
    from omegaconf import OmegaConf

    found = OmegaConf.select(cfg, node)  # cfg is the root
    if found is None and "." in node:  # cfg is the node at the first part(s) of the key
        parts = node.split(".")
        for start in range(1, len(parts)):
            found = OmegaConf.select(cfg, ".".join(parts[start:]))
            if found is not None:
                break
    return found


def accepted(target: str) -> list[str] | None:
    """The keyword arguments `target` takes: its constructor's and, where that passes
    **kwargs on, its bases' (None when that cannot be told)."""
    module, _, name = target.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name)
    except Exception:  # the class is not there: Hydra's error says so
        return None
    names: list[str] = []
    for owner in found.__mro__ if isinstance(found, type) else [found]:
        init = owner.__init__ if isinstance(found, type) else owner
        if init is object.__init__:  # no constructor of its own up the chain: no arguments
            return sorted(set(names) - {"self"})
        params = inspect.signature(init).parameters.values()
        names += [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return sorted(set(names) - {"self"})
    return None


def unexpected(known: list[str] | None, node: Any) -> str | None:
    """The first key of `node` that is not among `known` arguments (None: all fit)."""
    if known is None or not isinstance(node, DictConfig):
        return None
    return next((str(k) for k in node if not str(k).startswith("_") and k not in known), None)


def instantiate_list(cfg: DictConfig | None) -> list[Any]:
    """Every entry with a `_target_` of a config group such as callbacks or logger."""
    if not cfg:
        return []
    built = (instantiate(c) for c in cfg.values() if c and "_target_" in c)
    return [obj for obj in built if obj is not None]  # a factory may decline (W&B unwritable)


def blamed(arguments: dict[str, object], message: str) -> str | None:
    """The argument a refusal's message is about: the one it names, else the one whose value
    it quotes (None when that is not exactly one)."""
    words = set(re.findall(r"[a-z_][a-z0-9_]*", message.lower()))
    named = [k for k in arguments if k.lower() in words]
    if len(named) == 1:
        return named[0]
    quoted = [
        k for k, v in arguments.items()
        if isinstance(v, str | int | float) and not isinstance(v, bool)
        and re.search(rf"(?<![\w.-]){re.escape(str(v))}(?![\w.-])", message)
    ]  # fmt: skip
    return quoted[0] if len(quoted) == 1 else None
