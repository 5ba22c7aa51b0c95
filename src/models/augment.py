"""Differentiable augmentation for D (DiffAugment, Zhao et al. 2020).

On a small dataset D memorises the real images and its gradients turn noisy; applying the
same random, differentiable transforms to real and generated images before D stops that
without letting the transforms leak into G's samples.
"""

import torch
import torch.nn.functional as F

POLICIES = ("translation", "cutout")


def translation(images: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shifts each image by up to `ratio` of its size, filling with the border pixels."""
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


def diff_augment(images: torch.Tensor, policy: list[str] | tuple[str, ...]) -> torch.Tensor:
    for name in policy:
        images = {"translation": translation, "cutout": cutout}[name](images)
    return images
