"""scikit-learn's bundled handwritten digits (1,797 8x8 greyscale images): real data, offline."""

import torch
import torch.nn.functional as F
from pytorch_lightning import LightningDataModule
from torch.utils.data import DataLoader, TensorDataset


def load_digits_images(image_size: int, channels: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """All digits as float images in [-1, 1] at `image_size`, white ink on black, and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = torch.from_numpy(digits.images).float().unsqueeze(1) / 16.0  # 0..16 ink levels
    images = F.interpolate(pixels, size=image_size, mode="bilinear", align_corners=False)
    images = (images.clamp(0, 1) * 2 - 1).expand(-1, channels, -1, -1).contiguous()
    return images, torch.from_numpy(digits.target)


class _Images(TensorDataset):
    """Yields bare image tensors (no labels): an unconditional GAN needs only x."""

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.tensors[0][index]


class DigitsDataModule(LightningDataModule):
    """Seeded shuffling and drop_last, so every batch has the same size for BatchNorm."""

    def __init__(
        self,
        image_size: int = 32,
        channels: int = 1,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.dataset: _Images | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is None:
            images, _ = load_digits_images(self.hparams.image_size, self.hparams.channels)
            self.dataset = _Images(images)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.dataset,
            batch_size=self.hparams.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=self.hparams.num_workers,
            generator=torch.Generator().manual_seed(self.hparams.seed),
            persistent_workers=self.hparams.num_workers > 0,
        )
