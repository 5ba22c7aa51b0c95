"""The adversarial losses on D's logits (no Sigmoid), each a class with a D side and a G side.

`model.loss` is a node of its own (`conf/model/loss/<name>.yaml`, chosen with
`model/loss=<name>`): any `Loss` subclass, in `src` or outside it (`model.loss._target_=...`).
With D(x) = sigmoid(logit): -log D(x) = softplus(-logit) and -log(1 - D(x)) = softplus(logit);
the logit forms are stable and allowed under autocast, and every loss is computed in float32.
"""

import torch
import torch.nn.functional as F

from src.errors import choice


class Loss:
    """D minimises `discriminator(real, fake)`, G minimises `generator(fake, real)`."""

    g_needs_real = False  # the G side also reads D's logits on real images

    def discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def generator(self, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def verdict(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per real and per generated image, positive where D takes it for real under this loss
        (the shares logged as train/d_real and train/d_fake; ADA's r_t is the real side's mean
        sign): the logit itself where the loss separates at 0 (BCE, hinge)."""
        return real.float(), fake.float()


class BCE(Loss):
    """The article's minimax game (Goodfellow et al. 2014); G non-saturating (maximises
    log D(G(z))) or minimax (minimises log(1 - D(G(z))), whose gradient vanishes while D
    rejects the samples)."""

    def __init__(self, g_objective: str = "non_saturating"):
        self.g_objective = choice("model.loss.g_objective", g_objective,
                                  ("non_saturating", "minimax"))  # fmt: skip

    def discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(-real.float()).mean() + F.softplus(fake.float()).mean()

    def generator(self, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        if self.g_objective == "minimax":
            return -F.softplus(fake.float()).mean()
        return F.softplus(-fake.float()).mean()


class Hinge(Loss):
    """Lim & Ye 2017; Miyato et al. 2018."""

    def discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return F.relu(1 - real.float()).mean() + F.relu(1 + fake.float()).mean()

    def generator(self, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        return -fake.float().mean()


class Wasserstein(Loss):
    """The critic of Arjovsky et al. 2017; use it with a penalty (model.penalty=wgan_gp)."""

    def discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return fake.float().mean() - real.float().mean()

    def generator(self, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        return -fake.float().mean()

    def verdict(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A critic has no threshold: each score against the other side's mean score."""
        return against_other_mean(real, fake)


class LeastSquares(Loss):
    """LSGAN (Mao et al. 2017) with targets 1 for real and 0 for fake."""

    def discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((real.float() - 1).pow(2).mean() + fake.float().pow(2).mean())

    def generator(self, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        return 0.5 * (fake.float() - 1).pow(2).mean()

    def verdict(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Closer to the real target 1 than to the fake target 0."""
        return real.float() - 0.5, fake.float() - 0.5


class RelativisticAverage(Loss):
    """Relativistic average BCE (Jolicoeur-Martineau 2019): logits against the other side's mean."""

    g_needs_real = True

    def discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        r, f = real.float(), fake.float()
        return F.softplus(-(r - f.mean())).mean() + F.softplus(f - r.mean()).mean()

    def generator(self, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        r, f = real.float(), fake.float()
        return F.softplus(-(f - r.mean())).mean() + F.softplus(r - f.mean()).mean()

    def verdict(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return against_other_mean(real, fake)


class RelativisticPairing(Loss):
    """RpGAN (R3GAN, Huang et al. 2024): real image i against generated image i, element-wise
    (not against the other side's mean); with R1 + R2 locally convergent (their Theorem)."""

    g_needs_real = True

    def discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(-(real.float() - fake.float())).mean()

    def generator(self, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        return F.softplus(-(fake.float() - real.float())).mean()

    def verdict(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Real image i against generated image i (R3GAN logs these signs)."""
        return real.float() - fake.float(), fake.float() - real.float()


def against_other_mean(real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each side's scores against the other side's mean (losses without a fixed boundary)."""
    return real.float() - fake.float().mean(), fake.float() - real.float().mean()
