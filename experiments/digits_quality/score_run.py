"""Scores a training run's samples with the digit classifier.

    python experiments/digits_quality/score_run.py <run_dir or .ckpt> [--n 1000]
    python experiments/digits_quality/score_run.py --real     # the held-out real digits
"""

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from digit_classifier import load_or_train, score, split  # noqa: E402

from src.models.gan_module import GANModule  # noqa: E402


def samples_from_checkpoint(ckpt: Path, n: int, seed: int = 1234) -> torch.Tensor:
    import hydra

    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
    cfg = checkpoint["config"]["model"]
    module = GANModule(
        hydra.utils.instantiate(cfg["generator"]),
        hydra.utils.instantiate(cfg["discriminator"]),
        optimizer=cfg["optimizer"],
        ema_decay=cfg["ema_decay"],
        num_fixed_noise=cfg["num_fixed_noise"],
    )
    module.load_state_dict(checkpoint["state_dict"])
    z = torch.randn(n, module.generator.latent_dim, generator=torch.Generator().manual_seed(seed))
    return torch.cat([module.sample(b) for b in z.split(250)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", nargs="?", type=Path)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--real", action="store_true")
    args = parser.parse_args()
    classifier = load_or_train()
    if args.real:
        _, (images, _) = split()
        result = {"source": "held-out real digits", **score(classifier, images)}
    else:
        ckpt = args.run if args.run.suffix == ".ckpt" else args.run / "checkpoints" / "last.ckpt"
        result = {"source": str(args.run), **score(classifier, samples_from_checkpoint(ckpt, args.n))}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
