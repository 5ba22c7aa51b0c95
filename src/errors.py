"""User mistakes (config, data, checkpoint) as one line, and the generic checks that raise them."""

import math
from collections.abc import Collection
from numbers import Real


class ConfigError(ValueError):
    """`<key>=<value>: <what is allowed>`; the entry points print it and exit with status 2.
    With `value=ConfigError.UNSHOWN` (a whole config node): `<key>: <what is wrong>`."""

    UNSHOWN = object()

    def __init__(self, key: str, value: object, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        shown = repr(value)
        if len(shown) > 120:  # a value from a file may be any size: the line stays a line
            shown = f"{shown[:100]}... ({len(shown):,} characters)"
        super().__init__(
            f"{key}: {allowed}" if value is self.UNSHOWN else f"{key}={shown}: {allowed}"
        )


class DivergenceError(RuntimeError):
    """Training diverged: too many consecutive non-finite losses (exit status 3)."""


class EnvironmentFault(RuntimeError):
    """The run's environment failed it (another process of the run died): exit status 4."""


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
