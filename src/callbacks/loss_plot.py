"""Draws D and G loss curves against epochs to plots/losses.png at the end of every epoch,
with the validation FID (left axis) and precision/recall (right axis, 0-1) in a second panel
once they have been measured."""

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
MEASURED = ("val/fid", "val/precision", "val/recall")  # FID on the left axis, the rest 0-1


# legends above their axes, in one row: never over a curve or a point
OUTSIDE = {"loc": "lower left", "bbox_to_anchor": (0, 1.01), "ncol": 3, "frameon": False}


class LossPlot(Callback):
    """Keeps every step's losses as device tensors and reads them back once per epoch,
    so plotting adds no host-device sync to the training step. The history (losses, where
    each epoch ended, the validation metrics at their epoch) is part of the checkpoint, so a
    resumed run's plot covers the whole run."""

    def __init__(self, path: str, smoothing: float = 0.95):
        self.path = Path(path)
        self.smoothing = number(
            "callbacks.loss_plot.smoothing", smoothing, 0.0, 1.0, high_open=True
        )
        self.history: dict[str, list[float]] = {name: [] for name in CURVES}
        self.epoch_ends: list[int] | None = []  # batches seen when each epoch ended
        self.measured: dict[str, list[tuple[float, float]]] = {name: [] for name in MEASURED}
        self._pending: list[torch.Tensor] = []

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.epoch_ends is None:  # a checkpoint from before epoch ends were kept
            seen, epochs = len(self.history[CURVES[0]]), max(trainer.current_epoch, 1)
            self.epoch_ends = [round(seen * (e + 1) / epochs) for e in range(epochs)]

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        nan = torch.full((), math.nan, device=pl_module.device)
        self._pending.append(torch.stack([outputs.get(name, nan).float() for name in CURVES]))

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        total = trainer.num_training_batches
        done = len(self._pending) / total if math.isfinite(total) and total else 1.0
        epoch = trainer.current_epoch + min(done, 1.0)
        for name in MEASURED:
            value = trainer.callback_metrics.get(name)
            if value is not None and math.isfinite(float(value)):
                self.measured[name].append((epoch, float(value)))

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
        self.epoch_ends.append(len(self.history[CURVES[0]]))
        self._plot()

    def epochs(self) -> list[float]:
        """Each logged batch's position in epochs: batch j of the n in epoch e is e + (j+1)/n."""
        x, start = [], 0
        for epoch, end in enumerate(self.epoch_ends):
            x += [epoch + (j + 1) / (end - start) for j in range(end - start)]
            start = end
        return x

    @rank_zero_only
    def _plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        measured = any(self.measured.values())
        fig, axes = plt.subplots(
            2 if measured else 1, 1, figsize=(8, 7 if measured else 4.5), dpi=100, sharex=True,
            squeeze=False, height_ratios=[3, 2] if measured else None,
        )  # fmt: skip
        ax = axes[0, 0]
        for name, color in zip(CURVES, ("tab:blue", "tab:orange"), strict=True):
            steps = zip(self.epochs(), self.history[name], strict=True)
            points = [(e, v) for e, v in steps if math.isfinite(v)]
            if not points:
                continue
            x, y = zip(*points, strict=True)
            label = name.removeprefix("train/")
            ax.plot(x, y, color=color, alpha=0.2, linewidth=0.8)
            ax.plot(
                x, ema(y, self.smoothing), color=color, linewidth=2, label=f"{label} (smoothed)"
            )
        ax.set_ylabel("D and G losses")
        ax.grid(alpha=0.3)
        ax.legend(**OUTSIDE)
        if measured:
            self._plot_measured(axes[1, 0])
        axes[-1, 0].set_xlabel("epoch")
        axes[-1, 0].xaxis.set_major_locator(MaxNLocator(integer=True))
        fig.tight_layout()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, lambda file: fig.savefig(file, format="png"))  # never half a PNG
        plt.close(fig)

    def _plot_measured(self, ax: Any) -> None:
        """val/fid on the left axis, val/precision and val/recall on a 0-1 right axis."""
        right = ax.twinx()
        right.set_ylim(0, 1)
        right.set_ylabel("precision / recall")
        ax.set_ylabel("FID (lower is better)")
        ax.grid(alpha=0.3)
        lines = []
        for name, color, axis in zip(
            MEASURED, ("tab:red", "tab:green", "tab:purple"), (ax, right, right), strict=True
        ):
            if self.measured[name]:
                x, y = zip(*self.measured[name], strict=True)
                lines += axis.plot(x, y, "o-", color=color, label=name)
        ax.legend(lines, [line.get_label() for line in lines], **OUTSIDE)

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "epoch_ends": self.epoch_ends, "measured": self.measured}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = state_dict["history"]
        self.epoch_ends = state_dict.get("epoch_ends")  # None: spread in on_train_start
        measured = state_dict.get("measured", {})
        self.measured = {name: [tuple(p) for p in measured.get(name, [])] for name in MEASURED}


def ema(values: list[float] | tuple[float, ...], smoothing: float) -> list[float]:
    """Bias-corrected exponential moving average, as TensorBoard smooths scalars."""
    out, avg = [], 0.0
    for i, v in enumerate(values, start=1):
        avg = smoothing * avg + (1 - smoothing) * v
        out.append(avg / (1 - smoothing**i))
    return out
