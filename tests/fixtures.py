"""Small datasets written in their real on-disk formats (no mocked loaders)."""

import io
from pathlib import Path

import numpy as np
from PIL import Image

from experiments.formats import colour_pictures, write_idx, write_idx_labels
from experiments.formats import write_cifar10 as write_cifar10  # re-exported for the tests


def digit_pictures(n: int, size: int = 28) -> np.ndarray:
    """(n, size, size) uint8: real handwritten digits (scikit-learn's), upscaled."""
    from sklearn.datasets import load_digits

    digits = load_digits().images[:n] * 255 / 16
    return np.stack(
        [np.asarray(Image.fromarray(d.astype(np.uint8)).resize((size, size))) for d in digits]
    )


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
