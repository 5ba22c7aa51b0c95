"""DCGAN generator and discriminator (Radford et al. 2016) for any power-of-two resolution."""

import math
from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from src.models.conditional import ConditionalSequential, Critic, batch_norm
from src.models.latent import LatentGenerator, check_image_size

SIZES = (16, 32, 64, 128, 256)


def num_scales(image_size: int) -> int:
    """Number of stride-2 blocks between a 4x4 map and `image_size` (64 -> 4)."""
    return int(math.log2(check_image_size(image_size, SIZES, "dcgan"))) - 2


def spectral_norm_convs(net: nn.Module) -> None:
    """Spectral normalization (Miyato et al. 2018) of every convolution and linear layer, as
    torch parametrizations: the power-iteration vectors are buffers, so checkpoints save
    and restore them and gan_ddp's start-up broadcast makes them equal on every rank."""
    for module in list(net.modules()):
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            spectral_norm(module)


def init_dcgan_weights(module: nn.Module) -> None:
    """The DCGAN paper's init: conv weights N(0, 0.02), BatchNorm weight N(1, 0.02), bias 0."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(LatentGenerator):
    """z (latent_dim x 1 x 1) -> 4x4 -> ... -> image, halving the width at each doubling.
    The latent prior is LatentGenerator's (N(0, I) or a Gaussian mixture); with classes,
    every BatchNorm is conditional on the label."""

    def __init__(
        self, image_size: int, channels: int, latent_dim: int = 100, *, ngf: int, **common: Any
    ):
        super().__init__(latent_dim, ngf, **common)
        norm, num_classes = self.norm, self.num_classes

        def norm_layer(width: int) -> nn.Module:
            return batch_norm(width, num_classes) if norm != "none" else nn.Identity()

        scales = num_scales(image_size)
        width = ngf * 2 ** (scales - 1)  # 8 * ngf at 4x4 for 64x64, as in the PyTorch example
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, width, 4, 1, 0, bias=False),
            norm_layer(width),
            nn.ReLU(True),
        ]
        for _ in range(scales - 1):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                norm_layer(width // 2),
                nn.ReLU(True),
            ]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = ConditionalSequential(*layers)
        self.apply(init_dcgan_weights)
        if norm == "spectral":  # with BatchNorm, as in SAGAN and BigGAN's generators
            spectral_norm_convs(self.net)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.latent_dim, 1, 1), labels)


class Discriminator(Critic):
    """image -> 4x4 -> one real/fake logit per image (no Sigmoid: losses use the logit forms).
    With classes, the projection or classifier reads the sum-pooled 4x4 features.
    norm: spectral, the template's default (conf/model/dcgan.yaml); batch is the paper's."""

    def __init__(
        self, image_size: int, channels: int, *, ndf: int, norm: str = "spectral", **common: Any
    ):
        super().__init__(ndf, norm, **common)
        scales = num_scales(image_size)
        # No BatchNorm on the first block (DCGAN paper, section 3).
        layers: list[nn.Module] = [
            nn.Conv2d(channels * self.pack, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        width = ndf
        for _ in range(scales - 1):
            layers += [
                nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width * 2) if norm == "batch" else nn.Identity(),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width *= 2
        layers.append(nn.Conv2d(self.head_width(width), 1, 4, 1, 0, bias=False))
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)
        if norm == "spectral":  # instead of BatchNorm (Miyato et al. 2018)
            spectral_norm_convs(self.net)
        self.condition_on(width, spectral=norm == "spectral")

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.net[:-1](images)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self.net[-1](features)
