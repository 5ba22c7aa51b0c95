"""What D sees: differentiable augmentation (DiffAugment, Zhao et al. 2020) applied with a
probability p that may adapt to D's overfitting (ADA, Karras et al. 2020) or follow a schedule
(R3GAN). `model.augmentation` is its node (`conf/model/augmentation/<name>.yaml`: `ada`,
`diffaugment`, `none`); its policies are nodes too (`model/augmentation/policies=[...]`), any
callable from images to images (`+model.augmentation.policies.<name>._target_=...`).

On a small dataset D memorises the real images and its gradients turn noisy; applying the
same random, differentiable transforms to real and generated images before D stops that
without letting the transforms leak into G's samples, as long as each is applied with a
probability p below ~0.8 (ADA, section 2.3). p = 1 is DiffAugment (every image, every policy).
"""

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from src.errors import ConfigError, integer, number
from src.models.schedules import Cosine, RunLength, schedule_at

Policy = Callable[[torch.Tensor], torch.Tensor]


class Translation:
    """Shifts each image by a whole number of pixels, up to `ratio` of its size, filling with
    the border pixels (ADA's integer translation)."""

    def __init__(self, ratio: float = 0.125):
        self.ratio = number("ratio", ratio, 0.0, 1.0, low_open=True)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        n, _, h, w = images.shape
        max_shift = max(1, int(h * self.ratio))
        shift = torch.randint(-max_shift, max_shift + 1, (n, 2), device=images.device)
        theta = torch.zeros(n, 2, 3, device=images.device, dtype=images.dtype)
        theta[:, 0, 0] = theta[:, 1, 1] = 1
        theta[:, 0, 2] = 2 * shift[:, 0] / w
        theta[:, 1, 2] = 2 * shift[:, 1] / h
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="nearest", padding_mode="border",
                             align_corners=False)  # fmt: skip


class Cutout:
    """Blanks one random square of `ratio` times the image size in each image."""

    def __init__(self, ratio: float = 0.5):
        self.ratio = number("ratio", ratio, 0.0, 1.0)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        n, _, h, w = images.shape
        size_h, size_w = int(h * self.ratio), int(w * self.ratio)
        top = torch.randint(0, h - size_h + 1, (n, 1, 1), device=images.device)
        left = torch.randint(0, w - size_w + 1, (n, 1, 1), device=images.device)
        rows = torch.arange(h, device=images.device).view(1, h, 1)
        cols = torch.arange(w, device=images.device).view(1, 1, w)
        inside = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
        return images.masked_fill(inside.unsqueeze(1), -1.0)


def per_image(images: torch.Tensor, *shape: int) -> torch.Tensor:
    """Uniform [0, 1) draws, one per image, broadcastable against `images`."""
    return torch.rand(images.shape[0], *shape, device=images.device, dtype=images.dtype)


