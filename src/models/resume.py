"""What a checkpoint must match to be resumed, said in the user's terms, and the global RNG
states a resume restores (Lightning saves none, so noise and augmentation would not continue)."""

import random
from typing import Any

import numpy as np
import torch

from src.errors import ConfigError
from src.models.loading import check_weights

# the keys whose values shape the networks, in the order a mismatch is reported
SHAPING = (
    ("model.generator._target_", "the architecture"), ("data.image_size", "the image size"),
    ("data.channels", "the channels"), ("model.generator.latent_dim", "the latent size"),
    ("model.generator.ngf", "G's width"), ("model.discriminator.ndf", "D's width"),
    ("model.discriminator._target_", "the architecture"),
    ("model.generator.latent_components", "the latent prior"),
    ("model.generator.norm", "G's norm"), ("model.discriminator.norm", "D's norm"),
    ("model.generator.width_multipliers", "G's stage widths"),
    ("model.discriminator.width_multipliers", "D's stage widths"),
    ("model.discriminator.condition", "the condition"),
)  # fmt: skip


# the module's state, by the config node of the part that holds it
PARTS = {"generator_ema.": "model.ema", "augmentation.": "model.augmentation",
         "generator.": "model.generator", "discriminator.": "model.discriminator"}  # fmt: skip


def part_key(name: str) -> str:
    """The config key of the part a state_dict entry belongs to."""
    if name.startswith("regularizers."):
        return "model.regularizers." + name.split(".")[1]
    return next((key for prefix, key in PARTS.items() if name.startswith(prefix)), "model")


def lookup(config: dict[str, Any] | None, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def check_resumable(checkpoint: dict[str, Any], module: Any, path: str | None) -> None:
    """Refuses, in one line, a checkpoint made for other networks or other optimizers."""
    theirs = checkpoint.get("hyper_parameters", {}).get("conditional", False)
    if theirs != module.conditional:
        raise ConfigError(
            "model.conditional", module.conditional,
            f"the checkpoint was trained with model.conditional={theirs}",
        )  # fmt: skip
    ours, stored = module.state_dict(), checkpoint["state_dict"]
    differs = any(
        not isinstance(v, torch.Tensor) or ours[k].shape != v.shape
        for k, v in stored.items() if k in ours
    )  # fmt: skip
    if differs or set(ours) != set(stored):
        for key, what in SHAPING:
            mine, saved = lookup(module.config, key), lookup(checkpoint.get("config"), key)
            if mine is not None and saved is not None and mine != saved:
                raise ConfigError(key, mine, f"the checkpoint was trained with {what} {saved!r}")
        names = sorted(set(ours) ^ set(stored))
        key = part_key(names[0]) if names else None
        if key and lookup(module.config, key) != lookup(checkpoint.get("config"), key):
            where = "missing from" if names[0] in ours else "only in"  # a part changed: its key
            raise ConfigError(
                key, ConfigError.UNSHOWN, f"differs from the checkpoint's (its state "
                f"{names[0]} is {where} it): resume with the run's own setting",
            )  # fmt: skip
    check_weights(stored, ours, "ckpt_path", path)
    states = checkpoint.get("optimizer_states")
    if not isinstance(states, list) or len(states) != len(module.optimizer.built):
        raise ConfigError("ckpt_path", path, "no optimizer states for G and D: it cannot be "
                          "resumed (src.generate and src.evaluate can still use it)")  # fmt: skip
    if module.optimizer.scheduler is not None and not isinstance(
        checkpoint.get("lr_schedulers"), list
    ):
        raise ConfigError(
            "ckpt_path", path, "no lr schedule states (trained without optimizer.scheduler)"
        )
    for key, mine in module.optimizer.classes().items():
        saved = checkpoint.get("optimizer_classes", {}).get(key, mine)
        if saved != mine:
            raise ConfigError(f"optimizer.{key}", mine, f"the checkpoint was trained with {saved}")


def completed_epochs(checkpoint: dict[str, Any]) -> int:
    """The epochs a checkpoint has finished: Lightning's fit-loop record, else its epoch index
    + 1 (an end-of-epoch checkpoint)."""
    progress = lookup(checkpoint.get("loops"), "fit_loop.epoch_progress.current.processed")
    return progress if isinstance(progress, int) else int(checkpoint.get("epoch", -1)) + 1


def reopen_stopped_epoch(checkpoint: dict[str, Any]) -> None:
    """Marks the epoch of a run that `trainer.max_steps` (or a signal) stopped mid-epoch as
    unfinished, so a resume trains its remaining batches. Lightning ends such an epoch with
    its end-of-epoch hooks and records it processed, as if its last batch had been trained;
    resumed, it would start the next epoch and skip the rest (Lightning 2.6). The loader's
    saved position (`src.data.sampling.ResumableLoader`) tells the two apart."""
    loop = (checkpoint.get("loops") or {}).get("fit_loop") or {}
    positions = (loop.get("state_dict") or {}).get("combined_loader")
    epochs, batches = loop.get("epoch_progress"), loop.get("epoch_loop.batch_progress")
    if not positions or not epochs or not batches or batches.get("is_last_batch", True):
        return
    total = epochs["total"]
    if total["started"] == total["processed"] == total["completed"] + 1:  # "ended" mid-epoch
        for counts in (epochs["total"], epochs["current"]):
            counts["processed"] -= 1


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
