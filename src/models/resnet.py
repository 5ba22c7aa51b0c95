"""The ResNet G and D of SNGAN (Miyato et al. 2018, appendix B) as Mimicry builds them, for
32, 48, 64 and 128 pixels.

G: z -> linear -> (bottom, bottom, widths[0]) -> up-sampling residual blocks (BatchNorm,
ReLU, bilinear x2, 3x3 conv, twice; 1x1 conv shortcut) -> BatchNorm, ReLU, 3x3 conv, tanh.
D: an "optimized" first block, residual blocks (ReLU, 3x3 conv, twice; average-pool
down-sampling), ReLU, global sum pooling, linear -> one logit; spectral norm on every layer.
With Mimicry's widths (32: ngf 256, ndf 128; 48: 512, 1024; 64 and 128: 1024, 1024) the
parameter counts are theirs (tests/test_models.py).
"""

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from src.models.conditional import ConditionalSequential, Critic, batch_norm, call
from src.models.dcgan import spectral_norm_convs
from src.models.latent import LatentGenerator, check_image_size

# image size -> (bottom width, G widths as ngf divisors, D widths as ndf divisors with a
# down-sampling flag per block after the first)
LAYOUTS = {
    32: (4, [1, 1, 1, 1], [1, 1, 1, 1], [True, False, False]),
    48: (6, [1, 2, 4, 8], [16, 8, 4, 2, 1], [True, True, True, False]),
    64: (4, [1, 2, 4, 8, 16], [16, 8, 4, 2, 1], [True, True, True, True]),
    128: (4, [1, 1, 2, 4, 8, 16], [16, 8, 4, 2, 1, 1], [True, True, True, True, False]),
}


def layout(image_size: int) -> tuple[int, list[int], list[int], list[bool]]:
    return LAYOUTS[check_image_size(image_size, tuple(LAYOUTS), "resnet")]


def xavier(conv: nn.Module, gain: float) -> nn.Module:
    nn.init.xavier_uniform_(conv.weight, gain)
    return conv


class GBlock(nn.Module):
    takes_labels = True

    def __init__(self, width_in: int, width_out: int, normalise: bool, num_classes: int = 0):
        super().__init__()
        norm = (lambda w: batch_norm(w, num_classes)) if normalise else lambda _: nn.Identity()
        self.b1, self.b2 = norm(width_in), norm(width_out)
        self.c1 = xavier(nn.Conv2d(width_in, width_out, 3, 1, 1), math.sqrt(2))
        self.c2 = xavier(nn.Conv2d(width_out, width_out, 3, 1, 1), math.sqrt(2))
        self.shortcut = xavier(nn.Conv2d(width_in, width_out, 1, 1, 0), 1.0)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        up = lambda t: F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)  # noqa: E731
        h = self.c1(up(F.relu(call(self.b1, x, labels))))
        h = self.c2(F.relu(call(self.b2, h, labels)))
        return h + self.shortcut(up(x))


class DBlock(nn.Module):
    def __init__(self, width_in: int, width_out: int, downsample: bool, first: bool = False):
        super().__init__()
        self.first, self.downsample = first, downsample
        self.c1 = xavier(nn.Conv2d(width_in, width_out if first else width_in, 3, 1, 1), 2**0.5)
        self.c2 = xavier(nn.Conv2d(self.c1.out_channels, width_out, 3, 1, 1), math.sqrt(2))
        learnable = first or downsample or width_in != width_out
        self.shortcut = xavier(nn.Conv2d(width_in, width_out, 1, 1, 0), 1.0) if learnable else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = lambda t: F.avg_pool2d(t, 2) if self.downsample else t  # noqa: E731
        h = self.c1(x if self.first else F.relu(x))
        h = pool(self.c2(F.relu(h)))
        if self.shortcut is None:
            return h + x
        if self.first:  # the "optimized" block pools before its shortcut convolution
            return h + self.shortcut(pool(x))
        return h + pool(self.shortcut(x))


class Generator(LatentGenerator):
    def __init__(
        self, image_size: int, channels: int, latent_dim: int = 128, *, ngf: int, **common: Any
    ):
        self.bottom, divisors, _, _ = layout(image_size)
        super().__init__(latent_dim, ngf, min_width=max(divisors), **common)
        norm, num_classes = self.norm, self.num_classes
        widths = [ngf // d for d in divisors]
        self.width = widths[0]
        self.linear = xavier(nn.Linear(latent_dim, self.bottom**2 * widths[0]), 1.0)
        normalise = norm != "none"
        self.blocks = ConditionalSequential(
            *[
                GBlock(a, b, normalise, num_classes)
                for a, b in zip(widths[:-1], widths[1:], strict=True)
            ]
        )
        self.out = ConditionalSequential(
            batch_norm(widths[-1], num_classes) if normalise else nn.Identity(),
            nn.ReLU(True),
            xavier(nn.Conv2d(widths[-1], channels, 3, 1, 1), 1.0),
            nn.Tanh(),
        )
        if norm == "spectral":
            spectral_norm_convs(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.linear(z.view(z.shape[0], self.latent_dim))
        h = h.view(z.shape[0], self.width, self.bottom, self.bottom)
        return self.out(self.blocks(h, labels), labels)


class Discriminator(Critic):
    def __init__(
        self, image_size: int, channels: int, *, ndf: int, norm: str = "spectral", **common: Any
    ):
        _, _, divisors, downsample = layout(image_size)
        super().__init__(ndf, norm, min_width=max(divisors), norms=("spectral", "none"), **common)
        widths = [ndf // d for d in divisors]
        blocks = [DBlock(channels * self.pack, widths[0], downsample=True, first=True)]
        blocks += [
            DBlock(a, b, down)
            for a, b, down in zip(widths[:-1], widths[1:], downsample, strict=True)
        ]
        self.blocks = nn.Sequential(*blocks)
        self.linear = xavier(nn.Linear(self.head_width(widths[-1]), 1), 1.0)
        if norm == "spectral":
            spectral_norm_convs(self)
        self.condition_on(widths[-1], spectral=norm == "spectral")

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return F.relu(self.blocks(images)).sum(dim=(2, 3))  # global sum pooling

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features)
