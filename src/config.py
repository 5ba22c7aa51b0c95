"""What is checked of the composed config before anything is built: numbers that are never
a sensible setting, the seed, the data keys (the data module's own check, called early), G
and D built for the data's shape, and the Trainer values that Lightning accepts although they
would train nothing or start more processes than there are CPUs; then G, D and their
optimizers are built once beforehand, so their constructors' own checks run before the
heavy imports. Everything else is checked by the code that uses it (Lightning its own
Trainer keys)."""

import difflib
import math
import os
from inspect import signature

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from src.data.keys import check_data_keys
from src.errors import ConfigError, integer, number


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


def unread_key(cfg: DictConfig, added: set[str]) -> tuple[str, list[str]] | None:
    """The first key added on the command line (`+key=`) that no constructor receives (not
    inside a `_target_` node, nor a new entry of a group of such nodes), with its siblings."""
    for key in sorted(added):
        if key.split(".")[0] in GROUPS_OF_OBJECTS or key.startswith("model.regularizers."):
            continue
        parent, path = cfg, []
        for part in key.split("."):
            path.append(part)
            node = parent.get(part)
            if isinstance(node, DictConfig) and "_target_" in node:
                break  # its constructor receives the key, and refuses it if it does not take it
            if all(leaf in added for leaf in leaves(node, ".".join(path))):
                return ".".join(path), [str(k) for k in parent if str(k) != part]
            parent = node
    return None


def leaves(node: object, path: str) -> list[str]:
    if not isinstance(node, DictConfig):
        return [path]
    return [leaf for k in node for leaf in leaves(node._get_node(k), f"{path}.{k}")]


GROUPS_OF_OBJECTS = ("callbacks", "logger", "hydra")  # each entry a `_target_` of its own


def unresolvable(node: DictConfig | ListConfig, path: str = "") -> list[ConfigError]:
    """Every interpolation that cannot be resolved (a loop, a missing key or variable), as a
    ConfigError naming where it is written."""
    found = []
    for key in node.keys() if isinstance(node, DictConfig) else range(len(node)):
        where = f"{path}.{key}" if path else str(key)
        if OmegaConf.is_missing(node, key):
            continue
        try:
            value = node[key]
        except OmegaConfBaseException as error:
            reason = " ".join(str(error).split("\n")[0].split())
            found.append(
                ConfigError(where, node._get_node(key)._value(), f"cannot be resolved: {reason}")
            )
            continue
        if isinstance(value, DictConfig | ListConfig):
            found += unresolvable(value, where)
    return found


def task_overrides() -> list[str]:
    """The command line's overrides as typed (not resolved: `x=${y}` stays as written)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return OmegaConf.to_container(HydraConfig.get().overrides.task, resolve=False)


def validate(cfg: DictConfig) -> None:
    """The start-up checks; raises the first ConfigError found."""
    task = task_overrides()
    if broken := unresolvable(cfg):  # said where the user wrote it, if on the command line
        typed = {o.split("=", 1)[0].lstrip("+~") for o in task}
        raise next((e for e in broken if e.key in typed), broken[0])
    if found := non_finite(cfg):
        raise ConfigError(*found, "allowed: a finite number")
    if task:
        added = {o.split("=", 1)[0].lstrip("+") for o in task if o.startswith("+")}
        if found := unread_key(cfg, added):
            key, siblings = found
            parent, _, name = key.rpartition(".")
            near = difflib.get_close_matches(name, siblings, n=3, cutoff=0.6)
            near = [f"{parent}.{k}" if parent else k for k in near]
            hint = (
                f"did you mean {', '.join(near)}?" if near else f"keys here: {', '.join(siblings)}"
            )
            raise ConfigError(key, OmegaConf.select(cfg, key), f"nothing reads this key; {hint}")
    integer("seed", cfg.seed, low=0, high=2**32 - 1)
    data = cfg.get("data") or {}  # the data module's own check, before the heavy imports
    check_data_keys(**{k: data[k] for k in signature(check_data_keys).parameters if k in data})
    optimizer = cfg.get("optimizer") or {}
    if "lr" in optimizer:  # the optimizer group's knobs, which its partials interpolate
        number("optimizer.lr", optimizer.lr, low_open=True)
    if "momentum" in optimizer:
        number("optimizer.momentum", optimizer.momentum, 0.0, 1.0, high_open=True)
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
    if (every := trainer.get("check_val_every_n_epoch")) is not None:  # Lightning takes 0 and -1
        integer("trainer.check_val_every_n_epoch", every)
    check_processes(trainer)
    precision = trainer.get("precision", "32-true")
    if str(precision).startswith("64"):
        raise ConfigError(
            "trainer.precision", precision, "allowed: 32-true, bf16-mixed, 16-mixed, bf16-true, "
            "16-true (the data and latents are float32: no float64 runs)",
        )  # fmt: skip
    dry_build(cfg)


def check_processes(trainer: DictConfig) -> None:
    """Lightning starts as many CPU processes as asked for: no more than there are CPUs. On
    the CPU, Lightning takes `devices` as a whole number > 0 (or `auto`: 1) and refuses the
    rest itself; `accelerator: auto` is the CPU where torch sees no GPU."""
    import torch

    accelerator, devices = trainer.get("accelerator", "auto"), trainer.get("devices", "auto")
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if isinstance(devices, str) and devices.strip().isdigit():
        devices = int(devices)
    cpus = os.cpu_count() or 1
    if on_cpu and isinstance(devices, int) and not isinstance(devices, bool) and devices > cpus:
        raise ConfigError("trainer.devices", devices, f"allowed: 1..{cpus} ({cpus} CPUs here)")


def dry_build(cfg: DictConfig) -> None:
    """G and D built on the CPU under a forked RNG (the run's random draws are untouched; the
    meta device would take no memory but runs spectral norm's power iteration ten times
    slower) and each network's optimizer for one parameter, as `fit` builds them: what their
    constructors refuse
    (a size or width an architecture lacks, torch's optimizer arguments) is said in the time
    it takes to import torch, not after Lightning and the data (experiments/error_latency)."""
    import torch

    from src.models.optim import build_optimizer
    from src.utils.instantiators import instantiate

    classes = 2 if cfg.model.get("conditional") else 0  # the data's count is known later
    with torch.random.fork_rng(devices=[]):
        for net in ("generator", "discriminator"):
            if "_target_" in cfg.model.get(net, {}):
                instantiate(cfg.model[net], num_classes=classes)
    for net in ("generator", "discriminator"):
        if "_target_" in cfg.get("optimizer", {}).get(net, {}):
            one = torch.nn.Linear(1, 1, bias=False)
            build_optimizer(instantiate(cfg.optimizer[net]), one, f"optimizer.{net}")
