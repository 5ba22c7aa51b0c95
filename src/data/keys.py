"""The `data.*` keys every dataset shares, checked without torch or Lightning: `ImageDataModule`
checks its arguments here, and `src.config.validate` calls the same check at start, so a
mistake is one line before the heavy imports."""

import os
from pathlib import Path

from src.errors import ConfigError, choice, integer, number

RESIDENT_CHOICES = ("auto", True, False)


def check_data_keys(
    root: str | None = None,
    download: bool = False,
    channels: int = 1,
    batch_size: int = 64,
    num_workers: int = 0,
    val_size: int = 1000,
    resident: str | bool = "auto",
    resident_max_gb: float = 4.0,
) -> None:
    choice("data.channels", channels, (1, 3))
    integer("data.batch_size", batch_size)
    cpus = os.cpu_count() or 1  # loader processes beyond a few per CPU only fill memory
    integer("data.num_workers", num_workers, low=0, high=4 * cpus)
    integer("data.val_size", val_size, low=2)
    number("data.resident_max_gb", resident_max_gb)
    choice("data.resident", resident, RESIDENT_CHOICES)
    if root is not None and not download and not Path(root).is_dir():
        raise ConfigError(
            "data.root", root,
            "no such directory (point it at the dataset, or data.download=true with a network)",
        )  # fmt: skip
