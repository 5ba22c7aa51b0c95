"""R3GAN's networks (Huang, Gokaslan, Kuleshov, Tompkin, NeurIPS 2024, "The GAN is dead; long
live the GAN!"), following brownvc/R3GAN's `R3GAN/Networks.py`, for 16 to 128 pixels.

A modernized ConvNet with no normalization layer at all. Each stage is residual blocks of
1x1 conv -> grouped kxk conv -> 1x1 conv with an inverted bottleneck (`expansion` 2, groups of
16 channels), a biased LeakyReLU(0.2) after the first two; fix-up initialisation (fan-in
init, scaled by L^(-1/(2m-2)) for L blocks of m = 3 convs; each branch's last conv zero, so
every block starts as the identity). Resolution changes by [1, 2, 1] low-pass filtered
up/down-sampling, widths by 1x1 convs. G starts from a learned 4x4 basis modulated by a linear
map of z (no mapping network) and ends in a 1x1 conv (no tanh); D starts from a 1x1 conv and
ends in a depthwise 4x4 basis and a linear map. Conditional: a class embedding joined to z in
G; in D a projection of the basis features onto the class embedding (as the reference), or
AC-GAN's classifier. Every stage is `ngf` / `ndf` wide (768 for CIFAR-10: G 20,732,160 and D
20,683,776 parameters, the reference's), or that times `width_multipliers`, one per stage from
4x4 up in G and in D alike (FFHQ-64: [1, 1, 1, 1, 0.5]); where the width changes, a 1x1 conv
before G's upsampling and after D's downsampling, as the reference's transition layers.
"""

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from src.errors import ConfigError, integer, number
from src.models.conditional import Critic
from src.models.latent import LatentGenerator, check_image_size

SIZES = (16, 32, 64, 128)
GROUP = 16  # channels per group of the grouped conv (the reference's CIFAR-10 and FFHQ widths)
CONVS_PER_BLOCK = 3
LEAKY_GAIN = math.sqrt(2 / (1 + 0.2**2))  # He gain of LeakyReLU(0.2)


def stages(image_size: int) -> int:
    """Resolutions 4, 8, ..., image_size: one stage each."""
    return int(math.log2(check_image_size(image_size, SIZES, "r3gan"))) - 1


