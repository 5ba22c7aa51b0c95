"""Crash-safe, checksummed checkpoints (Lightning gaps: its `_atomic_save` overwrites in place,
so a kill mid-write truncates the file; torch.load checks no CRC), and `ckpt_path=auto`."""

import hashlib
import io
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from src.errors import ConfigError

CHECKSUM_KEY = "convgan_checksum"


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """`write(file)` into a temp file beside `path`, fsynced, renamed over it (atomic in one
    file system), the directory fsynced: a kill or a full disk leaves the previous file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except OSError as error:  # a full disk names no file: say which one
        raise OSError(error.errno, error.strerror, str(path)) from None
    finally:
        tmp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def remove_orphaned_temp_files(directory: str | os.PathLike) -> None:
    """Deletes `.<name>.<pid>.tmp` files whose writer process no longer exists (killed)."""
    for tmp in Path(directory).glob(".*.tmp"):
        pid = tmp.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            tmp.unlink(missing_ok=True)


def payload_checksum(obj: Any) -> str:
    """sha256 over every tensor, number, string and key of a checkpoint, in order."""
    digest = hashlib.sha256()

    def visit(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous()
            digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(value, dict):
            items = [(k, v) for k, v in value.items() if k != CHECKSUM_KEY]
            digest.update(f"D{len(items)}".encode())
            for key, item in items:
                visit(key)
                visit(item)
        elif isinstance(value, list | tuple):
            digest.update(f"L{len(value)}".encode())
            for item in value:
                visit(item)
        else:
            digest.update(f"{type(value).__name__}:{value!r}".encode())

    visit(obj)
    return digest.hexdigest()


def plain(value: Any) -> Any:
    """OmegaConf containers as dicts/lists (weights-only loading refuses OmegaConf objects)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(plain(v) for v in value)
    return value


def load_checkpoint(
    path: str | Path, map_location: Any = "cpu", key: str = "ckpt_path"
) -> dict[str, Any]:
    """Weights-only (no code runs), checksum-verified; any problem a ConfigError naming `key`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(key, str(path), "no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # damaged files raise nearly anything from inside the unpickler
        if found := re.search(r"GLOBAL (\S+)", str(error)):
            raise ConfigError(
                key, str(path), f"refused: it would import {found.group(1)} (code, not weights)"
            ) from None
        raise ConfigError(
            key, str(path), f"unreadable or truncated checkpoint ({type(error).__name__})"
        ) from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise ConfigError(key, str(path), "not a convgan/Lightning checkpoint (no state_dict)")
    if CHECKSUM_KEY not in checkpoint:
        raise ConfigError(key, str(path), "no checksum: not written by convgan, or damaged")
    try:
        intact = checkpoint[CHECKSUM_KEY] == payload_checksum(checkpoint)
    except RecursionError:  # nested deeper than any checkpoint of ours
        intact = False
    if not intact:
        raise ConfigError(key, str(path), "checksum mismatch: the file is damaged")
    return checkpoint


def _atomic_checkpoint_io() -> type:
    """The Trainer's checkpoint plugin, built on first use (after the start-up checks)."""
    from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        """Writes plain containers, checksummed, atomically, never non-finite weights (the
        last checkpoint stays); reads weights-only and verified, whatever the caller asks."""

        def save_checkpoint(
            self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
        ) -> None:
            if storage_options is not None:
                raise TypeError(f"{type(self).__name__} takes no storage_options")
            checkpoint = plain(checkpoint)
            bad = [
                name
                for name, value in checkpoint["state_dict"].items()
                if value.is_floating_point() and not torch.isfinite(value).all()
            ]
            if bad:
                from pytorch_lightning.utilities import rank_zero_warn

                rank_zero_warn(f"not saving {path}: non-finite weights in {bad[0]} (kept the last)")
                return
            # the checksum of what a weights-only load gives back (proving that it loads so)
            buffer = io.BytesIO()
            torch.save(checkpoint, buffer)
            buffer.seek(0)
            checkpoint[CHECKSUM_KEY] = payload_checksum(torch.load(buffer, weights_only=True))
            buffer = io.BytesIO()
            torch.save(checkpoint, buffer)  # serialised first: a failure leaves no temp file
            atomic_write(path, lambda file: file.write(buffer.getbuffer()))

        def load_checkpoint(
            self, path: str | Path, map_location: Any = None, weights_only: bool | None = None
        ) -> dict[str, Any]:
            return load_checkpoint(path, map_location=map_location)

    return AtomicCheckpointIO


def __getattr__(name: str) -> Any:
    """`src.utils.checkpoint.AtomicCheckpointIO` (conf/trainer/default.yaml), built lazily."""
    if name == "AtomicCheckpointIO":
        globals()[name] = _atomic_checkpoint_io()
        return globals()[name]
    raise AttributeError(name)
