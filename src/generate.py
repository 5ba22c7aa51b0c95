"""Samples from a checkpoint: `python -m src.generate ckpt_path=... n=64 out=...`.

Writes `grid.png` (up to 64 samples, 8 per row), `images/000000.png ...` (n files, one image
each) and `interpolation.png` (rows of latent interpolations) into `out` (default: a
`generated/` folder next to the checkpoint's run directory).
"""

from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from torchvision.utils import make_grid, save_image

from src.models.loading import generate, load_generator
from src.utils.cli import one_line_errors
from src.utils.errors import ConfigError


def to_unit(images: torch.Tensor) -> torch.Tensor:
    return (images.clamp(-1, 1) + 1) / 2


@torch.no_grad()
def interpolation(generator: torch.nn.Module, rows: int, steps: int, seed: int) -> torch.Tensor:
    """`rows` straight lines in latent space between random pairs, `steps` images each."""
    rng = torch.Generator().manual_seed(seed + 1)
    start, end = (generator.sample_latent(rows, generator=rng).unsqueeze(1) for _ in range(2))
    weights = torch.linspace(0, 1, steps).view(1, steps, 1)
    z = (start * (1 - weights) + end * weights).reshape(rows * steps, -1)
    return generator(z)


def output_dir(cfg: DictConfig) -> Path:
    if cfg.out:
        return Path(cfg.out)
    return Path(cfg.ckpt_path).resolve().parent.parent / "generated"


@hydra.main(version_base="1.3", config_path="../conf", config_name="generate.yaml")
@one_line_errors
def main(cfg: DictConfig) -> None:
    if not isinstance(cfg.n, int) or cfg.n < 1:
        raise ConfigError("n", cfg.n, "allowed: an integer >= 1")
    generator, _ = load_generator(str(cfg.ckpt_path))
    out = output_dir(cfg)
    (out / "images").mkdir(parents=True, exist_ok=True)
    images = to_unit(generate(generator, cfg.n, cfg.seed))
    save_image(make_grid(images[:64], nrow=cfg.nrow), out / "grid.png")
    for i, image in enumerate(images):
        save_image(image, out / "images" / f"{i:06d}.png")
    strip = to_unit(
        interpolation(generator, cfg.interpolation_rows, cfg.interpolation_steps, cfg.seed)
    )
    save_image(make_grid(strip, nrow=cfg.interpolation_steps), out / "interpolation.png")
    print(f"{cfg.n} samples, grid.png and interpolation.png in {out}")


if __name__ == "__main__":
    main()
