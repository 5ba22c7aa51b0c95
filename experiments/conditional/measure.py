"""Scores finished runs on both axes at once and prints one markdown table (mean and spread
over the runs of each configuration).

    python -m experiments.conditional.measure conditional=outputs/c1,outputs/c2,outputs/c3 \
        unconditional=outputs/u1,outputs/u2,outputs/u3

For each run's last.ckpt: 1,000 samples (a conditional model asked for every digit equally
often), scored by src's Evaluator (domain FID/KID, precision, recall, density, coverage,
class_accuracy, intra-class FID; real-vs-real floor from the 797 held-out digits) and by the
independent digit classifier of experiments/digits_quality (recognisable: confidence >= 0.9;
asked_for: classified as the digit asked for; the least and most frequent digit's share).
"""

import statistics
import sys
from pathlib import Path

import torch

from experiments.digits_quality.digit_classifier import load_or_train, score
from src.data.digits import Digits
from src.generate import generate
from src.metrics.evaluator import Evaluator
from src.models.loading import load_generator

N, SEED = 1000, 1234
COLUMNS = [
    ("fid", "FID", 1), ("kid", "KID", 1), ("precision", "P", 3),
    ("recall", "R", 3), ("density", "D", 2), ("coverage", "C", 3),
    ("class_accuracy", "class acc", 3), ("intra_fid", "intra FID", 1),
    ("recognisable", "recognisable", 3), ("asked_for", "asked for", 3),
    ("min_share", "min share", 3), ("max_share", "max share", 3),
]  # fmt: skip


def measure(run: Path, evaluator: Evaluator, classifier) -> dict[str, float]:
    generator, _ = load_generator(str(run / "checkpoints" / "last.ckpt"))
    labels = torch.arange(N) % generator.num_classes if generator.num_classes else None
    images = generate(generator, N, SEED, labels)
    metrics = evaluator.evaluate(images, labels)
    judged = score(classifier, images)
    metrics |= {k: judged[k] for k in ("recognisable", "min_share", "max_share")}
    if labels is not None:
        with torch.no_grad():
            predicted = torch.cat([classifier(b).argmax(1) for b in images.split(256)])
        metrics["asked_for"] = (predicted == labels).float().mean().item()
    return metrics


def cell(values: list[float], digits: int) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values)
    spread = f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else ""
    return f"{mean:.{digits}f}{spread}"


def main() -> None:
    groups = {}
    for argument in sys.argv[1:]:
        name, _, runs = argument.partition("=")
        groups[name] = [Path(r) for r in runs.split(",")]
    evaluator = Evaluator(Digits(image_size=32), num_real=1000)
    classifier = load_or_train()
    floor = evaluator.floor()
    floor |= {k: v for k, v in score(classifier, evaluator.held_out).items() if k != "class_shares"}
    print("| config | runs | " + " | ".join(title for _, title, _ in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 2) + "|")
    print("| real vs real (held-out) | - | " + " | ".join(
        f"{floor[k]:.{d}f}" if k in floor else "-" for k, _, d in COLUMNS) + " |")  # fmt: skip
    for name, runs in groups.items():
        scored = [measure(run, evaluator, classifier) for run in runs]
        for run, metrics in zip(runs, scored, strict=True):
            values = ", ".join(f"{k} {metrics.get(k, float('nan')):.4f}" for k, _, _ in COLUMNS)
            print(f"<!-- {run}: {values} -->", flush=True)
        row = [cell([m[k] for m in scored if k in m], d) for k, _, d in COLUMNS]
        print(f"| {name} | {len(runs)} | " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
