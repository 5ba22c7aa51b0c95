"""The training step forces no host-device synchronisation except on logging steps.

On a GPU every `.item()`, `.cpu()`, `bool(tensor)`, ... stalls the launch queue until the
device catches up. Counted here on CPU by instrumenting those Tensor methods during a real
Trainer run of the default module (progress bar and logging every LOG_EVERY batches).
"""

from collections import Counter
from functools import partial

import pytest
import torch
from pytorch_lightning import Callback
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.loggers import CSVLogger

from src.callbacks.health import Health
from src.models.augment import Augment
from src.models.dcgan import Discriminator
from src.models.ema import EMAGenerator
from src.models.regularizers import GradientPenalty
from src.models.schedules import Cosine
from tests.helpers import fit_batches, part, policies, tiny_module

LOG_EVERY, BATCHES = 5, 15
SYNCING = ("item", "cpu", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__")


class BatchIndex(Callback):
    current: int | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        BatchIndex.current = batch_idx


# every part a step can have on (EMA, spectral norm, LeCam, a lazy R1, ADA, schedules), in the
# eager step and in model.cuda_graph's capture-ready one (what a CUDA graph would replay)
def every_part() -> dict:
    return dict(
        ema=partial(EMAGenerator, decay=0.99, half_life=Cosine(0.0, 100.0)),
        regularizers={
            "lecam": part("model/regularizers", "lecam"),
            "r1": GradientPenalty("real", 1.0, every=3, schedule=Cosine(1.0, 0.1)),
        },
        augmentation=Augment(policies("translation", "xflip"), p=0.2, target=0.6, interval=2),
        schedules={"lr": Cosine(1.0, 0.3)},
    )


@pytest.mark.parametrize(
    ("optimizer", "parts"),
    [("adam", None), ("sgd", None), ("adam", {}), ("adam", {"cuda_graph": True})],
    ids=["adam", "sgd", "every-part", "every-part-cuda-graph"],
)
def test_host_syncs_happen_on_logging_steps_only(tmp_path, monkeypatch, optimizer, parts):
    discriminator = Discriminator(16, 1, ndf=4, norm="spectral") if parts is not None else None
    chosen = {"augmentation": Augment(policies("translation"))}
    chosen |= every_part() | parts if parts is not None else {}
    module = tiny_module(optimizer, discriminator=discriminator, **chosen)
    calls: Counter = Counter()
    for name in SYNCING:
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, _name=name, **kwargs):
            if BatchIndex.current is not None and self.device.type in ("cpu", "cuda"):
                calls[BatchIndex.current] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    # Lightning logs (and our divergence check reads its counters) on batches whose index + 1
    # is a multiple of log_every_n_steps; the progress bar refreshes on the same batches.
    fit_batches(
        module, BATCHES, log_every_n_steps=LOG_EVERY, logger=CSVLogger(tmp_path),
        callbacks=[BatchIndex(), Health(), TQDMProgressBar(refresh_rate=LOG_EVERY)],
        enable_progress_bar=True,
    )  # fmt: skip
    BatchIndex.current = None
    logging_batches = {i for i in range(BATCHES) if (i + 1) % LOG_EVERY == 0}
    assert set(calls) <= logging_batches, f"syncs on non-logging batches: {dict(calls)}"
    assert set(calls) == logging_batches  # the instrumentation does see the logging syncs
