"""MNIST and Fashion-MNIST from torchvision's raw IDX files: `<root>/<folder>/raw/*-ubyte[.gz]`."""

import gzip
from pathlib import Path

import numpy as np
import torch

from src.data.base import ImageSource, UInt8Images, content_hash
from src.errors import ConfigError, choice

IMAGE_FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
LABEL_FILES = {"train": "train-labels-idx1-ubyte", "test": "t10k-labels-idx1-ubyte"}
IDX_UBYTE = 0x08  # data type code of unsigned bytes
CLASSES = {
    "MNIST": [str(d) for d in range(10)],
    "FashionMNIST": [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
        "Bag", "Ankle boot",
    ],
}  # fmt: skip


def read_idx(path: Path, dims: int) -> np.ndarray:
    """The uint8 array of an IDX file (LeCun et al.'s format) with `dims` dimensions (3:
    images, 1: labels), gzipped or not."""
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    header = 4 + 4 * dims
    if len(data) < header or data[:2] != b"\0\0" or data[2] != IDX_UBYTE or data[3] != dims:
        kind = "image" if dims == 3 else "label"
        raise ConfigError("data.root", str(path), f"not an IDX {kind} file (bad magic number)")
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    if len(data) != header + int(np.prod(shape)):
        raise ConfigError(
            "data.root", str(path), f"truncated IDX file: {len(data) - header} bytes for "
            f"{'x'.join(map(str, shape))}",
        )  # fmt: skip
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_idx_images(path: Path) -> np.ndarray:
    """The (N, H, W) uint8 array of an IDX image file."""
    return read_idx(path, 3)


class MNIST(ImageSource):
    """MNIST (`folder: MNIST`) or Fashion-MNIST (`folder: FashionMNIST`), torchvision layout."""

    def __init__(self, *args, folder: str = "MNIST", split: str = "train", **kwargs):
        super().__init__(*args, **kwargs)
        self.hparams.folder = folder
        self.hparams.split = choice("data.split", split, (*IMAGE_FILES, "all"))

    def prepare(self) -> None:
        if self.hparams.download:
            import torchvision.datasets as tvd

            dataset = tvd.FashionMNIST if self.hparams.folder == "FashionMNIST" else tvd.MNIST
            self.download(lambda: dataset(self.hparams.root, download=True))

    def files(self, names: dict[str, str] = IMAGE_FILES, required: bool = True) -> list[Path]:
        """The split's image files (`names`: IMAGE_FILES) or label files (LABEL_FILES; an
        empty list when one is missing and not `required`)."""
        raw = Path(self.hparams.root) / self.hparams.folder / "raw"
        splits = list(names) if self.hparams.split == "all" else [self.hparams.split]
        found = []
        for split in splits:
            name = names[split]
            path = next((p for p in (raw / name, raw / f"{name}.gz") if p.is_file()), None)
            if path is None and not required:
                return []
            if path is None:
                raise ConfigError(
                    "data.root", self.hparams.root, f"no {raw.name}/{name} (or .gz) under "
                    f"{self.hparams.folder}/: expected torchvision's layout {raw}/{name}",
                )  # fmt: skip
            found.append(path)
        return found

    def build_dataset(self) -> UInt8Images:
        images = np.concatenate([read_idx_images(p) for p in self.files()])
        tensor = torch.from_numpy(images.copy()).unsqueeze(1)
        targets = None  # the label files are optional for unconditional models
        if label_files := self.files(LABEL_FILES, required=self.hparams.labels):
            targets = torch.from_numpy(np.concatenate([read_idx(p, 1) for p in label_files]))
            if len(targets) != len(tensor):
                raise ConfigError(
                    "data.root", str(label_files[0]), f"{len(targets)} labels for "
                    f"{len(tensor)} images",
                )  # fmt: skip
        classes = CLASSES.get(self.hparams.folder, [str(c) for c in range(10)])
        dataset = UInt8Images(
            tensor, self.hparams.image_size, self.hparams.channels,
            None if targets is None else targets.long(), classes,
        )  # fmt: skip
        dataset.label_file = label_files[0] if label_files else None
        return dataset

    def fingerprint(self) -> str:
        return content_hash(self.files())
