"""Small datasets written in their real on-disk formats (no mocked loaders)."""

import gzip
import io
import pickle
from pathlib import Path

import numpy as np
from PIL import Image


def digit_pictures(n: int, size: int = 28) -> np.ndarray:
    """(n, size, size) uint8: real handwritten digits (scikit-learn's), upscaled."""
    from sklearn.datasets import load_digits

    digits = load_digits().images[:n] * 255 / 16
    return np.stack(
        [np.asarray(Image.fromarray(d.astype(np.uint8)).resize((size, size))) for d in digits]
    )


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


def write_mnist(
    root: Path, folder: str = "MNIST", n: int = 96, gz: bool = False, labels: bool = False
) -> Path:
    """train/t10k image files (and with `labels`, label files: image i is of class i % 10)."""
    raw = root / folder / "raw"
    write_idx(raw / "train-images-idx3-ubyte", digit_pictures(n), gz=gz)
    write_idx(raw / "t10k-images-idx3-ubyte", digit_pictures(n // 2), gz=gz)
    if labels:
        for name, count in [("train", n), ("t10k", n // 2)]:
            classes = (np.arange(count) % 10).astype(np.uint8)
            write_idx_labels(raw / f"{name}-labels-idx1-ubyte", classes)
    return root


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


def encoded(image: np.ndarray, fmt: str, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    picture = Image.fromarray(image)
    picture = picture.convert(mode) if mode else picture
    picture.save(buffer, format=fmt)
    return buffer.getvalue()


def write_folder(root: Path, n: int = 40) -> Path:
    """A nested tree of PNG/JPEG/WebP/BMP files of mixed sizes and modes, plus a corrupt one."""
    sizes = [(48, 64), (64, 48), (80, 80), (40, 100)]
    kinds = [("PNG", None, "png"), ("JPEG", None, "jpg"), ("PNG", "L", "png"),
             ("PNG", "RGBA", "png"), ("WEBP", None, "webp"), ("BMP", None, "bmp")]  # fmt: skip
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        fmt, mode, ext = kinds[i % len(kinds)]
        sub = root / ("a" if i % 2 else "b") / ("deep" if i % 3 == 0 else "")
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"img_{i:03d}.{ext}").write_bytes(
            encoded(colour_pictures(1, h, w, seed=i)[0], fmt, mode)
        )
    (root / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0garbage" * 10)
    (root / "a" / "notes.txt").write_text("not an image")
    return root


def write_celeba(root: Path, n: int = 48) -> Path:
    """celeba/img_align_celeba/000001.jpg ... (178x218 like the real ones) + partition list."""
    images = root / "celeba" / "img_align_celeba"
    images.mkdir(parents=True)
    lines = []
    for i in range(1, n + 1):
        name = f"{i:06d}.jpg"
        (images / name).write_bytes(encoded(colour_pictures(1, 218, 178, seed=i)[0], "JPEG"))
        lines.append(f"{name} {0 if i <= n * 3 // 4 else 1}")
    (root / "celeba" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return root


def write_lsun(root: Path, classes: tuple[str, ...] = ("bedroom",), n: int = 40) -> Path:
    """<class>_train_lmdb: an LMDB whose values are encoded images (WebP, as LSUN ships)."""
    import lmdb

    for c, name in enumerate(classes):
        (root / f"{name}_train_lmdb").mkdir(parents=True)
        env = lmdb.open(str(root / f"{name}_train_lmdb"), map_size=1 << 26)
        with env, env.begin(write=True) as txn:
            for i in range(n):
                image = colour_pictures(1, 72, 96, seed=100 * c + i)[0]
                txn.put(f"{name}{i:040d}".encode(), encoded(image, "WEBP"))
    return root
