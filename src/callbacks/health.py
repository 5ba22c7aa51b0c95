"""The run's health (`callbacks.health`): stops a run whose updates keep being skipped for
non-finite losses, and warns when D has separated real from generated images. Counted on the
device after every batch, read on log steps only (one host sync there)."""

import logging
from typing import Any

import torch
from pytorch_lightning import Callback, LightningModule, Trainer

from src.errors import DivergenceError, integer

log = logging.getLogger(__name__)


class Health(Callback):
    """`max_nonfinite_steps` skipped updates in a row stop the run (exit status 3); D taking
    more than 99% of the real images and under 1% of the generated ones for real (at its loss's
    own boundary: train/d_real, train/d_fake) for `collapse_warn_steps` batches in a row is
    warned about, once per episode."""

    def __init__(self, max_nonfinite_steps: int = 10, collapse_warn_steps: int = 200):
        key = "callbacks.health"
        self.max_nonfinite_steps = integer(f"{key}.max_nonfinite_steps", max_nonfinite_steps)
        self.collapse_warn_steps = integer(f"{key}.collapse_warn_steps", collapse_warn_steps)
        self.total = self.run = self.worst_run = self.collapse_run = None
        self.collapse_warned = False

    def update(self, bad: torch.Tensor, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        """Records one step; returns the total count of skipped steps (a device tensor)."""
        bad = bad.float()
        if self.total is None:
            self.total, self.run, self.worst_run, self.collapse_run = (
                torch.zeros((), device=bad.device) for _ in range(4)
            )
        self.total = self.total + bad
        self.run = (self.run + bad) * bad
        self.worst_run = torch.maximum(self.worst_run, self.run)
        collapsed = ((d_real > 0.99) & (d_fake < 0.01)).float()
        self.collapse_run = (self.collapse_run + collapsed) * collapsed
        return self.total

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        skipped = outputs["d_skipped"]
        if "g_skipped" in outputs:
            skipped = skipped | outputs["g_skipped"]
        total = self.update(skipped, outputs["train/d_real"], outputs["train/d_fake"])
        step = trainer.fit_loop.total_batch_idx
        if (step + 1) % trainer.log_every_n_steps and not trainer.should_stop:
            return
        self.check(step, trainer.current_epoch)  # a host sync
        size = len(batch if isinstance(batch, torch.Tensor) else batch[0])
        pl_module.log("train/nonfinite_steps", total, batch_size=size)

    def check(self, step: int, completed_epochs: int) -> None:
        if self.total is None:
            return
        worst, collapse = (int(t) for t in torch.stack([self.worst_run, self.collapse_run]))
        self.worst_run = torch.zeros_like(self.worst_run)
        if worst >= self.max_nonfinite_steps:
            saved = (
                "checkpoints/last.ckpt holds the last completed epoch (resume: ckpt_path=auto)"
                if completed_epochs
                else "no epoch completed, so no checkpoint was written"
            )
            raise DivergenceError(
                f"training diverged: {worst} consecutive steps with a non-finite loss by batch "
                f"{step} (callbacks.health.max_nonfinite_steps={self.max_nonfinite_steps}); "
                f"those updates were skipped; {saved}; lower optimizer.lr or check the data"
            )
        if collapse >= self.collapse_warn_steps and not self.collapse_warned:
            log.warning(
                "D collapse at batch %d: D took over 99%% of the real images and under 1%% of "
                "the generated ones for real for %d steps in a row; G gets little gradient "
                "(try an augmentation, a lower D lr or more G steps)", step, collapse,
            )  # fmt: skip
        self.collapse_warned = collapse >= self.collapse_warn_steps