class XFlip:
    """Mirrors half of the images left to right (ADA's x-flip)."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.where(per_image(images, 1, 1, 1) < 0.5, images.flip(3), images)


class Rot90:
    """Rotates each image by 0, 90, 180 or 270 degrees, equally likely (ADA's rotate90)."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        k = torch.randint(0, 4, (images.shape[0], 1, 1, 1), device=images.device)
        out = torch.where(k == 1, images.rot90(1, (2, 3)), images)
        out = torch.where(k == 2, images.flip(2, 3), out)
        return torch.where(k == 3, images.rot90(3, (2, 3)), out)


class Color:
    """DiffAugment's colour: brightness + U(-0.5, 0.5), saturation x U(0, 2) around the
    pixel's channel mean, contrast x U(0.5, 1.5) around the image mean."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        images = images + (per_image(images, 1, 1, 1) - 0.5)
        mean = images.mean(dim=1, keepdim=True)
        images = (images - mean) * (2 * per_image(images, 1, 1, 1)) + mean
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        return (images - mean) * (per_image(images, 1, 1, 1) + 0.5) + mean


def diff_augment(images: torch.Tensor, policies: Mapping[str, Policy]) -> torch.Tensor:
    """Every policy on every image (DiffAugment; p = 1)."""
    for policy in policies.values():
        images = policy(images)
    return images


class Augment(nn.Module):
    """The augmentation D sees: each policy applied to each image with probability p.

    p is fixed (`p`), set each batch by `schedule` (R3GAN's), or adaptive (`target`): every
    `interval` D steps p moves by interval x batch / `speed_images` toward making
    r_t = E[sign(D(real))] equal the target (StyleGAN2-ADA's heuristic: 0.6, 4, 500k images
    from 0 to 1). Adaptive p and its running r_t are buffers, so checkpoints carry them; r_t is
    averaged over the ranks, so p is equal on every rank. All on the device: no host sync.
    """

    def __init__(
        self,
        policies: Mapping[str, Policy] | None = None,
        p: float = 1.0,
        target: float | None = None,
        interval: int = 4,
        speed_images: float = 500_000,
        schedule: Cosine | None = None,
    ):
        super().__init__()
        key = "model.augmentation"
        self.policies = dict(policies or {})
        for name, policy in self.policies.items():
            if not callable(policy):
                raise ConfigError(
                    f"{key}.policies.{name}",
                    policy,
                    "allowed: a function or object from images to images",
                )
        p = number(f"{key}.p", p, 0.0, 1.0)
        self.target = None
        if target is not None:
            number(f"{key}.target", target, 0.0, 1.0, low_open=True, high_open=True)
        if target is not None and self.policies:  # no policies: nothing to adapt
            self.target = float(target)
            self.register_buffer("p", torch.tensor(p))
            self.register_buffer("signs", torch.zeros(2))  # sum of sign(D(real)), images
        else:
            self.p = p
        self.interval = integer(f"{key}.interval", interval)
        self.speed_images = number(f"{key}.speed_images", speed_images, low_open=True)
        self.schedule = None if schedule is None else schedule_at(f"{key}.schedule", schedule)
        if self.schedule is not None:
            if self.adaptive:
                raise ConfigError(f"{key}.schedule", "a schedule",
                                  f"{key}.target adapts p itself: set one of the two")  # fmt: skip
            self.schedule.checked(f"{key}.schedule", 0.0, 1.0)

    @property
    def adaptive(self) -> bool:
        return self.target is not None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        p = self.p  # a tensor when adaptive or scheduled under model.cuda_graph: no host read
        if isinstance(p, float) and p >= 1:  # DiffAugment: no draws beyond the transforms' own
            return diff_augment(images, self.policies)
        if isinstance(p, float) and p <= 0:
            return images
        for policy in self.policies.values():
            applied = per_image(images, 1, 1, 1) < p
            images = torch.where(applied, policy(images), images)
        return images

    def follow(self, seen: float, run_images: RunLength, images: int) -> dict[str, float]:
        """A scheduled p (R3GAN's), set before each batch."""
        if self.schedule is None:
            return {}
        p = self.schedule(seen, run_images)
        if isinstance(self.p, torch.Tensor):  # read by a CUDA graph (GANModule.on_train_start)
            self.p.fill_(p)
        else:
            self.p = float(p)
        return {"train/augment_p": p}

    def updates(self, batch_number: int) -> bool:
        """Whether the adaptive p moves after this batch (a branch of the step: its graph's key)."""
        return self.adaptive and batch_number % self.interval == 0

    @torch.no_grad()
    def observe(
        self, verdict: torch.Tensor, batch_number: int, images_per_batch: int,
        mean_over_ranks: Callable[[torch.Tensor], torch.Tensor],
    ) -> dict[str, torch.Tensor]:  # fmt: skip
        """Counts the signs of D's verdict on the real images (positive: taken for real, by the
        loss's own boundary: `Loss.verdict`) and, every `interval` batches, moves p; nothing
        unless p is adaptive."""
        if not self.adaptive:
            return {}
        signs = verdict.detach().float().flatten()
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
