"""Datasets already in memory as one uint8 array (MNIST, CIFAR-10, fake data)."""

import torch
from torch.utils.data import Dataset

from src.data.transforms import fit_images


class ArrayImages(Dataset):
    """uint8 (N, C, H, W) source images, fitted to (channels, size, size) when fetched.

    `__getitems__` fits a whole batch in one vectorised call (DataLoader uses it), so
    decoding the resident tensor is not a per-image Python loop.
    """

    def __init__(self, images: torch.Tensor, size: int, channels: int):
        self.images, self.size, self.channels = images, size, channels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return fit_images(self.images[index : index + 1], self.size, self.channels)[0]

    def __getitems__(self, indices: list[int]) -> list[torch.Tensor]:
        return list(fit_images(self.images[indices], self.size, self.channels))
