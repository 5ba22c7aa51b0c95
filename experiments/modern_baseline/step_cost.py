"""What each option of the study costs a training step, side by side in one process.

    python -m experiments.modern_baseline.step_cost     # ~2 minutes on 2 CPU cores

The default's step (digits, 32 px, batch 64) and the same with minibatch std (group 4),
packing 2 and 4, and model=r3gan_cpu with R3GAN's Adam: each configuration built as
`python -m src.train` builds it, 24 batches each, the rounds interleaved (so a slower
moment of the machine falls on every configuration alike); the median step over 3 rounds
after 4 warm-up batches, its ratio to the default's, and the networks' parameter counts.
"""

import statistics
import time

import pytorch_lightning as pl
import torch

from experiments.modern_baseline.run import CONFIGS
from src.data.digits import Digits
from src.data.module import ImageDataModule
from src.train import compose_config
from src.utils.instantiators import instantiate

NAMES = ["default", "default-mbstd", "default-pack2", "default-pack4", "r3gan-cpu"]
BATCHES, WARMUP, ROUNDS = 24, 4, 3


class StepTimer(pl.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, *args) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, *args) -> None:
        self.times.append(time.perf_counter() - self.start)


def steps(overrides: list[str], sizes: dict[str, tuple[int, int]], name: str) -> list[float]:
    cfg = compose_config([*overrides, "logger=none"], output_dir="/tmp/convgan-step-cost")
    pack = cfg.model.get("pack", 1)
    nets = {
        net: instantiate(cfg.model[net], num_classes=0,
                         **({"pack": pack} if net == "discriminator" and pack != 1 else {}))
        for net in ("generator", "discriminator")
    }  # fmt: skip
    module = instantiate(cfg.model, **nets, optimizer=instantiate(cfg.optimizer).build(**nets))
    sizes[name] = tuple(sum(p.numel() for p in nets[n].parameters()) for n in nets)
    timer = StepTimer()
    trainer = pl.Trainer(
        max_epochs=1, limit_train_batches=BATCHES, limit_val_batches=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        accelerator="cpu", callbacks=[timer],
    )  # fmt: skip
    trainer.fit(module, datamodule=ImageDataModule(Digits(image_size=32, batch_size=64)))
    return timer.times[WARMUP:]


def main() -> None:
    torch.manual_seed(0)
    medians: dict[str, list[float]] = {name: [] for name in NAMES}
    sizes: dict[str, tuple[int, int]] = {}
    for _ in range(ROUNDS):
        for name in NAMES:
            medians[name].append(statistics.median(steps(CONFIGS[name], sizes, name)))
    base = statistics.median(medians["default"])
    print("| configuration | step (s) | x default | G parameters | D parameters |")
    print("|---|---|---|---|---|")
    for name in NAMES:
        step = statistics.median(medians[name])
        print(
            f"| {name} | {step:.4f} | {step / base:.2f} | {sizes[name][0]:,} | {sizes[name][1]:,} |"
        )


if __name__ == "__main__":
    main()
