"""scikit-learn's bundled handwritten digits (1,797 8x8 greyscale images): real data, offline."""

import torch
import torch.nn.functional as F

from src.data.base import ImageSource, UInt8Images


def load_digits_images(image_size: int, channels: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """All digits as float images in [-1, 1] at `image_size`, white ink on black, and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = torch.from_numpy(digits.images).float().unsqueeze(1) / 16.0  # 0..16 ink levels
    images = F.interpolate(pixels, size=image_size, mode="bilinear", align_corners=False)
    images = (images.clamp(0, 1) * 2 - 1).expand(-1, channels, -1, -1).contiguous()
    return images, torch.from_numpy(digits.target)


class Digits(ImageSource):
    """The default data: no root, nothing to download, always small enough to be resident."""

    def build_dataset(self) -> UInt8Images:
        images, labels = load_digits_images(self.hparams.image_size, self.hparams.channels)
        return UInt8Images(
            ((images + 1) * 127.5).round().to(torch.uint8),
            targets=labels.long(), classes=[str(d) for d in range(10)],
        )  # fmt: skip

    def fingerprint(self) -> str:
        return "sklearn-digits"

    def cache_path(self):
        return None  # decoding 1,797 images is faster than reading a cache
