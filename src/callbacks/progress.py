"""Progress that reads in a terminal and in a log file."""

import sys
import time

from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.utilities import rank_zero_only

from src.errors import integer


class ProgressBar(TQDMProgressBar):
    """Lightning's bar on a terminal; on a file or a pipe (SLURM, nohup, CI), where the bar's
    carriage returns make one line of thousands of characters, one line per epoch instead."""

    def __init__(self, refresh_rate: int = 10, lines: bool | None = None):
        super().__init__(
            refresh_rate=integer("callbacks.progress_bar.refresh_rate", refresh_rate, 0)
        )
        self.lines = not sys.stdout.isatty() if lines is None else lines
        self.started, self.validated = 0.0, False
        if self.lines:
            self.disable()

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.started, self.validated = time.perf_counter(), False
        super().on_train_epoch_start(trainer, pl_module)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.validated = not trainer.sanity_checking
        super().on_validation_end(trainer, pl_module)

    @rank_zero_only
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if not self.lines:
            return
        shown = dict(self.get_metrics(trainer, pl_module))
        if self.validated:
            shown |= {
                k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")
            }
        shown.pop("v_num", None)
        values = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                           for k, v in shown.items())  # fmt: skip
        seconds = time.perf_counter() - self.started
        print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: {values} ({seconds:.1f} s)",
              flush=True)  # fmt: skip
