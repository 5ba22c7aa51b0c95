"""The latent prior every generator shares: N(0, I), or a Gaussian mixture."""

import torch
from torch import nn

from src.errors import ConfigError, choice, integer, number

NORMS = ("batch", "spectral", "none")


def check_image_size(image_size: object, allowed: tuple[int, ...], model: str) -> int:
    """`data.image_size` for an architecture that builds `allowed` sizes only."""
    if image_size not in allowed or isinstance(image_size, bool):
        raise ConfigError(
            "data.image_size",
            image_size,
            f"allowed for model={model}: {', '.join(map(str, allowed))}",
        )
    return image_size


class LatentGenerator(nn.Module):
    """Base of every generator: the latent prior, drawn only through `sample_latent`.

    N(0, I), or with `latent_components` = K an equal mixture of K unit Gaussians around fixed
    centres from N(0, spread^2 I) (DeLiGAN, Gurumurthy et al. 2017): a single Gaussian makes G map
    one connected region onto separate modes, so samples fall between them (Khayatkhoei et al.
    2018)."""

    def __init__(
        self,
        latent_dim: int,
        ngf: int,
        *,
        latent_components: int,
        component_spread: float = 0.5,
        norm: str = "batch",
        num_classes: int = 0,
        min_width: int = 1,
        norms: tuple[str, ...] = NORMS,
    ):
        """Checks what every generator has: width, norm (one of `norms`), prior; `num_classes`
        (from the data, 0: unconditional) makes G(z, y); `min_width`: the architecture's smallest
        ngf. Subclasses pass the keyword-only ones as `**common`."""
        super().__init__()
        integer("model.generator.latent_dim", latent_dim)
        integer("model.generator.ngf", ngf, low=min_width)
        choice("model.generator.norm", norm, norms)
        integer("model.generator.latent_components", latent_components, low=0)
        number("model.generator.component_spread", component_spread, low_open=True)
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
