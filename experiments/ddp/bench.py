"""1 vs 2 data-parallel processes of the default digits run, and what they communicate.

    python -m experiments.ddp.bench          # ~75 s on 2 CPU cores
    python -m experiments.ddp.bench --hardware gpu --devices 1 2 4   # on a GPU machine

Runs `python -m src.train` (digits, batch 64 per process, 4 epochs) with trainer.devices=1
and =2 on the CPU (gloo), timing epochs 2-4 from process 0, and counts the bytes gan_ddp
all-reduces per training step: D's gradients + the skip flag, then G's gradients, fp32.
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

EPOCHS = 4


class EpochTimer:
    """Callback for `src.train`: appends process 0's epoch-end times to `path`."""

    def __new__(cls, path: str):
        from pytorch_lightning import Callback

        class _EpochTimer(Callback):
            def on_train_epoch_end(self, trainer, pl_module) -> None:
                if trainer.global_rank == 0:
                    with open(path, "a") as f:
                        f.write(f"{time.perf_counter()} {trainer.num_training_batches}\n")

        return _EpochTimer()


def images_per_second(devices: int, hardware: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        marks = Path(tmp) / "marks.txt"
        subprocess.run(
            [sys.executable, "-m", "src.train", f"hardware={hardware}",
             f"trainer.devices={devices}", f"trainer.max_epochs={EPOCHS}", "logger=csv",
             f"hydra.run.dir={tmp}/run",
             "callbacks.progress_bar.refresh_rate=0",
             "+callbacks.timer._target_=experiments.ddp.bench.EpochTimer",
             f"+callbacks.timer.path={marks}"],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
        rows = [line.split() for line in marks.read_text().splitlines()]
    times, batches = [float(r[0]) for r in rows], int(rows[0][1])
    steps = batches * (len(times) - 1)
    return steps * 64 * devices / (times[-1] - times[0])


def bytes_per_step() -> tuple[int, int]:
    from src.models.dcgan import Discriminator, Generator

    d = sum(p.numel() for p in Discriminator(32, 1, ndf=32, norm="batch").parameters())
    g = sum(p.numel() for p in Generator(32, 1, 100, ngf=32, latent_components=0).parameters())
    return d, g


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--hardware", default="cpu", help="cpu, or gpu on a GPU machine")
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 1, 2])
    args = parser.parse_args()
    d, g = bytes_per_step()
    mib = (d + g + 1) * 4 / 2**20
    print(f"all-reduced per step: D {d:,} + 1 flag, G {g:,} floats = {mib:.2f} MiB")
    print(f"  (DDP with find_unused_parameters=True: both networks in each of 2 backwards = "
          f"{2 * (d + g) * 4 / 2**20:.2f} MiB)")  # fmt: skip
    for devices in args.devices:
        rate = images_per_second(devices, args.hardware)
        print(f"{args.hardware} devices={devices}: {rate:,.0f} images/s", flush=True)


if __name__ == "__main__":
    main()
