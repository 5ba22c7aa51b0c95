"""Start-up checks of the composed config, before any data is read or any network is built.

Each mistake raises a ConfigError: the key, the bad value, what is allowed. Misspelled keys
never get here: Hydra's struct mode already refuses overrides of keys that do not exist.
"""

import math
import os
import re
from numbers import Real
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from src.models.dcgan import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
from src.models.optim import OPTIMIZERS, SCHEDULES
from src.utils.checkpoint import load_checkpoint
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


def validate_optimizer(cfg: DictConfig) -> None:
    opt = cfg.optimizer
    check(opt.name in OPTIMIZERS, "optimizer.name", opt.name, f"allowed: {', '.join(OPTIMIZERS)}")
    for key in ("lr", "lr_g", "lr_d"):
        value = opt.get(key)
        if key != "lr" and value is None:
            continue
        check(is_number(value) and value > 0, f"optimizer.{key}", value, "allowed: a number > 0")
    for key in ("momentum", "beta2"):
        if key in opt:
            value = opt[key]
            check(is_number(value) and 0 <= value < 1, f"optimizer.{key}", value, "allowed: [0, 1)")
    scale = opt.get("scale_lr", "none")
    check(scale in ("none", "linear", "sqrt"), "optimizer.scale_lr", scale,
          "allowed: none, linear, sqrt")  # fmt: skip
    decay = opt.get("weight_decay", 0)
    check(is_number(decay) and decay >= 0, "optimizer.weight_decay", decay, "allowed: >= 0")
    schedule = opt.get("schedule", "constant")
    check(schedule in SCHEDULES, "optimizer.schedule", schedule,
          f"allowed: {', '.join(SCHEDULES)}")  # fmt: skip
    start = opt.get("decay_start", 0.5)
    check(is_number(start) and 0 <= start < 1, "optimizer.decay_start", start, "allowed: [0, 1)")


def validate_data(cfg: DictConfig) -> None:
    data = cfg.data
    size = data.image_size
    check(
        is_int(size) and MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE and not size & (size - 1),
        "data.image_size", size, f"allowed: a power of two in [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}]",
    )  # fmt: skip
    check(data.channels in (1, 3), "data.channels", data.channels, "allowed: 1 or 3")
    check(
        is_int(data.batch_size) and data.batch_size >= 1,
        "data.batch_size", data.batch_size, "allowed: an integer >= 1",
    )  # fmt: skip
    workers = data.get("num_workers", 0)
    check(is_int(workers) and workers >= 0, "data.num_workers", workers, "allowed: >= 0")
    if OmegaConf.is_missing(data, "root"):  # `"root" in data` is False for a missing value
        raise ConfigError("data.root", "???", "required: the directory that holds the dataset")
    if "root" in data and not data.get("download", False):
        root = data.root
        check(
            root is not None and Path(root).is_dir(), "data.root", root,
            "no such directory (point it at the dataset, or data.download=true with a network)",
        )  # fmt: skip


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


def validate_checkpoint(cfg: DictConfig, ckpt_path: str | None) -> None:
    """The checkpoint exists, loads weights-only, and was made for the same networks."""
    if ckpt_path is None:
        return
    checkpoint = load_checkpoint(ckpt_path)
    saved = checkpoint.get("config", {}).get("data", {})
    for key in ("image_size", "channels"):
        if key in saved and saved[key] != cfg.data[key]:
            raise ConfigError(
                f"data.{key}", cfg.data[key],
                f"the checkpoint {ckpt_path} was trained with data.{key}={saved[key]}",
            )  # fmt: skip


def validate(cfg: DictConfig, ckpt_path: str | None = None) -> None:
    """All start-up checks; raises the first ConfigError found."""
    check(
        is_int(cfg.seed) and 0 <= cfg.seed < 2**32, "seed", cfg.seed,
        "allowed: an integer in [0, 2**32)",
    )  # fmt: skip
    validate_optimizer(cfg)
    validate_data(cfg)
    validate_model(cfg)
    validate_trainer(cfg)
    validate_checkpoint(cfg, ckpt_path)
