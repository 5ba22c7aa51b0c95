"""Random images of the configured shape (like torchvision's FakeData): benchmarks, smoke runs."""

import torch

from src.data.base import ImageDataModule, UInt8Images
from src.errors import ConfigError


class FakeDataModule(ImageDataModule):
    """`num_images` uniform-noise uint8 images, the same for a given seed; nothing on disk."""

    def __init__(self, *args, num_images: int = 10_000, **kwargs):
        super().__init__(*args, **kwargs)
        if num_images < 1:
            raise ConfigError("data.num_images", num_images, "allowed: >= 1")

    def build_dataset(self) -> UInt8Images:
        h = self.hparams
        shape = (h.num_images, h.channels, h.image_size, h.image_size)
        rng = torch.Generator().manual_seed(h.seed)
        images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=rng)
        return UInt8Images(images, h.image_size, h.channels)
