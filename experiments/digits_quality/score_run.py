"""Scores generated digits with the digit classifier (see digit_classifier.py).

    python experiments/digits_quality/score_run.py outputs/train/<run>            # last.ckpt
    python experiments/digits_quality/score_run.py <run>/checkpoints/epoch_*.ckpt # per epoch
    python experiments/digits_quality/score_run.py --real    # held-out real digits (ceiling)
    python experiments/digits_quality/score_run.py --noise   # uniform noise (floor)

Prints one JSON line per source: `recognisable` is the share of 1,000 samples classified with
confidence >= 0.9, `class_shares` the share of samples given to each digit 0-9.
"""

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from digit_classifier import load_or_train, score, split  # noqa: E402

from src.generate import generate  # noqa: E402
from src.utils.checkpoint import load_generator  # noqa: E402


def samples_from_checkpoint(ckpt: Path, n: int, seed: int = 1234) -> torch.Tensor:
    """n samples as the run shows them (EMA generator if kept), from fixed latents."""
    generator, _ = load_generator(str(ckpt))
    return generate(generator, n, seed)


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
    for run in args.runs:
        ckpt = run if run.suffix == ".ckpt" else run / "checkpoints" / "last.ckpt"
        sources[str(run)] = samples_from_checkpoint(ckpt, args.n)
    for name, images in sources.items():
        print(json.dumps({"source": name, **score(classifier, images)}), flush=True)


if __name__ == "__main__":
    main()
