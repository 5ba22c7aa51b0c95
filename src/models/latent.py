"""The latent prior every generator shares: N(0, I), or a Gaussian mixture."""

import torch
from torch import nn

from src.utils.errors import ConfigError

NORMS = ("batch", "spectral", "none")


def check_norm(key: str, norm: str) -> str:
    if norm not in NORMS:
        raise ConfigError(key, norm, f"allowed: {', '.join(NORMS)}")
    return norm


def positive_int(key: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(key, value, "allowed: an integer >= 1")
    return value


def check_num_classes(num_classes: object) -> int:
    """model.num_classes, as G and D both receive it: 0 (unconditional) or a class count."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
        raise ConfigError("model.num_classes", num_classes, "allowed: an integer >= 0")
    return num_classes


class LatentGenerator(nn.Module):
    """Base of every generator: owns the latent prior and `sample_latent`.

    The prior is N(0, I) (DCGAN, SNGAN), or with `latent_components` = K > 0 an equal mixture
    of K unit Gaussians around fixed random centres drawn once from N(0, spread^2 I) and kept
    in the state dict (a Gaussian-mixture prior, Gurumurthy et al. 2017 "DeLiGAN"; Ben-Yosef
    and Weinshall 2018). A single Gaussian forces G to map one connected latent region onto
    data made of separate modes (the ten digits), so part of its samples fall between modes
    (Khayatkhoei et al. 2018); the gaps between components give G room to keep modes apart.
    Draw latents with `sample_latent`, never with a bare `torch.randn`.
    """

    def __init__(
        self,
        latent_dim: int,
        ngf: int,
        *,
        latent_components: int,
        component_spread: float = 0.5,
        norm: str = "batch",
        num_classes: int = 0,
    ):
        """Also checks the arguments every generator has: its width, its norm and its number
        of classes (0: unconditional; else G(z, y) with conditional BatchNorm). Subclasses
        take the keyword-only ones as `**common` and pass them here."""
        super().__init__()
        check_num_classes(num_classes)
        positive_int("model.generator.latent_dim", latent_dim)
        positive_int("model.generator.ngf", ngf)
        check_norm("model.generator.norm", norm)
        if not isinstance(latent_components, int) or latent_components < 0:
            raise ConfigError(
                "model.generator.latent_components", latent_components,
                "allowed: an integer >= 0 (0: a single Gaussian)",
            )  # fmt: skip
        if not (isinstance(component_spread, int | float) and 0 < component_spread < float("inf")):
            raise ConfigError("model.generator.component_spread", component_spread, "allowed: > 0")
        self.latent_dim, self.latent_components = latent_dim, latent_components
        self.norm, self.num_classes = norm, num_classes
        if latent_components:
            centres = torch.randn(latent_components, latent_dim) * component_spread
            self.register_buffer("latent_centres", centres)

    def sample_latent(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """`n` latents from G's prior, drawn with `generator` (a torch RNG on `device`)."""
        if device is None:
            device = generator.device if generator is not None else "cpu"
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        if self.latent_components:
            k = torch.randint(self.latent_components, (n,), generator=generator, device=device)
            z = z + self.latent_centres.to(device)[k]
        return z

    def sample_labels(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor | None:
        """`n` class labels drawn uniformly (None for an unconditional G)."""
        if not self.num_classes:
            return None
        if device is None:
            device = generator.device if generator is not None else "cpu"
        return torch.randint(self.num_classes, (n,), generator=generator, device=device)
