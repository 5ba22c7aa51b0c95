"""Progress that reads in a terminal and in a log file, and a note when a run is far shorter
than its lr schedule's recipe."""

import sys
import time

from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only

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


RECIPE_STEPS = 80 * 28  # the default recipe: 80 epochs of the digits, 28 batches of 64 each


class ShortRunNote(Callback):
    """One line at the start when a decaying lr schedule is squeezed into far fewer steps (a
    quarter) than the default recipe was chosen at: it reaches 0 at the last epoch, so a
    4-epoch run of the digits decays from epoch 2 and shows less than it could. Counted in
    this run's steps (`trainer.num_training_batches`), so a large dataset's few epochs are not
    short; smoke runs (a part of each epoch) say nothing."""

    def __init__(self, recipe_steps: int = RECIPE_STEPS, short: float = 0.25):
        self.recipe_steps = integer("callbacks.short_run_note.recipe_steps", recipe_steps)
        self.short = short

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        schedules = pl_module.lr_schedulers()
        epochs, batches = trainer.max_epochs, trainer.num_training_batches
        whole_epochs = trainer.limit_train_batches == 1.0
        if not (schedules and whole_epochs and epochs and epochs > 0 and batches < float("inf")):
            return
        steps = int(epochs * batches)
        if steps < self.short * self.recipe_steps:
            first = schedules[0] if isinstance(schedules, list) else schedules
            start = int(epochs * getattr(first, "decay_start", 0))
            rank_zero_info(
                f"Note: trainer.max_epochs={epochs} is {steps:,} steps, far fewer than the "
                f"{self.recipe_steps:,} (80 epochs of the digits) the default recipe was chosen "
                f"at (optimizer.scheduler's lr falls from epoch {start} to 0 at the last): "
                "expect samples far from docs/RESULTS.md's (README: how long to train)"
            )
