"""`callbacks.model_checkpoint`: Lightning's ModelCheckpoint, plus the two saves a run that
may be stopped anywhere needs. Every checkpoint holds the data position (the loader's
`state_dict`, src/data/sampling.py), so a resume continues with the next unseen batch."""

from typing import Any

from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint as LightningModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException


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
