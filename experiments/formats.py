"""Images written in torchvision's on-disk formats (MNIST's IDX files, CIFAR-10's python
pickles) for the benchmarks; the tests' fixtures use the same writers."""

import gzip
import pickle
from pathlib import Path

import numpy as np


def colour_pictures(n: int, h: int = 32, w: int = 32, seed: int = 0) -> np.ndarray:
    """(n, h, w, 3) uint8: smooth colour gradients with a bright square, different per image."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        a, b, c = rng.uniform(0, 255, 3)
        img = np.stack([a * x + 40, b * y + 40, c * (1 - x) + 40], -1)
        top, left = rng.integers(0, h // 2), rng.integers(0, w // 2)
        img[top : top + h // 4, left : left + w // 4] = 250
        out[i] = img.clip(0, 255)
    return out


def write_idx(path: Path, images: np.ndarray, gz: bool = False) -> Path:
    """An IDX3 ubyte file (magic 0x00000803, big-endian sizes), as MNIST ships."""
    n, h, w = images.shape
    data = bytes([0, 0, 8, 3]) + b"".join(v.to_bytes(4, "big") for v in (n, h, w))
    data += images.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def write_idx_labels(path: Path, labels: np.ndarray) -> Path:
    """An IDX1 ubyte label file (magic 0x00000801), as MNIST ships."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes([0, 0, 8, 1]) + len(labels).to_bytes(4, "big") + labels.tobytes())
    return path


def write_cifar10(root: Path, per_batch: int = 20) -> Path:
    """cifar-10-batches-py/data_batch_1..5 + test_batch: pickled dicts of numpy arrays, keys
    as the originals load (torchvision reads them with encoding="latin1")."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        images = colour_pictures(per_batch, seed=i).transpose(0, 3, 1, 2).reshape(per_batch, -1)
        batch = {
            "batch_label": name,
            "labels": [int(v) for v in np.arange(per_batch) % 10],
            "data": images,
            "filenames": [f"img_{i}_{j}.png" for j in range(per_batch)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                            "horse", "ship", "truck"],
            "num_cases_per_batch": per_batch, "num_vis": 3072}  # fmt: skip
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return root
