"""What must be known about the composed config before the heavy imports: the values that
decide how many processes start (trainer devices, accelerator), the Trainer settings that
Lightning accepts but this template cannot use, the seed, and numbers that are not finite
anywhere. Everything else is checked by the constructor that uses it (models, datamodules,
optimizers), once. Each mistake raises a ConfigError: the key, the bad value, what is
allowed. Misspelled keys never get here: Hydra's struct mode refuses them.
"""

import math
import os
import re
from numbers import Real
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from src.utils.errors import ConfigError

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
PRECISIONS = (
    "32-true", "32", 32, "16-mixed", "bf16-mixed", "bf16-true", "16-true",
)  # fmt: skip
DEVICE_IDS = re.compile(r"^\s*-?\d+\s*$|^\s*\d+\s*(,\s*\d+\s*)*,?\s*$")


def is_number(value: object) -> bool:
    """A finite real number (inf and nan are never a sensible setting)."""
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check(ok: bool, key: str, value: object, allowed: str) -> None:
    if not ok:
        raise ConfigError(key, value, allowed)


def non_finite(node: DictConfig | ListConfig, path: str = "") -> tuple[str, float] | None:
    """The first key written with inf or nan (never a sensible setting), or None. Keys that
    interpolate another are skipped: the value is reported where it is written."""
    keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
    for key in keys:
        if OmegaConf.is_missing(node, key) or OmegaConf.is_interpolation(node, key):
            continue
        value, where = node[key], f"{path}.{key}" if path else str(key)
        if isinstance(value, DictConfig | ListConfig):
            if found := non_finite(value, where):
                return found
        elif isinstance(value, float) and not math.isfinite(value):
            return where, value
    return None


def validate_data(cfg: DictConfig) -> None:
    if OmegaConf.is_missing(cfg.data, "root"):  # `"root" in data` is False for a missing value
        raise ConfigError("data.root", "???", "required: the directory that holds the dataset")


def validate_model(cfg: DictConfig) -> None:
    """G and D are built for the data's resolution and channels (interpolated by default)."""
    for net in ("generator", "discriminator"):
        for key in ("image_size", "channels"):
            value = cfg.model.get(net, {}).get(key)
            if value is not None and value != cfg.data[key]:
                raise ConfigError(
                    f"model.{net}.{key}", value, f"must match data.{key}={cfg.data[key]}"
                )


def available_devices(accelerator: str) -> int:
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.cuda.device_count()
    return os.cpu_count() or 1


def validate_trainer(cfg: DictConfig) -> None:
    trainer = cfg.trainer
    accelerator = trainer.get("accelerator", "auto")
    check(
        accelerator in ACCELERATORS, "trainer.accelerator", accelerator,
        f"allowed: {', '.join(ACCELERATORS)}",
    )  # fmt: skip
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            "trainer.accelerator", accelerator, "no GPU here; use hardware=cpu or hardware=auto"
        )
    devices = trainer.get("devices", "auto")
    if is_int(devices):
        available = available_devices(accelerator)
        kind = "GPUs" if accelerator in ("gpu", "cuda") or torch.cuda.is_available() else "CPUs"
        check(
            1 <= devices <= available or devices == -1, "trainer.devices", devices,
            f"allowed: 1..{available} ({available} {kind} here) or -1 for all",
        )  # fmt: skip
    elif devices != "auto" and not (
        (isinstance(devices, str) and DEVICE_IDS.match(devices))
        or (isinstance(devices, list | tuple) and devices and all(is_int(d) for d in devices))
    ):
        raise ConfigError("trainer.devices", devices, "allowed: a count, a list of ids or auto")
    precision = trainer.get("precision", "32-true")
    check(
        precision in PRECISIONS, "trainer.precision", precision,
        "allowed: 32-true, bf16-mixed, 16-mixed, bf16-true, 16-true",
    )  # fmt: skip
    epochs = trainer.get("max_epochs")
    check(
        epochs is None or (is_int(epochs) and (epochs >= 1 or epochs == -1)),
        "trainer.max_epochs", epochs, "allowed: an integer >= 1, or -1 for no limit",
    )  # fmt: skip
    limit = trainer.get("limit_train_batches")
    check(
        limit is None or (is_int(limit) and limit >= 1) or (is_number(limit) and 0 < limit <= 1),
        "trainer.limit_train_batches", limit,
        "allowed: null (all), a count >= 1 or a fraction in (0, 1]; 0 would train nothing",
    )  # fmt: skip
    every = trainer.get("log_every_n_steps", 50)
    check(is_int(every) and every >= 1, "trainer.log_every_n_steps", every, "allowed: >= 1")


def planned_world_size(trainer: DictConfig) -> int:
    """Processes the run will use: devices per node x nodes (Lightning's rules for `auto`)."""
    accelerator = trainer.get("accelerator", "auto")
    devices = trainer.get("devices", "auto")
    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if devices == "auto":
        count = available_devices(accelerator) if gpu else 1
    elif devices == -1 or devices == "-1":
        count = available_devices(accelerator)
    elif is_int(devices):
        count = devices
    elif isinstance(devices, str):
        ids = [d for d in devices.split(",") if d.strip()]
        count = len(ids) if "," in devices else int(devices)
    else:
        count = len(devices)
    return count * int(trainer.get("num_nodes", 1) or 1)


def validate(cfg: DictConfig) -> None:
    """All start-up checks; raises the first ConfigError found."""
    if found := non_finite(cfg):
        raise ConfigError(*found, "allowed: a finite number")
    check(
        is_int(cfg.seed) and 0 <= cfg.seed < 2**32, "seed", cfg.seed,
        "allowed: an integer in [0, 2**32)",
    )  # fmt: skip
    validate_data(cfg)
    validate_model(cfg)
    validate_trainer(cfg)


def choose_strategy(trainer: DictConfig) -> Any:
    """More than one process: our DDP for the two-optimizer step (src/utils/distributed.py).

    `auto` and `ddp` mean "data parallel" to a user; plain DistributedDataParallel cannot run
    the alternating D/G updates, so both map to gan_ddp. Any other strategy is passed on.
    """
    strategy = trainer.get("strategy", "auto")
    if strategy in ("auto", "ddp", "gan_ddp") and planned_world_size(trainer) > 1:
        return "gan_ddp"
    return strategy
