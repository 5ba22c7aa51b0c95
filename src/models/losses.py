"""GAN losses on discriminator logits.

With D(x) = sigmoid(logit): -log D(x) = softplus(-logit) and -log(1 - D(x)) = softplus(logit).
The logit forms are numerically stable and allowed under autocast, unlike Sigmoid + BCELoss.
"""

import torch
import torch.nn.functional as F

from src.utils.errors import ConfigError

G_OBJECTIVES = ("non_saturating", "minimax")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-(E[log D(x)] + E[log(1 - D(G(z)))]): D ascends the minimax value."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor, objective: str = "non_saturating") -> torch.Tensor:
    """G's loss on D's logits for generated images.

    `minimax` minimises E[log(1 - D(G(z)))] exactly as in the minimax game; its gradient
    vanishes while D confidently rejects samples (early training). `non_saturating`
    maximises E[log D(G(z))] instead (Goodfellow et al. 2014, section 3), the usual choice.
    """
    if objective == "non_saturating":
        return F.softplus(-fake_logits).mean()
    if objective == "minimax":
        return -F.softplus(fake_logits).mean()
    raise ConfigError("model.g_objective", objective, f"allowed: {', '.join(G_OBJECTIVES)}")
