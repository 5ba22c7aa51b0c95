"""MNIST and Fashion-MNIST from torchvision's raw IDX files: `<root>/<folder>/raw/*-ubyte[.gz]`."""

import gzip
from pathlib import Path

import numpy as np
import torch

from src.data.base import ImageDataModule, UInt8Images, content_hash
from src.utils.errors import ConfigError

IMAGE_FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
IDX_UBYTE, IDX_IMAGES = 0x08, 3  # data type code and number of dimensions of image files


def read_idx_images(path: Path) -> np.ndarray:
    """The (N, H, W) uint8 array of an IDX image file (LeCun et al.'s format), gzipped or not."""
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(data) < 16 or data[:2] != b"\0\0" or data[2] != IDX_UBYTE or data[3] != IDX_IMAGES:
        raise ConfigError("data.root", str(path), "not an IDX image file (bad magic number)")
    n, h, w = (int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(3))
    if len(data) != 16 + n * h * w:
        raise ConfigError(
            "data.root", str(path), f"truncated IDX file: {len(data) - 16} bytes for {n}x{h}x{w}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, h, w)


class MNISTDataModule(ImageDataModule):
    """MNIST (`folder: MNIST`) or Fashion-MNIST (`folder: FashionMNIST`), torchvision layout."""

    def __init__(self, *args, folder: str = "MNIST", split: str = "train", **kwargs):
        super().__init__(*args, **kwargs)
        if split not in (*IMAGE_FILES, "all"):
            raise ConfigError("data.split", split, "allowed: train, test, all")

    def prepare_data(self) -> None:
        if self.hparams.download:
            import torchvision.datasets as tvd

            dataset = tvd.FashionMNIST if self.hparams.folder == "FashionMNIST" else tvd.MNIST
            self.download(lambda: dataset(self.hparams.root, download=True))

    def files(self) -> list[Path]:
        raw = Path(self.hparams.root) / self.hparams.folder / "raw"
        splits = list(IMAGE_FILES) if self.hparams.split == "all" else [self.hparams.split]
        found = []
        for split in splits:
            name = IMAGE_FILES[split]
            path = next((p for p in (raw / name, raw / f"{name}.gz") if p.is_file()), None)
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
        return UInt8Images(tensor, self.hparams.image_size, self.hparams.channels)

    def fingerprint(self) -> str:
        return content_hash(self.files())
