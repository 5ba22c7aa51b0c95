"""What D sees: differentiable augmentation (DiffAugment, Zhao et al. 2020) applied with a
probability p that may adapt to D's overfitting (ADA, Karras et al. 2020) or follow a schedule
(R3GAN).

On a small dataset D memorises the real images and its gradients turn noisy; applying the
same random, differentiable transforms to real and generated images before D stops that
without letting the transforms leak into G's samples, as long as each is applied with a
probability p below ~0.8 (ADA, section 2.3). p = 1 is DiffAugment (every image, every policy).
"""

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from src.errors import choice, integer, number


def translation(images: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shifts each image by a whole number of pixels, up to `ratio` of its size, filling with
    the border pixels (ADA's integer translation)."""
    n, _, h, w = images.shape
    max_shift = max(1, int(h * ratio))
    shift = torch.randint(-max_shift, max_shift + 1, (n, 2), device=images.device)
    theta = torch.zeros(n, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = 2 * shift[:, 0] / w
    theta[:, 1, 2] = 2 * shift[:, 1] / h
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="nearest", padding_mode="border", align_corners=False)


def cutout(images: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Blanks one random square of `ratio` times the image size in each image."""
    n, _, h, w = images.shape
    size_h, size_w = int(h * ratio), int(w * ratio)
    top = torch.randint(0, h - size_h + 1, (n, 1, 1), device=images.device)
    left = torch.randint(0, w - size_w + 1, (n, 1, 1), device=images.device)
    rows = torch.arange(h, device=images.device).view(1, h, 1)
    cols = torch.arange(w, device=images.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
    return images.masked_fill(inside.unsqueeze(1), -1.0)


def per_image(images: torch.Tensor, *shape: int) -> torch.Tensor:
    """Uniform [0, 1) draws, one per image, broadcastable against `images`."""
    return torch.rand(images.shape[0], *shape, device=images.device, dtype=images.dtype)


def xflip(images: torch.Tensor) -> torch.Tensor:
    """Mirrors half of the images left to right (ADA's x-flip)."""
    return torch.where(per_image(images, 1, 1, 1) < 0.5, images.flip(3), images)


def rot90(images: torch.Tensor) -> torch.Tensor:
    """Rotates each image by 0, 90, 180 or 270 degrees, equally likely (ADA's rotate90)."""
    k = torch.randint(0, 4, (images.shape[0], 1, 1, 1), device=images.device)
    out = torch.where(k == 1, images.rot90(1, (2, 3)), images)
    out = torch.where(k == 2, images.flip(2, 3), out)
    return torch.where(k == 3, images.rot90(3, (2, 3)), out)


def color(images: torch.Tensor) -> torch.Tensor:
    """DiffAugment's colour: brightness + U(-0.5, 0.5), saturation x U(0, 2) around the
    pixel's channel mean, contrast x U(0.5, 1.5) around the image mean."""
    images = images + (per_image(images, 1, 1, 1) - 0.5)
    mean = images.mean(dim=1, keepdim=True)
    images = (images - mean) * (2 * per_image(images, 1, 1, 1)) + mean
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return (images - mean) * (per_image(images, 1, 1, 1) + 0.5) + mean


TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "translation": translation, "cutout": cutout, "xflip": xflip, "rot90": rot90,
    "color": color,
}  # fmt: skip
POLICIES = tuple(TRANSFORMS)


def diff_augment(images: torch.Tensor, policy: Sequence[str]) -> torch.Tensor:
    """Every policy on every image (DiffAugment; p = 1)."""
    for name in policy:
        images = TRANSFORMS[name](images)
    return images


class Augment(nn.Module):
    """The augmentation D sees: each policy applied to each image with probability p.

    p is fixed (`model.augment_p`), set each batch by a schedule (`model.schedules.augment_p`,
    R3GAN's), or adaptive (`model.ada_target`): every `interval` D steps p moves by
    interval x batch / `speed_images` toward making r_t = E[sign(D(real))] equal the target
    (StyleGAN2-ADA's heuristic: 0.6, 4, 500k images from 0 to 1). Adaptive p and its running
    r_t are buffers, so checkpoints carry them; r_t is averaged over the ranks, so p is equal
    on every rank. All on the device: no host sync.
    """

    def __init__(
        self,
        policies: Sequence[str] = ("translation",),
        p: float = 1.0,
        target: float | None = None,
        interval: int = 4,
        speed_images: float = 500_000,
    ):
        super().__init__()
        self.policies = tuple(choice("model.augment", name, POLICIES) for name in policies)
        p = number("model.augment_p", p, 0.0, 1.0)
        self.target = None
        if target is not None:
            number("model.ada_target", target, 0.0, 1.0, low_open=True, high_open=True)
        if target is not None and self.policies:  # no policies: nothing to adapt
            self.target = float(target)
            self.register_buffer("p", torch.tensor(p))
            self.register_buffer("signs", torch.zeros(2))  # sum of sign(D(real)), images
        else:
            self.p = p
        self.interval = integer("model.ada_interval", interval)
        self.speed_images = number("model.ada_images", speed_images, low_open=True)

    @property
    def adaptive(self) -> bool:
        return self.target is not None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        p = self.p  # a tensor when adaptive or scheduled under model.cuda_graph: no host read
        if isinstance(p, float) and p >= 1:  # DiffAugment: no draws beyond the transforms' own
            return diff_augment(images, self.policies)
        if isinstance(p, float) and p <= 0:
            return images
        for name in self.policies:
            applied = per_image(images, 1, 1, 1) < p
            images = torch.where(applied, TRANSFORMS[name](images), images)
        return images

    def set_probability(self, p: float) -> None:
        """A scheduled p (R3GAN's), set before each batch (not with an adaptive p)."""
        if isinstance(self.p, torch.Tensor):  # read by a CUDA graph (GANModule.on_train_start)
            self.p.fill_(p)
        else:
            self.p = float(p)

    def updates(self, batch_number: int) -> bool:
        """Whether the adaptive p moves after this batch (a branch of the step: its graph's key)."""
        return self.adaptive and batch_number % self.interval == 0

    @torch.no_grad()
    def observe(
        self, verdict: Callable[[], torch.Tensor], batch_number: int, images_per_batch: int,
        mean_over_ranks: Callable[[torch.Tensor], torch.Tensor],
    ) -> dict[str, torch.Tensor]:  # fmt: skip
        """Counts the signs of D's verdict on the real images (positive: taken for real, by the
        loss's own boundary: `Loss.verdict`) and, every `interval` batches, moves p; nothing,
        and `verdict` is not evaluated, unless p is adaptive."""
        if not self.adaptive:
            return {}
        signs = verdict().detach().float().flatten()
        self.signs += torch.stack([signs.sign().sum(), signs.new_full((), signs.numel())])
        logs = {"train/augment_p": self.p.clone()}
        if self.updates(batch_number):
            total, count = mean_over_ranks(self.signs).unbind()
            r_t = total / count.clamp(min=1)
            step = self.interval * images_per_batch / self.speed_images
            self.p.copy_((self.p + torch.sign(r_t - self.target) * step).clamp(0, 1))
            self.signs.zero_()
            logs["train/ada_rt"] = r_t
        return logs
