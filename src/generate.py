"""Samples from a checkpoint: `python -m src.generate ckpt_path=... n=64 out=...`.

Writes `grid.png` (up to 64 samples, `nrow` per row), `images/000000.png ...` (n files, one
image each, generated and written in chunks, so memory does not grow with n) and
`interpolation.png` (rows of latent interpolations) into `out` (default: a `generated/`
folder next to the checkpoint's run directory).
"""

from collections.abc import Iterator
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from torchvision.utils import make_grid, save_image

from src.utils.checkpoint import load_generator
from src.utils.cli import check_int, one_line_errors, writable_dir

MAX_SAMPLES = 1_000_000


def to_unit(images: torch.Tensor) -> torch.Tensor:
    return (images.clamp(-1, 1) + 1) / 2


@torch.no_grad()
def generate_chunks(
    generator: torch.nn.Module, n: int, seed: int = 0, batch: int = 500
) -> Iterator[torch.Tensor]:
    """`n` images in [-1, 1] from seeded latents, `batch` at a time (BatchNorm in eval mode)."""
    rng = torch.Generator().manual_seed(seed)
    for start in range(0, n, batch):
        yield generator(generator.sample_latent(min(batch, n - start), generator=rng))


def generate(generator: torch.nn.Module, n: int, seed: int = 0) -> torch.Tensor:
    """All `n` images at once (what metrics need)."""
    return torch.cat(list(generate_chunks(generator, n, seed)))


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
    check_int(cfg, "n", 1, MAX_SAMPLES)
    check_int(cfg, "seed", 0, 2**63 - 1)
    check_int(cfg, "nrow", 1, 64)
    check_int(cfg, "interpolation_rows", 1, 64)
    check_int(cfg, "interpolation_steps", 2, 64)
    generator, _ = load_generator(str(cfg.ckpt_path))
    out = writable_dir("out", output_dir(cfg))
    (out / "images").mkdir(exist_ok=True)
    first: list[torch.Tensor] = []
    index = 0
    for chunk in generate_chunks(generator, cfg.n, cfg.seed):
        for image in to_unit(chunk):
            save_image(image, out / "images" / f"{index:06d}.png")
            if index < 64:
                first.append(image)
            index += 1
    save_image(make_grid(torch.stack(first), nrow=cfg.nrow), out / "grid.png")
    strip = to_unit(
        interpolation(generator, cfg.interpolation_rows, cfg.interpolation_steps, cfg.seed)
    )
    save_image(make_grid(strip, nrow=cfg.interpolation_steps), out / "interpolation.png")
    print(f"{cfg.n} samples, grid.png and interpolation.png in {out}")


if __name__ == "__main__":
    main()
