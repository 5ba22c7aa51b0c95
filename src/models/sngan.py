"""The "standard CNN" of SNGAN (Miyato et al. 2018, Table 3), for 32, 48 and 64 pixels.

G: z -> linear -> (M, M, 8 ngf) with M = image_size / 8 -> three 4x4 stride-2 transposed
convolutions with BatchNorm and ReLU (4, 2, 1 ngf wide) -> 3x3 convolution -> tanh.
D: seven convolutions (3x3 stride 1 and 4x4 stride 2 in turn, 1 -> 8 ndf wide) with
LeakyReLU(0.1) -> linear -> one logit, spectral normalization on every layer by default.
Widths ngf = ndf = 64 give the paper's 512/256/128/64 channels.
"""

from typing import Any

import torch
from torch import nn

from src.models.conditional import ConditionalSequential, Critic, batch_norm
from src.models.dcgan import spectral_norm_convs
from src.models.latent import LatentGenerator, check_image_size

SIZES = (32, 48, 64)


def bottom_width(image_size: int) -> int:
    return check_image_size(image_size, SIZES, "sngan") // 8


class Generator(LatentGenerator):
    def __init__(
        self, image_size: int, channels: int, latent_dim: int = 128, *, ngf: int, **common: Any
    ):
        super().__init__(latent_dim, ngf, **common)
        norm, num_classes = self.norm, self.num_classes
        self.bottom = bottom_width(image_size)
        self.width = 8 * ngf
        self.linear = nn.Linear(latent_dim, self.bottom**2 * self.width)
        layers: list[nn.Module] = []
        width = self.width
        for _ in range(3):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1),
                batch_norm(width // 2, num_classes) if norm != "none" else nn.Identity(),
                nn.ReLU(True),
            ]
            width //= 2
        layers += [nn.Conv2d(width, channels, 3, 1, 1), nn.Tanh()]
        self.net = ConditionalSequential(*layers)
        if norm == "spectral":
            spectral_norm_convs(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.linear(z.view(z.shape[0], self.latent_dim))
        return self.net(h.view(z.shape[0], self.width, self.bottom, self.bottom), labels)


class Discriminator(Critic):
    def __init__(
        self, image_size: int, channels: int, *, ndf: int, norm: str = "spectral", **common: Any
    ):
        super().__init__(ndf, norm, **common)
        bottom = bottom_width(image_size)
        widths = [ndf, ndf, 2 * ndf, 2 * ndf, 4 * ndf, 4 * ndf, 8 * ndf]
        layers: list[nn.Module] = []
        width = channels * self.pack
        for i, out in enumerate(widths):
            kernel, stride = (3, 1) if i % 2 == 0 else (4, 2)
            layers += [nn.Conv2d(width, out, kernel, stride, 1)]
            if norm == "batch" and i > 0:
                layers += [nn.BatchNorm2d(out)]
            layers += [nn.LeakyReLU(0.1, inplace=True)]
            width = out
        self.net = nn.Sequential(*layers)
        self.linear = nn.Linear(bottom**2 * self.head_width(width), 1)
        if norm == "spectral":
            spectral_norm_convs(self)
        self.condition_on(width, spectral=norm == "spectral")

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features.flatten(1))
