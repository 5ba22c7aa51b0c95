"""The LightningDataModule of every dataset: an `ImageSource` (the `data` node, built before
Lightning is imported) handed to Lightning's hooks."""

import torch
from pytorch_lightning import LightningDataModule
from torch.utils.data import DataLoader

from src.data.base import ImageSource, to_float


class ImageDataModule(LightningDataModule):
    """Lightning's hooks over `source`: download on one process, set up, this rank's training
    batches and validation reference images, floats in [-1, 1] on the training device."""

    def __init__(self, source: ImageSource):
        super().__init__()
        self.source = source

    def prepare_data(self) -> None:
        self.source.prepare()

    def setup(self, stage: str | None = None) -> None:
        self.source.setup(stage)

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        # the epoch being started; current_epoch lags by one right after a resume
        epoch = lambda: trainer.fit_loop.epoch_progress.current.processed  # noqa: E731
        return self.source.train_loader(
            trainer.global_rank, trainer.world_size, trainer.strategy.root_device, epoch,
            overfit=bool(trainer.overfit_batches),
        )  # fmt: skip

    def val_dataloader(self) -> DataLoader:
        trainer = self.trainer
        return self.source.val_loader(
            trainer.global_rank, trainer.world_size, trainer.strategy.root_device
        )

    def on_after_batch_transfer(
        self, batch: torch.Tensor | list[torch.Tensor], dataloader_idx: int
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if isinstance(batch, torch.Tensor):
            return to_float(batch)
        images, *rest = batch
        return to_float(images), *rest
