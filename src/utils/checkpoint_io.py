"""The Trainer's checkpoint plugin (conf/trainer/default.yaml): atomic writes, safe reads."""

from pathlib import Path
from typing import Any

from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from src.utils.checkpoint import load_checkpoint
from src.utils.io import atomic_torch_save


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made crash-safe: temp file, fsync, rename.

    Lightning's own `_atomic_save` serialises to memory first but then overwrites the target
    in place, so a kill mid-write leaves a truncated `last.ckpt`. Reads are weights-only.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(
        self, path: str | Path, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Always weights-only, whatever the caller asks: a checkpoint is data, never code."""
        return load_checkpoint(path, map_location=map_location)
