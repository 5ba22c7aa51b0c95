"""Class conditioning shared by every architecture: conditional BatchNorm in G, a
projection (or auxiliary-classifier) head on D.

- ConditionalBatchNorm2d (de Vries et al. 2017; Dumoulin et al. 2017; Miyato & Koyama 2018):
  BatchNorm without its own affine parameters, then a per-class gain and bias looked up in
  two embeddings (initialised to 1 and 0, so every class starts as plain BatchNorm).
- Critic: the base of every D. `features(x)` and `head(h)` come from the architecture;
  with classes it adds either the projection term <embed(y), h> (Miyato & Koyama 2018,
  "cGANs with projection discriminator") or an auxiliary classifier on h (Odena et al. 2017,
  AC-GAN), whose logits D returns beside the real/fake logit. Two options of every D against
  mode collapse: the minibatch standard deviation before its last layer (Karras et al. 2018,
  StyleGAN2's form) and packing, D judging `pack` images at once (PacGAN, Lin et al. 2018).
"""

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from src.errors import choice, integer
from src.models.latent import NORMS

CONDITIONS = ("projection", "acgan")


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm2d whose scale and shift are chosen by the class label."""

    takes_labels = True

    def __init__(self, width: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(width, affine=False)
        self.gain = nn.Embedding(num_classes, width)
        self.bias = nn.Embedding(num_classes, width)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        gain = self.gain(labels).view(-1, x.shape[1], 1, 1)
        return self.bn(x) * gain + self.bias(labels).view(-1, x.shape[1], 1, 1)


def batch_norm(width: int, num_classes: int) -> nn.Module:
    """The generator's BatchNorm: conditional when there are classes."""
    return ConditionalBatchNorm2d(width, num_classes) if num_classes else nn.BatchNorm2d(width)


def call(layer: nn.Module, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """`layer(x, labels)` for a layer that takes labels, else `layer(x)`."""
    return layer(x, labels) if getattr(layer, "takes_labels", False) else layer(x)


class ConditionalSequential(nn.Sequential):
    """nn.Sequential that hands the labels to the layers that take them."""

    takes_labels = True

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self:
            x = call(layer, x, labels)
        return x


class MinibatchStd(nn.Module):
    """One more feature: the standard deviation of each feature over a group of `group_size`
    images, averaged over features and positions, as a constant map (or a column) for each
    image of the group (Karras et al. 2018; StyleGAN2's form: groups of 4, one channel). A
    collapsed batch shows 0 there, so D can tell it from a diverse real one. Groups are formed
    within the batch D is given (a DDP rank's own); a batch that does not divide by the group
    size uses the largest group size that divides it."""

    def __init__(self, group_size: int):
        super().__init__()
        self.group_size = group_size

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        n = h.shape[0]
        group = next(g for g in range(min(self.group_size, n), 0, -1) if n % g == 0)
        # image i is in group i % (n / group), as in StyleGAN2
        grouped = h.float().reshape(group, n // group, *h.shape[1:])
        std = (grouped.var(dim=0, unbiased=False) + 1e-8).sqrt()  # (n / group, ...)
        std = std.flatten(1).mean(1).to(h.dtype).repeat(group)  # (n,)
        shape = (n, 1, *h.shape[2:])
        return torch.cat([h, std.view(n, *[1] * (h.dim() - 1)).expand(shape)], dim=1)


class Critic(nn.Module):
    """Base of every D: `forward(images, labels=None)` -> one logit per image (and AC-GAN's class
    logits); subclasses define `features` and `head` (built for `head_width(width)` inputs)
    and call `condition_on(width)`. The class term reads sum-pooled features: "is this class
    present", not a per-position template.

    `pack` = m: D's input is m images side by side along channels (its first layer takes
    `channels * m`), and it returns one logit per pack; labels stay one per image (m per
    pack): the projection term uses the mean of a pack's class embeddings, AC-GAN's
    classifier predicts each image's class (its logits come back one row per image)."""

    def __init__(
        self, ndf: int, norm: str, *, num_classes: int = 0, condition: str = "projection",
        minibatch_std: int = 0, pack: int = 1, min_width: int = 1,
        norms: tuple[str, ...] = NORMS,
    ):  # fmt: skip
        """Checks what every discriminator has: width (>= the architecture's `min_width`), norm
        (one of `norms`), condition, the minibatch-std group size (0: off) and the pack size.
        Subclasses pass the keyword-only ones as `**common`."""
        super().__init__()
        integer("model.discriminator.ndf", ndf, low=min_width)
        choice("model.discriminator.norm", norm, norms)
        choice("model.condition", condition, CONDITIONS)
        integer("model.discriminator.minibatch_std", minibatch_std, low=0)
        self.pack = integer("model.pack", pack)
        self.num_classes, self.condition = num_classes, condition
        self.minibatch_std = MinibatchStd(minibatch_std) if minibatch_std else None
        self.embed: nn.Embedding | None = None
        self.classifier: nn.Linear | None = None

    def head_width(self, width: int) -> int:
        """What the head reads: `width` features, and the minibatch std's one when it is on."""
        return width + (self.minibatch_std is not None)

    def condition_on(self, width: int, spectral: bool) -> None:
        """The class embedding (projection) or classifier (acgan) over `width` features,
        spectrally normalised like the rest of D when `spectral`."""
        if not self.num_classes:
            return
        if self.condition == "projection":
            self.embed = nn.Embedding(self.num_classes, width)
            nn.init.xavier_uniform_(self.embed.weight)
            if spectral:
                spectral_norm(self.embed)
        else:
            self.classifier = nn.Linear(width, self.num_classes * self.pack)
            if spectral:
                spectral_norm(self.classifier)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def head(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        h = self.features(images)
        logits = self.head(self.with_std(h)).view(-1)
        if self.embed is None and self.classifier is None:
            return logits
        pooled = h.sum(dim=(2, 3)) if h.dim() == 4 else h  # global sum pooling
        if self.embed is not None:  # projection: + <embed(y), phi(x)>
            return logits + (self.class_embedding(labels, self.embed) * pooled).sum(1)
        return logits, self.classifier(pooled).view(-1, self.num_classes)  # a row per image

    def with_std(self, h: torch.Tensor) -> torch.Tensor:
        return h if self.minibatch_std is None else self.minibatch_std(h)

    def class_embedding(self, labels: torch.Tensor, embed: nn.Embedding) -> torch.Tensor:
        """One embedding per D input: a pack's is the mean of its images' (one when m = 1)."""
        return embed(labels).view(-1, self.pack, embed.embedding_dim).mean(1)
