"""Where the tools (`src.generate`, `src.evaluate`) write: a directory checked before any work,
and nothing half-written when the disk fills or a signal stops them."""

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

from src.cli import FILE_SYSTEM_ERRORS
from src.errors import ConfigError, Interrupted


def writable_dir(key: str, path: str | os.PathLike) -> Path:
    """`path` as an existing (created) writable directory, checked before any work."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(key, str(path), "is a file; give a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(key, str(path), f"cannot create it ({error.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(key, str(path), "not writable")
    return path


def shown(path: str | os.PathLike) -> str:
    """`path` as a log line shows it: relative to the working directory when under it or its
    parent (a notebook's folder beside `outputs/`), else from `~` when under the home
    directory, else absolute: stored logs and notebooks name no machine's checkout."""
    path, here = Path(path).absolute(), Path.cwd()
    for base, prefix in ((here, ""), (here.parent, "../"), (Path.home(), "~/")):
        if path.is_relative_to(base) and path != base and base != Path(base.anchor):
            return prefix + str(path.relative_to(base))
    return str(path)


@contextlib.contextmanager
def stopped_by_signals(what: str) -> Iterator[None]:
    """SIGTERM and SIGINT (Ctrl-C) as `Interrupted` (exit 143 / 130, one line), so the code
    that is stopped cleans up (`finally`) instead of dying or printing a traceback. For the
    tools; training keeps Lightning's own handlers (it only takes SIGTERM where none is set)."""

    def terminated(number: int, frame: object) -> None:
        raise Interrupted(f"stopped by SIGTERM; {what}", 128 + number)

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(f"stopped by SIGINT; {what}", 128 + signal.SIGINT) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def writing(key: str) -> Iterator[None]:
    """A full disk, a quota or a read-only place while writing what `key` chose: its line names
    that key (not the run directory's)."""
    try:
        yield
    except OSError as error:
        if error.errno in FILE_SYSTEM_ERRORS:
            error.key = key
        raise
