"""Shards for streaming: `python -m src.prepare data=<name> [data keys] out=<folder or s3://...>`.

Any dataset the template reads (`data=folder data.root=...`, mnist, cifar10, celeba, lsun,
stacked_digits, the digits), at the training resolution and channels of its data keys, is
written once with litdata's `optimize` (`workers` processes, its progress bar) as uint8
images with their labels, plus `manifest.json` (class names, shape, counts, the source
config, what was skipped) and `labels.pt`. An unreadable image is skipped, counted and named
(the first few), not a crash halfway. Then: `python -m src.train data=streaming
data.root=<out> data.image_size=<size> data.channels=<channels>`.
"""

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from src.cli import entry, one_line_errors
from src.config import PrepareConfig, check_keys
from src.data.streaming import (
    FORMAT,
    LABELS,
    MANIFEST,
    Item,
    allow_plain_http,
    is_remote,
    skipped_items,
)
from src.errors import ConfigError, integer
from src.utils.checkpoint import atomic_write
from src.utils.outputs import shown, stopped_by_signals

log = logging.getLogger("src.prepare")
NAMED = 5  # unreadable files named in the summary


def upload(local: Path, out: str, storage_options: dict[str, Any]) -> None:
    """`local`'s files into `out` (a local folder: written atomically; a URI: uploaded)."""
    for path in local.iterdir():
        if is_remote(out):
            from litdata.streaming.fs_provider import _get_fs_provider

            url = f"{out.rstrip('/')}/{path.name}"
            _get_fs_provider(url, storage_options).upload_file(str(path), url)
        else:
            data = path.read_bytes()
            atomic_write(Path(out) / path.name, lambda file, data=data: file.write(data))


def shard_summary(out: str, storage_options: dict[str, Any], scratch: Path) -> tuple[int, int]:
    """(shards, bytes) from litdata's index.json."""
    from src.data.streaming import fetch_file

    index = json.loads(fetch_file(out, "index.json", scratch, storage_options).read_text())
    chunks = index.get("chunks", [])
    return len(chunks), sum(int(c.get("chunk_bytes", 0)) for c in chunks)


def prepare(cfg: DictConfig) -> dict[str, Any]:
    """Writes the shards and the manifest; returns the manifest."""
    from litdata import optimize

    integer("workers", cfg.workers, 1, 4 * (os.cpu_count() or 1))
    out = str(cfg.out)
    out = out if is_remote(out) else str(Path(out.removeprefix("local:")).expanduser().absolute())
    if not is_remote(out) and (Path(out) / MANIFEST).exists() and not cfg.overwrite:
        raise ConfigError("out", out, "holds shards already: another folder, or overwrite=true")
    allow_plain_http(OmegaConf.to_container(cfg.storage_options))
    source = hydra.utils.instantiate(cfg.data)
    source.setup("fit")
    dataset, targets = source.dataset, source.targets()
    classes = list(getattr(dataset, "classes", None) or []) if targets is not None else []
    h = source.hparams
    log.info("Writing %d images of %s at %d px, %d channel(s), with %s workers into %s",
             len(dataset), type(source).__name__, h.image_size, h.channels, cfg.workers,
             shown(out) if not is_remote(out) else out)  # fmt: skip
    scratch = Path(tempfile.mkdtemp(prefix="convgan-prepare-"))
    try:
        (scratch / "skipped").mkdir()
        # litdata stages chunks for a remote `out` in its cache: ours, removed at the end
        os.environ["DATA_OPTIMIZER_CACHE_FOLDER"] = str(scratch / "chunks")
        os.environ["DATA_OPTIMIZER_DATA_CACHE_FOLDER"] = str(scratch / "data")
        started = time.perf_counter()
        optimize(
            fn=Item(dataset, targets, scratch / "skipped"), inputs=list(range(len(dataset))),
            output_dir=out, chunk_bytes=cfg.chunk_bytes, num_workers=cfg.workers,
            keep_data_ordered=True,  # the shards' order is the inputs': labels.pt aligns
            mode="overwrite" if cfg.overwrite else None,
            storage_options=OmegaConf.to_container(cfg.storage_options),
        )  # fmt: skip
        seconds = time.perf_counter() - started
        skipped = skipped_items(scratch / "skipped")
        if len(skipped) == len(dataset):
            raise ConfigError("data.root", h.root, "no readable image there")
        kept = torch.ones(len(dataset), dtype=torch.bool)
        kept[[index for index, _ in skipped]] = False
        labels = targets[kept] if targets is not None else None
        manifest = {
            "format": FORMAT, "images": int(kept.sum()), "image_size": h.image_size,
            "channels": h.channels, "classes": classes or None,
            "class_counts": torch.bincount(labels, minlength=len(classes)).tolist()
            if classes else None,
            "skipped": {"count": len(skipped), "first": [n for _, n in skipped[:NAMED]]},
            "source": OmegaConf.to_container(cfg.data, resolve=True),
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }  # fmt: skip
        files = scratch / "files"
        files.mkdir()
        (files / MANIFEST).write_text(json.dumps(manifest, indent=1))
        if labels is not None:
            torch.save(labels.clone(), files / LABELS)
        storage_options = OmegaConf.to_container(cfg.storage_options)
        upload(files, out, storage_options)
        shards, size = shard_summary(out, storage_options, scratch / "index")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if skipped:
        names = ", ".join(manifest["skipped"]["first"])
        more = f" and {len(skipped) - NAMED} more" if len(skipped) > NAMED else ""
        log.warning("Skipped %d unreadable image(s): %s%s", len(skipped), names, more)
    log.info("Prepared %d images in %d shard(s), %.1f MB, in %.1f s: train with data=streaming "
             "data.root=%s data.image_size=%d data.channels=%d", manifest["images"], shards,
             size / 1e6, seconds, out, h.image_size, h.channels)  # fmt: skip
    return manifest


@hydra.main(version_base="1.3", config_path="../conf", config_name="prepare.yaml")
@one_line_errors
def main(cfg: DictConfig) -> None:
    check_keys(cfg, PrepareConfig)
    with stopped_by_signals("the shards at `out` are incomplete: run it again"):
        prepare(cfg)


if __name__ == "__main__":
    entry(main)
