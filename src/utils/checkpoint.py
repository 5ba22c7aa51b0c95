"""Checkpoints and crash-safe files: atomic writes, checksummed weights-only reads, RNG states,
`ckpt_path=auto`, and objects rebuilt from a stored config without running its code."""

import hashlib
import importlib
import io
import os
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from src.utils.errors import ConfigError

CHECKSUM_KEY = "convgan_checksum"
# What a stored config may rebuild: the project's own classes, nothing else (a checkpoint is
# data; a `_target_` such as builtins.open must never run).
REBUILDABLE_PACKAGES = ("src.models.", "src.data.")


# --- crash-safe files ---------------------------------------------------------------------
def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Writes via `write(file)` into a temp file in the same directory, fsyncs it, renames it.

    os.replace is atomic within one file system, so a kill at any moment leaves either the
    previous complete file or the new complete one; the directory is fsynced so the rename
    itself survives a power cut. A failed write (disk full, ...) leaves the old file.
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
    atomic_write(path, lambda file: torch.save(obj, file))


def remove_orphaned_temp_files(directory: str | os.PathLike) -> None:
    """Deletes `.<name>.<pid>.tmp` files whose writer process no longer exists (killed)."""
    for tmp in Path(directory).glob(".*.tmp"):
        pid = tmp.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            tmp.unlink(missing_ok=True)


# --- checksums ------------------------------------------------------------------------------
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


# --- reading --------------------------------------------------------------------------------
def load_checkpoint(
    path: str | Path, map_location: Any = "cpu", key: str = "ckpt_path"
) -> dict[str, Any]:
    """Loads with weights_only=True (tensors and plain containers, no code execution) and
    verifies the checksum written by `AtomicCheckpointIO`.

    Any problem (missing, unreadable, damaged, not ours, a pickle that wants to run code) is
    a ConfigError naming `key`, so the CLI reports it in one line.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(key, str(path), "no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # damaged files raise nearly anything from inside the unpickler
        # The weights-only unpickler names the global it refused ("... GLOBAL posix.system
        # ..."); anything else it cannot parse is simply not an intact torch checkpoint.
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
    if checkpoint[CHECKSUM_KEY] != payload_checksum(checkpoint):
        raise ConfigError(key, str(path), "checksum mismatch: the file is damaged")
    return checkpoint


def _atomic_checkpoint_io() -> type:
    """Builds the Trainer's checkpoint plugin class on first use: importing Lightning here at
    module import would happen before the CLI configures logging and before validation."""
    from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        """The Trainer's checkpoint plugin (conf/trainer/default.yaml).

        Writes: plain containers only, refused when the weights are not finite (the previous
        checkpoint stays), checksummed, then temp file + fsync + rename. Lightning's own
        `_atomic_save` overwrites the target in place, so a kill mid-write truncates it.
        Reads: always weights-only and verified, whatever the caller asks.
        """

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
            # The checksum is taken over what a weights-only load gives back (which also proves
            # that the checkpoint loads weights-only), then stored beside it.
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


def resolve_ckpt_path(value: str | None, output_dir: str | Path) -> str | None:
    """`auto`: this run dir's checkpoints/last.ckpt if there is one (else start fresh)."""
    if value != "auto":
        return value
    last = Path(output_dir) / "checkpoints" / "last.ckpt"
    return str(last) if last.is_file() else None


# --- rebuilding objects from a stored config -----------------------------------------------
def rebuild(node: Any, key: str, base: type) -> Any:
    """`node` ({_target_: "src....Class", **kwargs}) built without Hydra's instantiate.

    Only classes of this project that subclass `base` are built, with plain-value arguments;
    anything else (another `_target_`, a nested one, an interpolation) is refused in one line.
    """
    if not isinstance(node, dict) or not isinstance(node.get("_target_"), str):
        raise ConfigError(key, node, "no `_target_` class in the checkpoint's config")
    target = node["_target_"]
    refusal = ConfigError(key, target, "refused: only this project's model and data classes")
    module_name, _, class_name = target.rpartition(".")
    if not target.startswith(REBUILDABLE_PACKAGES) or not class_name.isidentifier():
        raise refusal
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise refusal from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise refusal
    kwargs = {k: v for k, v in node.items() if k != "_target_"}

    def check_plain(value: Any) -> None:
        if isinstance(value, dict):
            if "_target_" in value:
                raise refusal
            for item in value.values():
                check_plain(item)
        elif isinstance(value, list | tuple):
            for item in value:
                check_plain(item)
        elif not (value is None or isinstance(value, bool | int | float | str)):
            raise ConfigError(key, repr(value), "not a plain value")

    check_plain(kwargs)
    try:
        return cls(**kwargs)
    except TypeError as error:
        raise ConfigError(key, target, f"arguments do not fit ({error})") from None


# --- RNG states -----------------------------------------------------------------------------
def rng_states() -> dict[str, Any]:
    """Every RNG a training step may draw from, in weights-only-loadable types."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def load_generator(ckpt_path: str, key: str = "ckpt_path") -> tuple[torch.nn.Module, dict]:
    """G from a checkpoint (the EMA weights when the run kept them) in eval mode, and the
    run's config; G is rebuilt from the project's classes only (`rebuild`)."""
    checkpoint = load_checkpoint(ckpt_path, key=key)
    config = checkpoint.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise ConfigError(key, ckpt_path, "no run config inside: not saved by src.train")
    state = checkpoint["state_dict"]
    ema = "generator_ema.module."  # swa_utils.AveragedModel's copy of G
    prefix = ema if any(k.startswith(ema) for k in state) else "generator."
    generator = rebuild(config["model"].get("generator"), "model.generator", torch.nn.Module)
    weights = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    try:
        generator.load_state_dict(weights)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise ConfigError(key, ckpt_path, f"generator weights do not fit ({first})") from None
    generator.class_names = checkpoint.get("class_names")  # a conditional model's classes
    return generator.eval(), config
