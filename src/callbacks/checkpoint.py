"""`callbacks.model_checkpoint`: Lightning's ModelCheckpoint, plus the two saves a run that
may be stopped anywhere needs. Every checkpoint holds the data position (the loader's
`state_dict`, src/data/sampling.py), so a resume continues with the next unseen batch."""

from pathlib import Path
from typing import Any

from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint as LightningModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException

from src.errors import integer


class ModelCheckpoint(LightningModelCheckpoint):
    """Lightning's, with `last.ckpt` also written (when `save_last`)
    - on SIGTERM, or SIGUSR1 before a cluster's time limit (src/train.py): Lightning stops
      after the batch in progress and raises SIGTERMException; the state saved then resumes
      exactly (Lightning itself saves nothing there);
    - at the end of training, when the step or time trigger did not save the final step
      (Lightning writes last.ckpt only beside another save)."""

    def on_exception(self, trainer: Trainer, module: LightningModule, error: BaseException) -> Any:
        if isinstance(error, SIGTERMException):
            self.save_last_now(trainer)
        return super().on_exception(trainer, module, error)

    def on_train_end(self, trainer: Trainer, module: LightningModule) -> None:
        self.save_last_now(trainer)
        super().on_train_end(trainer, module)

    def save_last_now(self, trainer: Trainer) -> None:
        if (
            self.save_last
            and not trainer.sanity_checking
            and not trainer.fast_dev_run
            and (
                self._last_global_step_saved != trainer.global_step
                or not self._last_checkpoint_saved
            )
        ):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class Snapshots(Callback):
    """`callbacks.snapshots`: the whole checkpoint every `every_n_epochs` epochs into
    `dirpath` (`epoch_NNN.ckpt`, all kept), for the metrics over a run (`src.evaluate
    run_dir=<run>`, beside or after training); null: off (the default: on a CPU each is a
    full checkpoint). Lightning's ModelCheckpoint with every epoch null saves every epoch, so
    this is its own small callback."""

    def __init__(self, dirpath: str, every_n_epochs: int | None = None):
        self.dirpath = Path(dirpath)
        self.every = None if every_n_epochs is None else integer(
            "callbacks.snapshots.every_n_epochs", every_n_epochs)  # fmt: skip

    def on_train_epoch_end(self, trainer: Trainer, module: LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if self.every is None or trainer.sanity_checking or epoch % self.every:
            return
        trainer.save_checkpoint(self.dirpath / f"epoch_{epoch:03d}.ckpt")
