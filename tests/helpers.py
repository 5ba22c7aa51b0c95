"""Test-only pieces that the real CLI instantiates through Hydra (`+callbacks.kill=...`)."""

import os
import signal

import torch
from pytorch_lightning import Callback

from src.models.dcgan import Discriminator


class KillAt(Callback):
    """SIGKILLs its own process after training batch `batch` (counted over the whole run).

    A real crash: no exception handling, no teardown, no final checkpoint.
    """

    def __init__(self, batch: int):
        self.batch = batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.fit_loop.total_batch_idx == self.batch:
            os.kill(os.getpid(), signal.SIGKILL)


class PoisonedDiscriminator(Discriminator):
    """A real DCGAN D whose logits turn NaN from the `poison_from`-th forward call on."""

    def __init__(self, *args, poison_from: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.poison_from, self.calls = poison_from, 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        logits = super().forward(images)
        return logits * float("nan") if self.calls > self.poison_from else logits


class DumpWeights(Callback):
    """Writes each rank's parameters to `<dirpath>/rank_<r>.pt` when training ends."""

    def __init__(self, dirpath: str):
        self.dirpath = dirpath

    def on_train_end(self, trainer, pl_module) -> None:
        params = {n: p.detach().cpu().clone() for n, p in pl_module.named_parameters()}
        torch.save(params, f"{self.dirpath}/rank_{trainer.global_rank}.pt")
