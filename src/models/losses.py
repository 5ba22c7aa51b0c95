"""The adversarial losses on D's logits (no Sigmoid), each a class with a D side and a G side.

With D(x) = sigmoid(logit): -log D(x) = softplus(-logit) and -log(1 - D(x)) = softplus(logit);
the logit forms are stable and allowed under autocast, and every loss is computed in float32.
"""

import torch
import torch.nn.functional as F

from src.errors import ConfigError, choice


class Loss:
    """D minimises `discriminator(real, fake)`, G minimises `generator(fake, real)`."""

    g_objectives: tuple[str, ...] = ("non_saturating",)
    g_needs_real = False  # the G side also reads D's logits on real images

    def __init__(self, g_objective: str = "non_saturating"):
        self.g_objective = g_objective

    def discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def generator(self, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def verdict(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Per real image, positive where D takes it for real under this loss (ADA's r_t is the
        mean sign): the logit itself where the loss separates at 0 (BCE, hinge)."""
        return real.float()


class BCE(Loss):
    """The article's minimax game (Goodfellow et al. 2014); G non-saturating or minimax."""

    g_objectives = ("non_saturating", "minimax")

    def discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(-real.float()).mean() + F.softplus(fake.float()).mean()

    def generator(self, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        if self.g_objective == "minimax":  # its gradient vanishes while D rejects the samples
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

    def verdict(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """A critic has no threshold: above the generated images' mean score."""
        return real.float() - fake.float().mean()


class LeastSquares(Loss):
    """LSGAN (Mao et al. 2017) with targets 1 for real and 0 for fake."""

    def discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((real.float() - 1).pow(2).mean() + fake.float().pow(2).mean())

    def generator(self, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        return 0.5 * (fake.float() - 1).pow(2).mean()

    def verdict(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Closer to the real target 1 than to the fake target 0."""
        return real.float() - 0.5


class RelativisticAverage(Loss):
    """Relativistic average BCE (Jolicoeur-Martineau 2019): logits against the other side's mean."""

    g_needs_real = True

    def discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        r, f = real.float(), fake.float()
        return F.softplus(-(r - f.mean())).mean() + F.softplus(f - r.mean()).mean()

    def generator(self, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        r, f = real.float(), fake.float()
        return F.softplus(-(f - r.mean())).mean() + F.softplus(r - f.mean()).mean()

    def verdict(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return real.float() - fake.float().mean()


class RelativisticPairing(Loss):
    """RpGAN (R3GAN, Huang et al. 2024): real image i against generated image i, element-wise
    (not against the other side's mean); with R1 + R2 locally convergent (their Theorem)."""

    g_needs_real = True

    def discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(-(real.float() - fake.float())).mean()

    def generator(self, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        return F.softplus(-(fake.float() - real.float())).mean()

    def verdict(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Real image i against generated image i (R3GAN logs these signs)."""
        return real.float() - fake.float()


# model.loss -> its class: adding a loss is a class and a line here
LOSSES: dict[str, type[Loss]] = {
    "bce": BCE,
    "hinge": Hinge,
    "wasserstein": Wasserstein,
    "least_squares": LeastSquares,
    "relativistic": RelativisticAverage,
    "rpgan": RelativisticPairing,
}


def build_loss(name: str, g_objective: str = "non_saturating") -> Loss:
    """The loss `model.loss` names, with G's objective `model.g_objective`."""
    cls = LOSSES[choice("model.loss", name, tuple(LOSSES))]
    if g_objective not in cls.g_objectives:
        note = " (minimax is defined for loss=bce only)" if g_objective == "minimax" else ""
        allowed = ", ".join(cls.g_objectives)
        raise ConfigError("model.g_objective", g_objective, f"allowed with {name}: {allowed}{note}")
    return cls(g_objective)
