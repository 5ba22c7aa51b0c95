"""Random images of the configured shape (like torchvision's FakeData): benchmarks, smoke runs."""

import torch

from src.data.base import ImageSource, UInt8Images
from src.errors import integer


class FakeImages(ImageSource):
    """`num_images` uniform-noise uint8 images, the same for a given seed; nothing on disk."""

    def __init__(self, *args, num_images: int = 10_000, **kwargs):
        super().__init__(*args, **kwargs)
        h = self.hparams  # they are made in memory at once: at most data.resident_max_gb of them
        per_image = h.channels * h.image_size**2
        h.num_images = integer(
            "data.num_images", num_images, high=int(h.resident_max_gb * 2**30 // per_image)
        )

    def build_dataset(self) -> UInt8Images:
        h = self.hparams
        shape = (h.num_images, h.channels, h.image_size, h.image_size)
        rng = torch.Generator().manual_seed(h.seed)
        images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=rng)
        return UInt8Images(images, h.image_size, h.channels)
