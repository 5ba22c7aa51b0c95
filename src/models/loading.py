"""A trained generator back from a checkpoint (weights-only), as the run showed it."""

from typing import Any

import hydra
import torch
from torch import nn

from src.utils.checkpoint import load_checkpoint
from src.utils.errors import ConfigError


def load_generator(ckpt_path: str, key: str = "ckpt_path") -> tuple[nn.Module, dict[str, Any]]:
    """G (the EMA weights when the run kept them) in eval mode, and the run's config."""
    checkpoint = load_checkpoint(ckpt_path, key=key)
    config = checkpoint.get("config")
    if not isinstance(config, dict) or "model" not in config:
        raise ConfigError(key, ckpt_path, "no run config inside: not saved by src.train")
    state = checkpoint["state_dict"]
    prefix = (
        "generator_ema." if any(k.startswith("generator_ema.") for k in state) else "generator."
    )
    generator = hydra.utils.instantiate(config["model"]["generator"])
    weights = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    try:
        generator.load_state_dict(weights)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise ConfigError(key, ckpt_path, f"generator weights do not fit ({first})") from None
    return generator.eval(), config


@torch.no_grad()
def generate(generator: nn.Module, n: int, seed: int = 0, batch: int = 500) -> torch.Tensor:
    """`n` images in [-1, 1] from seeded latents (BatchNorm on running statistics)."""
    rng = torch.Generator().manual_seed(seed)
    z = generator.sample_latent(n, generator=rng)
    return torch.cat([generator(chunk) for chunk in z.split(batch)]) if n else z
