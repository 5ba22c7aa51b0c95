"""Saves a grid from the fixed noise every epoch and sends it to image-capable loggers: 8x8
samples, or for a conditional model one row per class (up to 10) with the same latent down
each column, the class names in the caption."""

from pathlib import Path

import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger
from pytorch_lightning.utilities import rank_zero_only
from torchvision.utils import make_grid, save_image

from src.errors import integer
from src.models.gan_module import CLASS_GRID_COLUMNS


class SampleGrid(Callback):
    def __init__(self, dirpath: str, nrow: int = 8):
        self.dirpath = Path(dirpath)
        self.nrow = integer("callbacks.sample_grid.nrow", nrow)
        self.last: Path | None = None

    @rank_zero_only
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        labels = pl_module.fixed_labels
        images = pl_module.sample(pl_module.fixed_noise, labels).float().cpu()
        caption, nrow = f"epoch {trainer.current_epoch}", self.nrow
        if labels is not None:
            nrow = CLASS_GRID_COLUMNS
            names = trainer.datamodule.class_names() if trainer.datamodule else None
            rows = labels[::nrow].tolist()
            caption += "; rows: " + ", ".join(names[r] if names else str(r) for r in rows)
        grid = make_grid(images, nrow=nrow, normalize=True, value_range=(-1, 1))
        self.dirpath.mkdir(parents=True, exist_ok=True)
        path = self.dirpath / f"epoch_{trainer.current_epoch:03d}.png"
        save_image(grid, path)
        log_image(trainer, "samples", grid, path, caption=caption)
        self.last = path

    @rank_zero_only
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """The last grid attached to the W&B run beside the per-epoch slider."""
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger) and self.last is not None:
                import wandb

                logger.experiment.log({"final/samples": wandb.Image(str(self.last))})


def log_image(trainer: Trainer, key: str, image: torch.Tensor, path: Path, caption: str) -> None:
    """Sends an image already saved at `path` to every logger that shows images, with the
    epoch as its W&B step."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            picture = wandb.Image(str(path), caption=caption)
            logger.experiment.log({key: picture, "epoch": trainer.current_epoch})
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, global_step=trainer.current_epoch)
