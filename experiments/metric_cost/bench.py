"""What measuring costs: the domain feature extractor's recipe, and the share of a default run
spent on the `val/*` metrics (experiments/metric_cost/RESULTS.md).

    python -m experiments.metric_cost.bench data ROOT          # the 5,000-image MNIST-format set
    python -m experiments.metric_cost.bench extractor ROOT     # old vs new recipe, 3 seeds
    python -m experiments.metric_cost.bench run ROOT           # a default run on it, timed

`data` writes 5,000 28x28 digits as MNIST's raw IDX files (ROOT/MNIST/raw/train-*), each a
scikit-learn digit upscaled and moved by a random affine transform (rotation +-12 degrees,
shift +-2 px, scale +-10%), with its label. `extractor` trains the domain feature extractor
on the digits and on that set with the recipe src/metrics/domain.py uses now and with the
first one (VERSION 1, kept below only to compare), on the images the Evaluator gives it,
and prints time and held-out accuracy per seed. `run` runs the default training
(`python -m src.train data=mnist data.root=ROOT`, CSV logger, a cold extractor cache in the
run directory) and prints its wall time and the quality callback's own account of its cost.
"""

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from experiments.formats import write_idx, write_idx_labels
from src.data.base import to_float
from src.data.digits import Digits
from src.data.idx import MNIST
from src.metrics import domain

ROOT = Path(__file__).resolve().parents[2]


def write_dataset(root: Path, n: int = 5000, seed: int = 0) -> None:
    from sklearn.datasets import load_digits
    from torchvision.transforms.v2 import functional as TF

    digits = load_digits()
    generator = torch.Generator().manual_seed(seed)
    base = F.interpolate(torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16,
                         size=28, mode="bilinear", align_corners=False)  # fmt: skip
    index = torch.randint(0, len(base), (n,), generator=generator)
    images = []
    for i in index.tolist():
        angle, dx, dy, scale = (torch.rand(4, generator=generator) * 2 - 1).tolist()
        images.append(TF.affine(base[i], angle=12 * angle, translate=[2 * dx, 2 * dy],
                                scale=1 + 0.1 * scale, shear=[0.0]))  # fmt: skip
    pixels = (torch.stack(images)[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    labels = digits.target[index.numpy()].astype(np.uint8)
    raw = root / "MNIST" / "raw"
    write_idx(raw / "train-images-idx3-ubyte", pixels)
    write_idx_labels(raw / "train-labels-idx1-ubyte", labels)
    print(f"wrote {n} images and labels under {raw}")


class FirstCNN(nn.Module):
    """VERSION 1's extractor (no BatchNorm), only to compare recipes."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
            nn.Flatten(), nn.Linear(128 * 16, 128), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(128, num_classes)


def train_first(images: torch.Tensor, labels: torch.Tensor, seed: int) -> float:
    """VERSION 1's recipe: 15 epochs of Adam at a constant 1e-3, batch 64; same split, same
    translations as domain.train_domain_model."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=generator)
    split = int(0.8 * len(images))
    x_train, y_train = images[order[:split]], labels[order[:split]]
    x_test, y_test = images[order[split:]], labels[order[split:]]
    torch.manual_seed(seed)
    net = FirstCNN(images.shape[1], int(labels.max()) + 1)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(15):
        for batch in torch.randperm(split, generator=generator).split(64):
            shift = torch.randint(-2, 3, (2,), generator=generator).tolist()
            x = torch.roll(x_train[batch], shifts=shift, dims=(2, 3))
            loss = F.cross_entropy(net.head(net.body(x)), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        predictions = net.head(net.body(x_test)).argmax(1)
    return (predictions == y_test).float().mean().item()


def extractor(root: Path, seeds: int) -> None:
    torch.set_num_threads(2)
    datasets = {"digits (1,797)": Digits(image_size=32),
                "mnist-format (5,000)": MNIST(root=str(root), image_size=32)}  # fmt: skip
    recipes = {
        "VERSION 1: plain CNN, Adam 1e-3 constant, 15 epochs": train_first,
        f"VERSION {domain.VERSION}: BatchNorm CNN, one-cycle 1e-2, 4 epochs, channels_last":
            lambda x, y, seed: domain.train_domain_model(x, y, epochs=4, seed=seed)[1],
    }  # fmt: skip
    print("| recipe | data | held-out accuracy (mean, per seed) | seconds (mean) |")
    print("|---|---|---|---|")
    for name, datamodule in datasets.items():
        datamodule.setup("fit")
        images, labels = to_float(datamodule.images.cpu()), datamodule.targets()
        for recipe, fit in recipes.items():
            accuracies, seconds = [], []
            for seed in range(seeds):
                start = time.perf_counter()
                accuracies.append(fit(images, labels, seed))
                seconds.append(time.perf_counter() - start)
            each = " ".join(f"{a:.4f}" for a in accuracies)
            print(f"| {recipe} | {name} | {statistics.fmean(accuracies):.4f} ({each}) | "
                  f"{statistics.fmean(seconds):.1f} |", flush=True)  # fmt: skip


def run(root: Path, run_dir: Path) -> None:
    args = [sys.executable, "-m", "src.train", "data=mnist", f"data.root={root}", "logger=csv",
            f"hydra.run.dir={run_dir}", f"model.metrics.cache_dir={run_dir}/cache",
            "callbacks.progress_bar.refresh_rate=0"]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    total = time.perf_counter() - start
    if result.returncode:
        sys.exit(result.stderr[-3000:])
    line = next(x for x in result.stdout.splitlines() + result.stderr.splitlines()
                if "Quality metrics took" in x)  # fmt: skip
    metrics = float(re.search(r"took ([\d.]+) s", line).group(1))
    print(line.split(" - ", 1)[-1])
    print(
        f"run: {total:.0f} s wall (process start to exit); metrics {metrics:.1f} s = "
        f"{100 * metrics / total:.1f}% of it"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["data", "extractor", "run"])
    parser.add_argument("root", type=Path, help="where the MNIST-format set is (or goes)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--run-dir", type=Path, default=ROOT / "outputs" / "metric_cost" / "run")
    options = parser.parse_args()
    root = options.root.resolve()
    if options.command == "data":
        write_dataset(root)
    elif options.command == "extractor":
        extractor(root, options.seeds)
    else:
        run(root, options.run_dir.resolve())


if __name__ == "__main__":
    main()
