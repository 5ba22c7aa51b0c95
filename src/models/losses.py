"""GAN losses on discriminator logits (D's raw output, no Sigmoid), and D's regularizers.

With D(x) = sigmoid(logit): -log D(x) = softplus(-logit) and -log(1 - D(x)) = softplus(logit).
The logit forms are numerically stable and allowed under autocast, unlike Sigmoid + BCELoss.
Every loss is computed in float32 whatever the autocast dtype of the logits.
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F

from src.utils.errors import ConfigError

LOSSES = ("bce", "hinge", "wasserstein", "least_squares", "relativistic")
G_OBJECTIVES = ("non_saturating", "minimax")
PENALTIES = ("none", "wgan_gp", "r1", "r2")


def check_loss(loss: str, objective: str) -> None:
    if loss not in LOSSES:
        raise ConfigError("model.loss", loss, f"allowed: {', '.join(LOSSES)}")
    if objective not in G_OBJECTIVES:
        raise ConfigError("model.g_objective", objective, f"allowed: {', '.join(G_OBJECTIVES)}")
    if objective != "non_saturating" and loss != "bce":
        raise ConfigError("model.g_objective", objective, "minimax is defined for loss=bce only")


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, loss: str = "bce"
) -> torch.Tensor:
    """D's loss (minimised) on its logits for real and generated images.

    bce: -(E[log D(x)] + E[log(1 - D(G(z)))]), D ascends the minimax value (Goodfellow et
    al. 2014). hinge: E[relu(1 - D(x))] + E[relu(1 + D(G(z)))] (Lim & Ye 2017; Miyato et al.
    2018). wasserstein: E[D(G(z))] - E[D(x)], the critic of Arjovsky et al. 2017 (use it with
    a penalty). least_squares: (E[(D(x) - 1)^2] + E[D(G(z))^2]) / 2 (Mao et al. 2017).
    relativistic: the relativistic average BCE of Jolicoeur-Martineau 2019.
    """
    r, f = real_logits.float(), fake_logits.float()
    if loss == "bce":
        return F.softplus(-r).mean() + F.softplus(f).mean()
    if loss == "hinge":
        return F.relu(1 - r).mean() + F.relu(1 + f).mean()
    if loss == "wasserstein":
        return f.mean() - r.mean()
    if loss == "least_squares":
        return 0.5 * ((r - 1).pow(2).mean() + f.pow(2).mean())
    if loss == "relativistic":
        return F.softplus(-(r - f.mean())).mean() + F.softplus(f - r.mean()).mean()
    raise ConfigError("model.loss", loss, f"allowed: {', '.join(LOSSES)}")


def generator_loss(
    fake_logits: torch.Tensor,
    loss: str = "bce",
    objective: str = "non_saturating",
    real_logits: torch.Tensor | None = None,
) -> torch.Tensor:
    """G's loss on D's logits for generated images (`real_logits` for `relativistic` only).

    bce: `non_saturating` maximises E[log D(G(z))] (Goodfellow et al. 2014, section 3, the
    usual choice); `minimax` minimises E[log(1 - D(G(z)))] exactly as in the minimax game,
    whose gradient vanishes while D confidently rejects samples (early training).
    hinge and wasserstein: -E[D(G(z))]. least_squares: E[(D(G(z)) - 1)^2] / 2.
    relativistic: the relativistic average BCE with real and fake swapped.
    """
    f = fake_logits.float()
    if loss == "bce":
        if objective == "minimax":
            return -F.softplus(f).mean()
        return F.softplus(-f).mean()
    if loss in ("hinge", "wasserstein"):
        return -f.mean()
    if loss == "least_squares":
        return 0.5 * (f - 1).pow(2).mean()
    if loss == "relativistic":
        r = real_logits.float()
        return F.softplus(-(f - r.mean())).mean() + F.softplus(r - f.mean()).mean()
    raise ConfigError("model.loss", loss, f"allowed: {', '.join(LOSSES)}")


def gradient_penalty(
    discriminator: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    logits: torch.Tensor | None = None,
) -> torch.Tensor:
    """E[||grad_x D(x)||^2] over the batch, in float32, with a graph for the double backward.

    `logits` may be D's output already computed from `inputs` (which then required grad):
    R1/R2 reuse the D step's forward. Without them D runs on `inputs` here.
    """
    if logits is None:
        inputs = inputs.detach().requires_grad_(True)
        logits = discriminator(inputs)
    (grad,) = torch.autograd.grad(logits.float().sum(), inputs, create_graph=True)
    return grad.float().pow(2).flatten(1).sum(1)


def wgan_gp(
    discriminator: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor
) -> torch.Tensor:
    """E[(||grad D(x_hat)||_2 - 1)^2] at random points between real and fake images
    (Gulrajani et al. 2017)."""
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    between = eps * real.detach() + (1 - eps) * fake.detach()
    norms = gradient_penalty(discriminator, between).add(1e-12).sqrt()
    return (norms - 1).pow(2).mean()


def lecam(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, ema_real: torch.Tensor,
    ema_fake: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """LeCam regularization (Tseng et al. 2021, eq. 3, as in their code and StudioGAN):
    E[relu(D(x) - a_F)^2] + E[relu(a_R - D(G(z)))^2] with a_R, a_F the moving averages of D's
    outputs on real and generated images."""
    return (
        F.relu(real_logits.float() - ema_fake).pow(2).mean()
        + F.relu(ema_real - fake_logits.float()).pow(2).mean()
    )


def mode_seeking(images: torch.Tensor, z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Mode-seeking regularization (Mao et al. 2019, MSGAN), for G: 1 / (ratio + eps) with
    ratio = mean|G(z1) - G(z2)| / mean|z1 - z2| over the pairs (i, i + n/2) of the batch (the
    same class when conditional), so G cannot map different latents to one image."""
    half = images.shape[0] // 2
    ratio = (images[:half].float() - images[half : 2 * half].float()).abs().mean() / (
        z[:half].float() - z[half : 2 * half].float()
    ).abs().mean()
    return 1 / (ratio + eps)
