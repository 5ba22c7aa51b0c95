"""Saves an 8x8 grid from the fixed noise every epoch and sends it to image-capable loggers."""

from pathlib import Path

import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger
from pytorch_lightning.utilities import rank_zero_only
from torchvision.utils import make_grid, save_image


class SampleGrid(Callback):
    def __init__(self, dirpath: str, nrow: int = 8):
        self.dirpath = Path(dirpath)
        self.nrow = nrow

    @rank_zero_only
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        images = pl_module.sample(pl_module.fixed_noise).float().cpu()
        grid = make_grid(images, nrow=self.nrow, normalize=True, value_range=(-1, 1))
        self.dirpath.mkdir(parents=True, exist_ok=True)
        path = self.dirpath / f"epoch_{trainer.current_epoch:03d}.png"
        save_image(grid, path)
        log_image(trainer, "samples", grid, path, caption=f"epoch {trainer.current_epoch}")


def log_image(trainer: Trainer, key: str, image: torch.Tensor, path: Path, caption: str) -> None:
    """Sends an image already saved at `path` to every logger that shows images."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[str(path)], caption=[caption])
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, global_step=trainer.current_epoch)
