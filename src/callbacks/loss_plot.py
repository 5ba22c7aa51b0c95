"""Draws D and G loss curves to plots/losses.png at the end of every epoch."""

import math
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from src.errors import number
from src.utils.checkpoint import atomic_write

CURVES = ("train/loss_d", "train/loss_g")


class LossPlot(Callback):
    """Keeps every step's losses as device tensors and reads them back once per epoch,
    so plotting adds no host-device sync to the training step. The history is part of
    the checkpoint, so a resumed run's plot covers the whole run."""

    def __init__(self, path: str, smoothing: float = 0.95):
        self.path = Path(path)
        self.smoothing = number(
            "callbacks.loss_plot.smoothing", smoothing, 0.0, 1.0, high_open=True
        )
        self.history: dict[str, list[float]] = {name: [] for name in CURVES}
        self._pending: list[torch.Tensor] = []

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        nan = torch.full((), math.nan, device=pl_module.device)
        self._pending.append(torch.stack([outputs.get(name, nan).float() for name in CURVES]))

    @rank_zero_only
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """The final loss plot attached to the W&B run."""
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger) and Path(self.path).is_file():
                import wandb

                logger.experiment.log({"final/losses": wandb.Image(str(self.path))})

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._pending:
            steps = torch.stack(self._pending).cpu()
            self._pending.clear()
            for column, name in enumerate(CURVES):
                self.history[name].extend(steps[:, column].tolist())
        self._plot()

    @rank_zero_only
    def _plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
        for name, color in zip(CURVES, ("tab:blue", "tab:orange"), strict=True):
            steps = [(i, v) for i, v in enumerate(self.history[name]) if math.isfinite(v)]
            if not steps:
                continue
            x, y = zip(*steps, strict=True)
            label = name.removeprefix("train/")
            ax.plot(x, y, color=color, alpha=0.2, linewidth=0.8)
            ax.plot(
                x, ema(y, self.smoothing), color=color, linewidth=2, label=f"{label} (smoothed)"
            )
        ax.set_xlabel("training batch")
        ax.set_ylabel("loss")
        ax.set_title("Discriminator and generator losses")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, lambda file: fig.savefig(file, format="png"))  # never half a PNG
        plt.close(fig)

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = state_dict["history"]


def ema(values: list[float] | tuple[float, ...], smoothing: float) -> list[float]:
    """Bias-corrected exponential moving average, as TensorBoard smooths scalars."""
    out, avg = [], 0.0
    for i, v in enumerate(values, start=1):
        avg = smoothing * avg + (1 - smoothing) * v
        out.append(avg / (1 - smoothing**i))
    return out
