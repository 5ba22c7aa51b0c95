"""What every entry point (train, generate, evaluate) does with a user mistake: one line."""

import functools
import sys
from collections.abc import Callable
from typing import Any

from src.utils.errors import ConfigError, DivergenceError


def fail(message: str, status: int) -> None:
    one_line = " ".join(message.split())
    print(f"error: {one_line}", file=sys.stderr, flush=True)
    sys.exit(status)


def one_line_errors(main: Callable[..., Any]) -> Callable[..., Any]:
    """ConfigError -> `error: config error: ...`, exit 2; DivergenceError -> exit 3."""

    @functools.wraps(main)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return main(*args, **kwargs)
        except ConfigError as error:
            fail(f"config error: {error}", status=2)
        except DivergenceError as error:
            fail(str(error), status=3)

    return wrapped