def stage_widths(
    net: str, width_key: str, width: int, multipliers: list[float] | None, blocks: int,
    expansion: int, kernel: int, size: int,
) -> tuple[list[int], int]:  # fmt: skip
    """The keys G and D share (`model.<net>.*`; the width's range is the base class's check):
    widths whose expanded blocks split into groups of GROUP channels. Returns each stage's
    width, from 4x4 up, and the number of residual blocks."""
    n_stages = stages(size)
    for key, value in (("blocks_per_stage", blocks), ("expansion", expansion),
                       ("kernel_size", kernel)):  # fmt: skip
        integer(f"model.{net}.{key}", value)
    key, factors = f"model.{net}.width_multipliers", multipliers
    if factors is None:
        factors = [1] * n_stages
    elif isinstance(factors, str) or not isinstance(factors, Sequence) or len(factors) != n_stages:
        raise ConfigError(key, multipliers,
                          f"allowed: null or {n_stages} numbers, one per stage from 4x4 to "
                          f"{size}x{size}")  # fmt: skip
    widths = [width * number(key, f, low_open=True) for f in factors]
    if any(w != int(w) or int(w) % (GROUP // 2) for w in widths):
        groups = f"(groups of {GROUP})"
        if multipliers is None:
            raise ConfigError(f"model.{net}.{width_key}", width,
                              f"allowed: a multiple of {GROUP // 2} {groups}")  # fmt: skip
        raise ConfigError(key, multipliers, f"allowed: stage widths ({width_key} x each) that "
                          f"are multiples of {GROUP // 2} {groups}")  # fmt: skip
    return [int(w) for w in widths], n_stages * blocks


def fan_in_init(layer: nn.Module, gain: float = 1.0) -> nn.Module:
    """Weights from N(0, gain^2 / fan_in) (the reference's MSR initialiser), no bias."""
    fan_in = layer.weight[0].numel()
    nn.init.normal_(layer.weight, 0.0, gain / math.sqrt(fan_in))
    return layer


def conv(width_in: int, width_out: int, kernel: int = 1, groups: int = 1, gain: float = 1.0):
    layer = nn.Conv2d(width_in, width_out, kernel, padding=(kernel - 1) // 2, groups=groups,
                      bias=False)  # fmt: skip
    return fan_in_init(layer, gain)


class BiasedLeakyReLU(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1), 0.2)


class ResidualBlock(nn.Module):
    def __init__(self, width: int, expansion: int, kernel: int, total_blocks: int):
        super().__init__()
        wide = width * expansion
        gain = LEAKY_GAIN * total_blocks ** (-1 / (2 * CONVS_PER_BLOCK - 2))
        self.branch = nn.Sequential(
            conv(width, wide, gain=gain), BiasedLeakyReLU(wide),
            conv(wide, wide, kernel, groups=wide // GROUP, gain=gain), BiasedLeakyReLU(wide),
            conv(wide, width, gain=0.0),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


def lowpass_kernel() -> torch.Tensor:
    """[1, 2, 1] convolved with [1, 1]: the 4x4 kernel of 2x up- and down-sampling."""
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    kernel = torch.outer(taps, taps)
    return kernel / kernel.sum()


class Resample(nn.Module):
    """2x up- (`up=True`) or down-sampling of each channel with the low-pass kernel."""

    def __init__(self, up: bool):
        super().__init__()
        self.up = up
        self.register_buffer("kernel", lowpass_kernel().view(1, 1, 4, 4), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # one depthwise convolution (groups = channels): no copy to a (n * c, 1, h, w) batch,
        # and the input's memory format (channels_last) kept
        c = x.shape[1]
        kernel = self.kernel.to(x.dtype).expand(c, 1, 4, 4)
        if self.up:
            return F.conv_transpose2d(x, 4 * kernel, stride=2, padding=1, groups=c)
        return F.conv2d(x, kernel, stride=2, padding=1, groups=c)


class Generator(LatentGenerator):
    def __init__(
        self, image_size: int, channels: int, latent_dim: int = 64, *, ngf: int,
        width_multipliers: list[float] | None = None, blocks_per_stage: int = 2,
        expansion: int = 2, kernel_size: int = 3, norm: str = "none", **common: Any,
    ):  # fmt: skip
        super().__init__(latent_dim, ngf, norm=norm, norms=("none",), min_width=GROUP // 2,
                         **common)  # fmt: skip
        widths, total = stage_widths(
            "generator", "ngf", ngf, width_multipliers, blocks_per_stage, expansion,
            kernel_size, image_size,
        )  # fmt: skip
        width = widths[0]
        self.embed = None
        if self.num_classes:  # the class embedding joined to z, as wide as z
            self.embed = nn.Embedding(self.num_classes, latent_dim)
            nn.init.normal_(self.embed.weight, 0.0, 1.0 / math.sqrt(self.num_classes))
        self.basis = nn.Parameter(torch.randn(width, 4, 4))
        self.modulation = fan_in_init(nn.Linear(latent_dim * (2 if self.embed else 1), width,
                                                bias=False))  # fmt: skip
        layers: list[nn.Module] = []
        for stage, width in enumerate(widths):
            if stage:
                if width != widths[stage - 1]:
                    layers.append(conv(widths[stage - 1], width))
                layers.append(Resample(up=True))
            layers += [ResidualBlock(width, expansion, kernel_size, total)
                       for _ in range(blocks_per_stage)]  # fmt: skip
        self.net = nn.Sequential(*layers)
        self.to_image = conv(widths[-1], channels)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        z = z.view(z.shape[0], self.latent_dim)
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], dim=1)
        x = self.basis.unsqueeze(0) * self.modulation(z).view(z.shape[0], -1, 1, 1)
        return self.to_image(self.net(x))


class Discriminator(Critic):
    def __init__(
        self, image_size: int, channels: int, *, ndf: int,
        width_multipliers: list[float] | None = None, blocks_per_stage: int = 2,
        expansion: int = 2, kernel_size: int = 3, norm: str = "none", **common: Any,
    ):  # fmt: skip
        super().__init__(ndf, norm, norms=("none",), min_width=GROUP // 2, **common)
        widths, total = stage_widths(
            "discriminator", "ndf", ndf, width_multipliers, blocks_per_stage, expansion,
            kernel_size, image_size,
        )  # fmt: skip
        widths = widths[::-1]  # from the image down
        layers: list[nn.Module] = [conv(channels * self.pack, widths[0])]
        for stage, width in enumerate(widths):
            layers += [ResidualBlock(width, expansion, kernel_size, total)
                       for _ in range(blocks_per_stage)]  # fmt: skip
            if stage < len(widths) - 1:
                layers.append(Resample(up=False))
                if widths[stage + 1] != width:
                    layers.append(conv(width, widths[stage + 1]))
        self.net = nn.Sequential(*layers)
        width = widths[-1]
        self.basis = fan_in_init(nn.Conv2d(width, width, 4, groups=width, bias=False))
        projection = self.num_classes and self.condition == "projection"
        self.projection = None
        if projection:  # the reference's: <linear(phi(x)), embed(y)>, no unconditional term
            self.projection = fan_in_init(nn.Linear(self.head_width(width), width, bias=False))
            self.class_embed = nn.Embedding(self.num_classes, width)
            std = 1.0 / math.sqrt(width) / math.sqrt(self.num_classes)  # the reference's gain
            nn.init.normal_(self.class_embed.weight, 0.0, std)
        else:
            self.linear = fan_in_init(nn.Linear(self.head_width(width), 1, bias=False))
            self.condition_on(width, spectral=False)  # AC-GAN's classifier, if asked for

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.basis(self.net(images)).flatten(1)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features)

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if self.projection is None:
            return super().forward(images, labels)
        h = self.projection(self.with_std(self.features(images)))
        return (h * self.class_embedding(labels, self.class_embed)).sum(1)
