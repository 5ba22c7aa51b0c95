"""Samples from a checkpoint: `python -m src.generate ckpt_path=... n=64 out=...`.

Writes `grid.png` (up to 64 samples, `nrow` per row), `images/000000.png ...` (n files, one
image each, generated and written in chunks, so memory does not grow with n) and
`interpolation.png` (rows of latent interpolations) into `out` (default: a `generated/`
folder next to the checkpoint's run directory).

A conditional model: `label=k` makes every image of class k; without it the labels are drawn
uniformly and written to `labels.csv` (file, label, class name) beside the images; each
interpolation row stays within one class.
"""

import csv
import io
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from torchvision.utils import make_grid, save_image

from src.cli import entry, one_line_errors
from src.config import GenerateConfig, check_keys
from src.errors import ConfigError, integer
from src.models.loading import load_generator
from src.utils.checkpoint import atomic_write
from src.utils.hydra_callbacks import RunLock
from src.utils.outputs import stopped_by_signals, writable_dir, writing

MAX_SAMPLES = 1_000_000
IMAGE_NAME = re.compile(r"\d{6,}\.png")  # what src.generate writes into images/


def to_unit(images: torch.Tensor) -> torch.Tensor:
    return (images.clamp(-1, 1) + 1) / 2


def viewable(images: torch.Tensor, at_least: int = 64) -> torch.Tensor:
    """Images upscaled without smoothing (each pixel a square) to at least `at_least` pixels a
    side, for grids a person looks at; the metrics and the per-sample files keep the data's."""
    factor = -(-at_least // images.shape[-1])
    if factor <= 1:
        return images
    return torch.nn.functional.interpolate(images, scale_factor=factor, mode="nearest")


@torch.no_grad()
def generate_chunks(
    generator: torch.nn.Module,
    n: int,
    seed: int = 0,
    labels: int | torch.Tensor | None = None,
    batch: int = 500,
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """`n` images in [-1, 1] from seeded latents, `batch` at a time, with their classes: the
    tensor `labels`, one class `labels`, or (None) drawn from the same seeded stream."""
    rng = torch.Generator().manual_seed(seed)
    for start in range(0, n, batch):
        z = generator.sample_latent(min(batch, n - start), generator=rng)
        if not generator.num_classes:
            yield generator(z).clamp(-1, 1), None  # as saved: a G without tanh (R3GAN's) too
            continue
        if isinstance(labels, torch.Tensor):
            classes = labels[start : start + len(z)]
        elif labels is not None:
            classes = torch.full((len(z),), labels, dtype=torch.long)
        else:
            classes = generator.sample_labels(len(z), generator=rng)
        yield generator(z, classes).clamp(-1, 1), classes


def generate(
    generator: torch.nn.Module, n: int, seed: int = 0, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """All `n` images at once (what metrics need); a conditional G makes class `labels[i]`."""
    return torch.cat([images for images, _ in generate_chunks(generator, n, seed, labels)])


@torch.no_grad()
def interpolation(
    generator: torch.nn.Module, rows: int, steps: int, seed: int, label: int | None = None
) -> torch.Tensor:
    """`rows` straight lines in latent space between random pairs, `steps` images each; for a
    conditional G each row keeps one class (`label`, else row i shows class i)."""
    rng = torch.Generator().manual_seed(seed + 1)
    start, end = (generator.sample_latent(rows, generator=rng).unsqueeze(1) for _ in range(2))
    weights = torch.linspace(0, 1, steps).view(1, steps, 1)
    z = (start * (1 - weights) + end * weights).reshape(rows * steps, -1)
    if not generator.num_classes:
        return generator(z)
    classes = torch.full((rows,), label) if label is not None else torch.arange(rows)
    return generator(z, (classes % generator.num_classes).repeat_interleave(steps))


def output_dir(cfg: DictConfig) -> Path:
    if cfg.out:
        return Path(cfg.out).expanduser()
    return Path(cfg.ckpt_path).expanduser().resolve().parent.parent / "generated"


@hydra.main(version_base="1.3", config_path="../conf", config_name="generate.yaml")
@one_line_errors
def main(cfg: DictConfig) -> None:
    check_keys(cfg, GenerateConfig)
    integer("n", cfg.n, 1, MAX_SAMPLES)
    integer("seed", cfg.seed, 0, 2**63 - 1)
    integer("nrow", cfg.nrow, 1, 64)
    integer("interpolation_rows", cfg.interpolation_rows, 1, 64)
    integer("interpolation_steps", cfg.interpolation_steps, 2, 64)
    generator, _ = load_generator(str(Path(cfg.ckpt_path).expanduser()), trust=cfg.trust)
    label = check_label(cfg.get("label"), generator)
    out = writable_dir("out", output_dir(cfg))
    images = out / "images"
    if images.exists() and any(not IMAGE_NAME.fullmatch(p.name) for p in images.iterdir()):
        raise ConfigError("out", str(out), "its images/ holds files src.generate did not write")
    # one src.generate at a time into `out`: what another left there is debris of a killed one
    with RunLock(out, "out"), writing("out"), stopped_by_signals(f"{out} is as it was"):
        for debris in out.glob(".images.*"):
            shutil.rmtree(debris, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=".images.", dir=out))  # complete or nothing
        try:
            first, rows = write_images(generator, cfg, label, staging)
            if images.exists():
                shutil.rmtree(images)  # a previous generate's output (checked above)
            staging.rename(images)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        save_png(make_grid(viewable(torch.stack(first)), nrow=cfg.nrow), out / "grid.png")
        if generator.num_classes:
            text = io.StringIO()
            csv.writer(text, lineterminator="\n").writerows([["file", "label", "class"], *rows])
            atomic_write(out / "labels.csv", lambda file: file.write(text.getvalue().encode()))
        steps = cfg.interpolation_steps
        strip = to_unit(interpolation(generator, cfg.interpolation_rows, steps, cfg.seed, label))
        save_png(make_grid(viewable(strip), nrow=steps), out / "interpolation.png")
    extra = ", labels.csv" if generator.num_classes else ""
    print(f"{cfg.n} samples, grid.png{extra} and interpolation.png in {out}")


def write_images(
    generator: torch.nn.Module, cfg: DictConfig, label: int | None, folder: Path
) -> tuple[list[torch.Tensor], list[list[object]]]:
    """`cfg.n` PNGs into `folder`; the first 64 images (the grid's) and each file's row."""
    first: list[torch.Tensor] = []
    rows: list[list[object]] = []
    names = generator.class_names or [str(c) for c in range(generator.num_classes)]
    for chunk, labels in generate_chunks(generator, cfg.n, cfg.seed, label):
        for i, image in enumerate(to_unit(chunk)):
            name = f"{len(rows):06d}.png"
            save_image(image, folder / name)
            if len(first) < 64:
                first.append(image)
            rows.append([name] if labels is None else [name, int(labels[i]), names[labels[i]]])
    return first, rows


def save_png(image: torch.Tensor, path: Path) -> None:
    atomic_write(path, lambda file: save_image(image, file, format="png"))


def check_label(label: object, generator: torch.nn.Module) -> int | None:
    """`label=k`: a class of a conditional model (null: labels drawn uniformly)."""
    if label is None:
        return None
    if not generator.num_classes:
        raise ConfigError("label", label, "the checkpoint's model is unconditional (no classes)")
    return integer("label", label, 0, generator.num_classes - 1)


if __name__ == "__main__":
    entry(main)
