"""Test-only pieces that the real CLI instantiates through Hydra (`+callbacks.kill=...`)."""

import os
import signal
from functools import partial
from pathlib import Path

import torch
from pytorch_lightning import Callback

from src.models.dcgan import Discriminator, Generator
from src.models.regularizers import DStep, Regularizer


class KillAt(Callback):
    """SIGKILLs its own process after training batch `batch` (counted over the whole run),
    in a run that did not resume: `ckpt_path=auto` composes the run's stored overrides, this
    callback included, and the resume must not crash again (in-process: the test's own).

    A real crash: no exception handling, no teardown, no final checkpoint.
    """

    def __init__(self, batch: int, rank: int | None = None):
        self.batch, self.rank = batch, rank

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        mine = self.rank is None or trainer.global_rank == self.rank
        if trainer.fit_loop.total_batch_idx == self.batch and mine and not trainer.ckpt_path:
            os.kill(os.getpid(), signal.SIGKILL)


class PoisonedDiscriminator(Discriminator):
    """A real DCGAN D whose logits turn NaN from the `poison_from`-th forward call on."""

    def __init__(self, *args, poison_from: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.poison_from, self.calls = poison_from, 0

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        self.calls += 1
        logits = super().forward(images, labels)
        return logits * float("nan") if self.calls > self.poison_from else logits


class DriftPenalty(Regularizer):
    """A regularizer from outside src/models: ProGAN's drift penalty (Karras et al. 2018),
    weight E[D(x)^2] on real images, which keeps D's outputs near zero."""

    def __init__(self, weight: float = 0.001):
        super().__init__()
        self.weight = weight

    def d_term(self, step: DStep) -> torch.Tensor:
        drift = step.real.logits.float().pow(2).mean()
        step.logs["train/drift"] = drift.detach()
        return self.weight * drift


class DumpWeights(Callback):
    """Writes each rank's parameters (and the buffers that must agree across ranks: spectral
    norm's power-iteration vectors, the regularizers' state) to `<dirpath>/rank_<r>.pt` when
    training ends."""

    def __init__(self, dirpath: str):
        self.dirpath = dirpath

    def on_train_end(self, trainer, pl_module) -> None:
        params = {n: p.detach().cpu().clone() for n, p in pl_module.named_parameters()}
        shared = [n for n, _ in pl_module.named_buffers() if n.endswith(("_u", "_v"))]
        shared += [f"regularizers.{n}" for n, _ in pl_module.regularizers.named_buffers()]
        # ADA's p (each rank's sign counts are its own until they are averaged into p)
        shared += [f"augmentation.{n}" for n, _ in pl_module.augmentation.named_buffers()
                   if n == "p"]  # fmt: skip
        buffers = dict(pl_module.named_buffers())
        params |= {n: buffers[n].cpu().clone() for n in shared}
        torch.save(params, f"{self.dirpath}/rank_{trainer.global_rank}.pt")


class RecordBatches(Callback):
    """Writes every batch this rank trained on (images and labels) to
    `<dirpath>/batches_<rank>.pt` when training ends."""

    def __init__(self, dirpath: str):
        self.dirpath, self.batches = dirpath, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batches.append([t.detach().cpu().clone() for t in batch])

    def on_train_end(self, trainer, pl_module) -> None:
        torch.save(self.batches, f"{self.dirpath}/batches_{trainer.global_rank}.pt")


CONF = Path(__file__).resolve().parents[1] / "conf"


def options(group: str) -> list[str]:
    """The options of a config group, discovered from its folder (e.g. "model/loss")."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def part(group: str, name: str, **overrides):
    """The object `conf/<group>/<name>.yaml` builds, with `overrides` of its keys (a
    regularizer's file holds its node under its name)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    node = OmegaConf.load(CONF / group / f"{name}.yaml")
    if "_target_" not in node and name in node:
        node = node[name]
    node.pop("defaults", None)
    try:
        return instantiate(OmegaConf.merge(node, overrides), _convert_="all")
    except InstantiationException as error:  # what the constructor raised
        raise error.__cause__ from None


def policies(*names: str) -> dict:
    """The augmentation policies of these conf/model/augmentation/policies options."""
    return {name: part("model/augmentation/policies", name) for name in names}


def adam(lr: float = 2e-4, momentum: float = 0.5, **kwargs):
    return partial(torch.optim.Adam, lr=lr, betas=(momentum, 0.999), fused=True, **kwargs)


def tiny_module(
    optimizer: str = "adam", lr: float = 2e-4, momentum: float = 0.5, discriminator=None,
    loss=None, num_classes: int = 0, scheduler=None, schedules=None, **kwargs,
):  # fmt: skip
    """The GANModule on 16x16 digits with tiny G and D (the same seed every call), as the
    optimizer group would build it: torch.optim partials for each network. The DCGAN paper's
    game (BCE, BatchNorm D) and no augmentation unless a test asks; `loss` an object or the
    name of a conf/model/loss option."""
    from pytorch_lightning import seed_everything

    from src.models.augment import Augment
    from src.models.gan_module import GANModule
    from src.models.optim import Optimizers

    seed_everything(0)
    if optimizer == "adam":
        factory = adam(lr, momentum)
    else:
        factory = partial(torch.optim.SGD, lr=lr, momentum=momentum, fused=True)
    generator = Generator(16, 1, latent_dim=8, ngf=4, latent_components=0, num_classes=num_classes)
    discriminator = discriminator or Discriminator(
        16,
        1,
        ndf=4,
        norm="batch",
        num_classes=num_classes,
        condition=kwargs.pop("condition", "projection"),
    )
    optimizers = Optimizers(
        factory, factory, lr, momentum, scheduler=scheduler, schedules=schedules
    )
    loss = part("model/loss", loss or "bce") if loss is None or isinstance(loss, str) else loss
    kwargs.setdefault("augmentation", Augment())
    return GANModule(
        generator, discriminator, optimizers.build(generator, discriminator), loss,
        conditional=kwargs.pop("conditional", bool(num_classes)), **kwargs,
    )  # fmt: skip


def fit_batches(module, batches: int, **trainer_kwargs):
    """Trains `module` for `batches` batches of 8 digits on CPU (with their labels when the
    module is conditional); returns the Trainer."""
    from pytorch_lightning import Trainer

    from src.data.digits import Digits
    from src.data.module import ImageDataModule

    settings = dict(
        max_epochs=1, limit_train_batches=batches, limit_val_batches=0, log_every_n_steps=1,
        logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        accelerator="cpu",
    )  # fmt: skip
    trainer = Trainer(**{**settings, **trainer_kwargs})
    labels = module.conditional
    data = Digits(image_size=16, batch_size=8, labels=labels)
    trainer.fit(module, datamodule=ImageDataModule(data))
    return trainer


def epoch_batches(data, epoch: int = 0) -> list[torch.Tensor]:
    """One epoch of float batches of an ImageSource, as the training step receives them."""
    from src.data.base import to_float

    data.setup("fit")
    loader = data.train_loader()
    loader.sampler.set_epoch(epoch)
    return [to_float(b) if isinstance(b, torch.Tensor) else (to_float(b[0]), *b[1:])
            for b in loader]  # fmt: skip


def wandb_records(path) -> list:
    """The protobuf records of a W&B `.wandb` file (what `wandb sync` uploads): a 7-byte
    header, then LevelDB-log framing (32 KiB blocks; per chunk a CRC, a length and a type:
    1 full, 2 first, 3 middle, 4 last)."""
    import struct
    from pathlib import Path

    from wandb.proto import wandb_internal_pb2

    data, block, position, pending, chunks = Path(path).read_bytes(), 32768, 7, b"", []
    while position + 7 <= len(data):
        left = block - position % block
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if left < 7 or (length == 0 and kind == 0):  # block trailer / padding
            position += left
            continue
        piece = data[position + 7 : position + 7 + length]
        position += 7 + length
        pending = piece if kind in (1, 2) else pending + piece
        if kind in (1, 4):
            chunks.append(pending)
    records = []
    for chunk in chunks:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(chunk)
        records.append(record)
    return records


def resumed_and_straight(train_entry, settings: list[str], tmp_path) -> tuple[dict, dict]:
    """The last checkpoints of 2 epochs straight and of 1 epoch + a resume to 2 (`settings`
    for each run of `train_entry`), loaded."""
    from src.utils.checkpoint import load_checkpoint

    status, err = train_entry(*settings, "trainer.max_epochs=2", run_dir=tmp_path / "full")
    assert status == 0, err
    status, err = train_entry(*settings, run_dir=tmp_path / "first")
    assert status == 0, err
    first = tmp_path / "first" / "checkpoints" / "last.ckpt"
    status, err = train_entry(
        *settings, "trainer.max_epochs=2", f"ckpt_path={first}", run_dir=tmp_path / "resumed"
    )
    assert status == 0, err
    return tuple(load_checkpoint(tmp_path / n / "checkpoints" / "last.ckpt")
                 for n in ("full", "resumed"))  # fmt: skip


def assert_same_state(a: dict, b: dict, optimizers: bool = False) -> None:
    """Two checkpoints hold bitwise the same weights and buffers (and optimizer states)."""
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for name, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][name]), name
    for opt_a, opt_b in zip(a["optimizer_states"], b["optimizer_states"], strict=True):
        for p, state in opt_a["state"].items() if optimizers else ():
            for key, value in state.items():
                assert torch.equal(value, opt_b["state"][p][key]), (p, key)
