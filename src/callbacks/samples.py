"""Saves a grid from the fixed noise every epoch and sends it to image-capable loggers: 8x8
samples, or for a conditional model one row per class (up to 10) with the same latent down
each column, each row labelled with its class name (and the names in the caption); once per
run a grid of real training images to compare with (`samples/real.png`). Small images are
upscaled without smoothing to 64 pixels a side, so the grids can be looked at."""

from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger
from pytorch_lightning.utilities import rank_zero_only
from torchvision.transforms.functional import pil_to_tensor, to_pil_image
from torchvision.utils import make_grid, save_image

from src.data.base import to_float
from src.errors import integer
from src.generate import viewable
from src.models.gan_module import CLASS_GRID_COLUMNS


class SampleGrid(Callback):
    def __init__(self, dirpath: str, nrow: int = 8):
        self.dirpath = Path(dirpath)
        self.nrow = integer("callbacks.sample_grid.nrow", nrow)
        self.last: Path | None = None

    @rank_zero_only
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """64 real training images (a fixed draw), once per run."""
        path = self.dirpath / "real.png"
        data = getattr(trainer.datamodule, "source", None)
        if path.exists() or data is None:
            return
        reference, _ = data.evaluation_split(64)
        grid = make_grid(viewable(to_float(data.fetch(reference))), nrow=self.nrow,
                         normalize=True, value_range=(-1, 1))  # fmt: skip
        self.dirpath.mkdir(parents=True, exist_ok=True)
        save_image(grid, path)
        log_image(trainer, "real", grid, path, caption="real training images")

    @rank_zero_only
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        labels = pl_module.fixed_labels
        images = viewable(pl_module.sample(pl_module.fixed_noise, labels).float().cpu())
        caption, nrow = f"epoch {trainer.current_epoch}", self.nrow
        self.dirpath.mkdir(parents=True, exist_ok=True)
        path = self.dirpath / f"epoch_{trainer.current_epoch:03d}.png"
        if labels is None:
            grid = make_grid(images, nrow=nrow, normalize=True, value_range=(-1, 1))
            save_image(grid, path)
        else:
            names = pl_module.class_names
            rows = [names[r] if names else str(r) for r in labels[::CLASS_GRID_COLUMNS].tolist()]
            caption += "; rows: " + ", ".join(rows)
            grid = make_grid(images, CLASS_GRID_COLUMNS, normalize=True, value_range=(-1, 1))
            picture = with_row_labels(grid, rows)
            picture.save(path)
            grid = pil_to_tensor(picture)
        log_image(trainer, "samples", grid, path, caption=caption)
        self.last = path

    @rank_zero_only
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """The last grid attached to the W&B run beside the per-epoch slider."""
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger) and self.last is not None:
                import wandb

                logger.experiment.log({"final/samples": wandb.Image(str(self.last))})


def with_row_labels(grid: torch.Tensor, names: list[str], padding: int = 2) -> Image.Image:
    """`make_grid`'s grid with each row's name written in a margin on its left."""
    picture = to_pil_image(grid.mul(255).add(0.5).clamp(0, 255).to(torch.uint8))
    pitch = (picture.height - padding) / len(names)  # one row of images and its padding
    font = ImageFont.load_default(size=max(8, min(14, int(pitch * 0.4))))
    names = [name[:14] for name in names]
    width = max(int(font.getlength(name)) for name in names) + 8
    labelled = Image.new(picture.mode, (picture.width + width, picture.height))
    labelled.paste(picture, (width, 0))
    draw = ImageDraw.Draw(labelled)
    for row, name in enumerate(names):
        middle = padding / 2 + (row + 0.5) * pitch
        draw.text((width - 4, middle), name, fill="white", font=font, anchor="rm")
    return labelled


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
