"""What is checked of the composed config before anything is built: numbers that are never
a sensible setting, the seed, G and D built for the data's shape, and the Trainer values that
Lightning accepts although they would train nothing or start more processes than there are
CPUs. Everything else is checked by the code that uses it (Lightning its own Trainer keys)."""

import math
import os

from omegaconf import DictConfig, ListConfig, OmegaConf

from src.errors import ConfigError, integer


def non_finite(node: DictConfig | ListConfig, path: str = "") -> tuple[str, float] | None:
    """The first key written with inf or nan, or None; an interpolating key is skipped (the
    value is reported where it is written)."""
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


def validate(cfg: DictConfig) -> None:
    """The start-up checks; raises the first ConfigError found."""
    if found := non_finite(cfg):
        raise ConfigError(*found, "allowed: a finite number")
    integer("seed", cfg.seed, low=0, high=2**32 - 1)
    for net in ("generator", "discriminator"):
        for key in ("image_size", "channels"):
            value = cfg.model.get(net, {}).get(key)
            if value is not None and value != cfg.data[key]:
                raise ConfigError(
                    f"model.{net}.{key}", value, f"must match data.{key}={cfg.data[key]}"
                )
    trainer = cfg.trainer
    epochs = trainer.get("max_epochs")
    if epochs != -1:
        integer("trainer.max_epochs", epochs)
    limit = trainer.get("limit_train_batches")
    if limit == 0:
        raise ConfigError("trainer.limit_train_batches", limit, "allowed: > 0 (0 trains nothing)")
    integer("trainer.log_every_n_steps", trainer.get("log_every_n_steps", 50))
    precision = trainer.get("precision", "32-true")
    if str(precision).startswith("64"):
        raise ConfigError(
            "trainer.precision", precision, "allowed: 32-true, bf16-mixed, 16-mixed, bf16-true, "
            "16-true (the data and latents are float32: no float64 runs)",
        )  # fmt: skip


def check_processes(trainer: object) -> None:
    """Lightning starts as many CPU processes as asked for: no more than there are CPUs."""
    from pytorch_lightning.accelerators import CPUAccelerator

    cpus = os.cpu_count() or 1
    if isinstance(trainer.accelerator, CPUAccelerator) and trainer.num_devices > cpus:
        raise ConfigError(
            "trainer.devices", trainer.num_devices, f"allowed: 1..{cpus} ({cpus} CPUs here)"
        )
