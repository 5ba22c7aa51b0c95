"""Crash-safe file writes: a reader sees the old file or the new one, never half of one."""

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Writes via `write(file)` into a temp file in the same directory, fsyncs it, renames it.

    os.replace is atomic within one file system, so a kill at any moment leaves either the
    previous complete file or the new complete one; the directory is fsynced so the rename
    itself survives a power cut.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save through `atomic_write`."""
    atomic_write(path, lambda file: torch.save(obj, file))
