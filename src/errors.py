"""User mistakes (config, data, checkpoint) as one line, and the generic checks that raise them."""

import importlib
import math
import re
import types
import typing
from collections.abc import Collection
from numbers import Real

from omegaconf import DictConfig, ListConfig, OmegaConf


class ConfigError(ValueError):
    """`<key>=<value>: <what is allowed>`; the entry points print it and exit with status 2.
    With `value=ConfigError.UNSHOWN` (a whole config node): `<key>: <what is wrong>`."""

    UNSHOWN = object()

    def __init__(self, key: str, value: object, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(
            f"{key}: {allowed}" if value is self.UNSHOWN else f"{key}={value!r}: {allowed}"
        )


class DivergenceError(RuntimeError):
    """Training diverged: too many consecutive non-finite losses (exit status 3)."""


class Interrupted(RuntimeError):
    """The run was stopped by a signal after saving what it had (exit status 128 + signal)."""

    def __init__(self, message: str, status: int):
        self.status = status
        super().__init__(message)


def integer(key: str, value: object, low: int = 1, high: int | None = None) -> int:
    """`value` if it is an int (not a bool) in [low, high], else a ConfigError naming `key`."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    if not ok or (high is not None and value > high):
        allowed = f"an integer in [{low}, {high}]" if high is not None else f"an integer >= {low}"
        raise ConfigError(key, value, f"allowed: {allowed}")
    return value


def number(key: str, value: object, low: float = 0.0, high: float = math.inf, *,
           low_open: bool = False, high_open: bool = False) -> float:  # fmt: skip
    """`value` if it is a finite real number (not a bool) in the interval, else a ConfigError."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high
        )
    if not ok:
        if high == math.inf and low == -math.inf:
            allowed = "a finite number"
        elif high == math.inf:
            allowed = f"a number {'>' if low_open else '>='} {low:g}"
        else:
            left, right = "(" if low_open else "[", ")" if high_open else "]"
            allowed = f"a number in {left}{low:g}, {high:g}{right}"
        raise ConfigError(key, value, f"allowed: {allowed}")
    return float(value)


def choice(key: str, value: object, allowed: Collection) -> object:
    """`value` if it equals one of `allowed`, type included (True is not 1), else a ConfigError."""
    if not any(type(value) is type(a) and value == a for a in allowed):
        raise ConfigError(key, value, f"allowed: {', '.join(map(str, allowed))}")
    return value


def admits(annotation: object, value: object) -> bool | None:
    """Whether a config value fits a constructor's type annotation (None: cannot tell)."""
    if annotation in (int, float, bool, str, type(None)):
        if annotation is float:
            return isinstance(value, int | float) and not isinstance(value, bool)
        if annotation is int:
            return isinstance(value, int) and not isinstance(value, bool)
        return isinstance(value, annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return any(type(value) is type(a) and value == a for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        verdicts = [admits(a, value) for a in typing.get_args(annotation)]
        return True if True in verdicts else (None if None in verdicts else False)
    if origin in (list, tuple) or annotation in (list, tuple):
        return isinstance(value, list | tuple)
    if isinstance(annotation, type) and annotation.__module__.startswith("torch"):
        return False  # a tensor type: a config value never is one
    return None


def described(annotation: object) -> str:
    """What an annotation allows, in the words of the other checks."""
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
             type(None): "null", list: "a list", tuple: "a list"}  # fmt: skip
    if annotation in names:
        return names[annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return ", ".join(map(repr, args))
    if origin in (typing.Union, types.UnionType):
        shown = [a for a in args if not (a is int and float in args)]  # a number covers both
        return " or ".join(dict.fromkeys(p for p in map(described, shown) if p))
    if origin in (list, tuple):
        return "a list"
    return ""


def mistyped(cls: object, arguments: dict[str, object]) -> tuple[str, str] | None:
    """The first argument (and what its annotation allows) that `cls`'s constructor annotation
    does not admit; None when all fit or cannot be told."""
    try:
        hints = typing.get_type_hints(cls.__init__ if isinstance(cls, type) else cls)
    except Exception:  # unresolvable annotations: nothing to say
        return None
    for name, value in arguments.items():
        if name in hints and admits(hints[name], value) is False:
            return name, described(hints[name])
    return None


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


def plain_keys(cfg: DictConfig) -> list[str]:
    return [k for k in cfg if not k.startswith("_") and not isinstance(cfg.get(k), DictConfig)]


def written(cfg: DictConfig, key: str | None) -> str:
    """Where the user wrote `cfg[key]`: its full key, or the key it interpolates."""
    raw = str(cfg._get_node(key)._value()) if key and OmegaConf.is_interpolation(cfg, key) else ""
    source = re.fullmatch(r"\$\{([\w.]+)\}", raw)
    return source[1] if source else cfg._get_full_key(key) or "config"


def check_types(cfg: DictConfig) -> None:
    """Every `_target_` node's plain values against its constructor's annotations."""
    if "_target_" in cfg:
        module, _, name = str(cfg._target_).rpartition(".")
        try:
            target = getattr(importlib.import_module(module), name)
        except Exception:  # a missing target: instantiate says so
            target = None
        values = {k: OmegaConf.to_object(v) if isinstance(v := cfg.get(k), ListConfig) else v
                  for k in plain_keys(cfg)}  # fmt: skip
        found = mistyped(target, values) if target else None
        if found:
            key, allowed = found
            raise ConfigError(written(cfg, key), cfg.get(key), f"allowed: {allowed}")
    for key in cfg:
        if isinstance(cfg.get(key), DictConfig):
            check_types(cfg.get(key))
