"""Streamed litdata shards beside a JPEG folder read through a DataLoader (issue 36).

    python -m experiments.data_pipeline.shards          # ~4 minutes on 2 CPU cores

Writes 20,000 JPEGs (64x64 RGB, varied pictures, two class folders), prepares them as shards
with `python -m src.prepare` (2 workers), then, each case in a fresh process, delivers one
epoch of training-ready uint8 batches (batch 64, shuffled, drop_last, 64 px RGB) to a loop
that touches every batch: images/s over the epoch, seconds to the first batch, and the peak
resident memory of the process and its loader workers. Sizes: the JPEG folder against the
shards.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGES, SIZE, BATCH = 20_000, 64, 64


def write_jpegs(root: Path, images: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    for i in range(images):
        folder = root / ("cats" if i % 2 else "dogs")
        folder.mkdir(parents=True, exist_ok=True)
        cx, cy, r = rng.uniform(10, 54, 2).tolist() + [rng.uniform(6, 24)]
        colour = rng.integers(0, 256, 3)
        picture = rng.integers(0, 60, (SIZE, SIZE, 3)).astype(np.uint8)
        picture[(xs - cx) ** 2 + (ys - cy) ** 2 < r**2] = colour
        Image.fromarray(picture).save(folder / f"{i:06d}.jpg", quality=90)


def loader(case: str, data: Path, workers: int):
    from hydra.utils import instantiate

    from src.train import compose_config

    keys = {
        "folder": ["data=folder", "data.resident=false"],
        "shards": ["data=streaming", "data.channels=3", "data.cache_dir=null"],
    }[case]
    cfg = compose_config([*keys, f"data.root={data}", f"data.image_size={SIZE}",
                          f"data.batch_size={BATCH}", f"data.num_workers={workers}"])  # fmt: skip
    source = instantiate(cfg.data)
    source.setup("fit")
    return source.train_loader(epoch=lambda: 0)


def one_case(case: str, data: Path, workers: int) -> dict:
    start = time.perf_counter()
    batches = iter(loader(case, data, workers))
    first = next(batches)
    first_s = time.perf_counter() - start
    count = len(first)
    for batch in batches:
        batch.sum()
        count += len(batch)
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + resource.getrusage(
        resource.RUSAGE_CHILDREN).ru_maxrss  # fmt: skip
    return {"case": case, "workers": workers, "images": count,
            "images_per_s": (count - len(first)) / (seconds - first_s),
            "first_batch_s": first_s, "peak_mb": peak_kb / 1024}  # fmt: skip


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", choices=["folder", "shards"])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--images", type=int, default=IMAGES)  # fewer: a smoke run
    args = parser.parse_args()
    if args.case:  # one measurement, in its own process
        print(json.dumps(one_case(args.case, args.data, args.workers)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        jpegs, shards = Path(tmp) / "jpegs", Path(tmp) / "shards"
        write_jpegs(jpegs, args.images)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "src.prepare", "data=folder",
                        f"data.root={jpegs}", f"data.image_size={SIZE}", f"out={shards}",
                        "workers=2"], cwd=ROOT, check=True, capture_output=True)  # fmt: skip
        prepare_s = time.perf_counter() - started
        print(
            f"{args.images:,} JPEGs: {folder_bytes(jpegs) / 1e6:.1f} MB; shards: "
            f"{folder_bytes(shards) / 1e6:.1f} MB (src.prepare, 2 workers: {prepare_s:.0f} s)"
        )
        print("| data | loader workers | images/s | first batch (s) | peak memory (MB) |")
        print("|---|---|---|---|---|")
        for case, data in (("folder", jpegs), ("shards", shards)):
            for workers in (0, 2):
                done = subprocess.run(
                    [sys.executable, "-m", "experiments.data_pipeline.shards", "--case", case,
                     "--data", str(data), "--workers", str(workers)],
                    cwd=ROOT, check=True, capture_output=True, text=True,
                )  # fmt: skip
                row = json.loads(done.stdout.strip().splitlines()[-1])
                print(
                    f"| {case} | {workers} | {row['images_per_s']:,.0f} | "
                    f"{row['first_batch_s']:.2f} | {row['peak_mb']:,.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
