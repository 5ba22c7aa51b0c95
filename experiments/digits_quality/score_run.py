"""Scores generated digits with the digit classifier (see digit_classifier.py).

    python -m experiments.digits_quality.score_run outputs/train/<run>            # last.ckpt
    python -m experiments.digits_quality.score_run <run>/checkpoints/epoch_*.ckpt # per epoch
    python -m experiments.digits_quality.score_run --real    # held-out real digits (ceiling)
    python -m experiments.digits_quality.score_run --noise   # uniform noise (floor)

Prints one JSON line per source: `recognisable` is the share of 1,000 samples classified with
confidence >= 0.9, `class_shares` the share of samples given to each digit 0-9. A conditional
model is asked for every digit equally often, and `asked_for` is the share classified as the
digit it was asked for (class-conditional accuracy, by this independent classifier).
"""

import argparse
import json
from pathlib import Path

import torch

from experiments.digits_quality.digit_classifier import load_or_train, score, split
from src.generate import generate
from src.models.loading import load_generator


def samples_from_checkpoint(
    ckpt: Path, n: int, seed: int = 1234
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """n samples as the run shows them (EMA generator if kept), from fixed latents, and the
    digits a conditional model was asked for (each equally often; None if unconditional)."""
    generator, _ = load_generator(str(ckpt))
    labels = torch.arange(n) % generator.num_classes if generator.num_classes else None
    return generate(generator, n, seed, labels), labels


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="*", type=Path, help="run dirs or .ckpt files")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--real", action="store_true")
    parser.add_argument("--noise", action="store_true")
    args = parser.parse_args()
    classifier = load_or_train()
    sources = {}
    if args.real:
        sources["held-out real digits"] = split()[1][0]
    if args.noise:
        sources["uniform noise"] = torch.rand(args.n, 1, 32, 32) * 2 - 1
    asked: dict[str, torch.Tensor] = {}
    for run in args.runs:
        ckpt = run if run.suffix == ".ckpt" else run / "checkpoints" / "last.ckpt"
        sources[str(run)], labels = samples_from_checkpoint(ckpt, args.n)
        if labels is not None:
            asked[str(run)] = labels
    for name, images in sources.items():
        result = {"source": name, **score(classifier, images)}
        if name in asked:
            with torch.no_grad():
                predicted = torch.cat([classifier(b).argmax(1) for b in images.split(256)])
            result["asked_for"] = (predicted == asked[name]).float().mean().item()
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
