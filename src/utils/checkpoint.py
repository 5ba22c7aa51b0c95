"""Checkpoints: safe (weights-only) reads, RNG states, `ckpt_path=auto`."""

import pickle
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from src.utils.errors import ConfigError

REQUIRED_KEYS = ("state_dict",)


def load_checkpoint(
    path: str | Path, map_location: Any = "cpu", key: str = "ckpt_path"
) -> dict[str, Any]:
    """Loads with weights_only=True (tensors and plain containers, no code execution).

    Any problem (missing, unreadable, not a checkpoint, a pickle that wants to run code) is a
    ConfigError naming `key`, so the CLI reports it in one line.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(key, str(path), "no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        # The weights-only unpickler names the global it refused ("... GLOBAL posix.system
        # ..."); anything else it cannot parse is simply not a torch checkpoint.
        if found := re.search(r"GLOBAL (\S+)", str(error)):
            raise ConfigError(
                key, str(path), f"refused: it would import {found.group(1)} (code, not weights)"
            ) from None
        raise ConfigError(key, str(path), "unreadable or truncated checkpoint") from None
    except (OSError, RuntimeError, EOFError, ValueError) as error:
        raise ConfigError(
            key, str(path), f"unreadable or truncated checkpoint ({type(error).__name__})"
        ) from None
    if not isinstance(checkpoint, dict) or any(k not in checkpoint for k in REQUIRED_KEYS):
        raise ConfigError(key, str(path), "not a convgan/Lightning checkpoint (no state_dict)")
    return checkpoint


def resolve_ckpt_path(value: str | None, output_dir: str | Path) -> str | None:
    """`auto`: this run dir's checkpoints/last.ckpt if there is one (else start fresh)."""
    if value != "auto":
        return value
    last = Path(output_dir) / "checkpoints" / "last.ckpt"
    return str(last) if last.is_file() else None


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
