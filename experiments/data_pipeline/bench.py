"""Resident data path vs a torchvision DataLoader, and the data wait in the default run.

    python -m experiments.data_pipeline.bench            # ~3 minutes on 2 CPU cores

1. Writes 50,000 synthetic 32x32 RGB images in the real CIFAR-10 python format (5 pickle
   batches) to a temp dir, then measures images/s delivered as training-ready float batches
   (batch 64, shuffled, in [-1, 1]) by
   (a) torchvision.datasets.CIFAR10 + ToTensor + Normalize in a DataLoader (2 workers, the
       cores this machine has), and
   (b) our resident path (CIFAR10, resident=true): decode once, slice, convert.
   Each: one warm-up epoch, then the median of 3 timed epochs.
2. Trains the default digits config for a few epochs with Lightning's SimpleProfiler and
   reports the share of step time spent waiting for the next batch.
"""

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from experiments.formats import write_cifar10
from src.data.cifar import CIFAR10

ROOT = Path(__file__).resolve().parents[2]


def timed_epochs(make_iter, images_per_epoch: int, repeats: int = 3) -> float:
    """Median images/s over `repeats` full epochs, after one warm-up epoch."""
    rates = []
    for epoch in range(repeats + 1):
        start = time.perf_counter()
        for batch in make_iter(epoch):
            batch.sum()  # touch the data, as a training step would
        if epoch:
            rates.append(images_per_epoch / (time.perf_counter() - start))
    return statistics.median(rates)


def torchvision_loader(root: Path, batch_size: int, workers: int):
    from torchvision import datasets, transforms

    class CIFAR10(datasets.CIFAR10):
        # Synthetic batches in the real format: skip the md5 checks against the real files.
        def _check_integrity(self) -> bool:
            return True

        def _load_meta(self) -> None:
            self.classes = [str(i) for i in range(10)]

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(0.5, 0.5)])
    dataset = CIFAR10(str(root), train=True, transform=transform)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=workers,
        persistent_workers=workers > 0,
    )  # fmt: skip

    def epoch_iter(epoch: int):
        return (images for images, _ in loader)

    return epoch_iter, len(loader) * batch_size


def resident_loader(root: Path, batch_size: int):
    datamodule = CIFAR10(root=str(root), channels=3, batch_size=batch_size, resident=True)
    start = time.perf_counter()
    datamodule.setup("fit")
    decode_s = time.perf_counter() - start
    loader = datamodule.train_dataloader()

    def epoch_iter(epoch: int):
        loader.sampler.set_epoch(epoch)
        return (datamodule.on_after_batch_transfer(b, 0) for b in loader)

    return epoch_iter, len(loader) * batch_size, decode_s


def data_wait_share(epochs: int) -> tuple[float, float, float]:
    """(wait per step, step time, share) from a SimpleProfiler run of the default config."""
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "src.train", "logger=none", f"trainer.max_epochs={epochs}",
             f"hydra.run.dir={tmp}", "callbacks.progress_bar.refresh_rate=0",
             "+trainer.profiler._target_=pytorch_lightning.profilers.SimpleProfiler",
             f"+trainer.profiler.dirpath={tmp}", "+trainer.profiler.filename=profile"],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
        report = next(Path(tmp).glob("*profile*.txt")).read_text()

    def mean(action: str) -> float:
        row = next(line for line in report.splitlines() if action in line)
        return float(re.split(r"\s*\|\s*", row.strip().strip("|"))[1])

    wait = mean("train_dataloader_next")
    step = mean("run_training_batch") + wait
    return wait, step, wait / step


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--digits-epochs", type=int, default=10)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        root = write_cifar10(Path(tmp), per_batch=args.images // 5)
        tv_iter, tv_n = torchvision_loader(root, args.batch_size, args.workers)
        tv = timed_epochs(tv_iter, tv_n)
        print(f"torchvision DataLoader ({args.workers} workers): {tv:,.0f} images/s")
        res_iter, res_n, decode_s = resident_loader(root, args.batch_size)
        res = timed_epochs(res_iter, res_n)
        print(f"resident path: {res:,.0f} images/s (one-off decode + cache {decode_s:.1f} s)")
        print(f"resident/torchvision={res / tv:.1f}")
    wait, step, share = data_wait_share(args.digits_epochs)
    print(
        f"default digits run: data wait {wait * 1e3:.3f} ms of {step * 1e3:.1f} ms per step "
        f"= {share:.2%}"
    )


if __name__ == "__main__":
    main()
