"""CIFAR-10 from its python pickle batches: `<root>/cifar-10-batches-py/data_batch_{1..5}`."""

import pickle
from pathlib import Path

import numpy as np
import torch

from src.data.base import ImageSource, UInt8Images, content_hash
from src.errors import ConfigError, choice

FOLDER = "cifar-10-batches-py"
SPLITS = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
# The only globals a CIFAR batch pickle needs: numpy arrays (any numpy version), and
# _codecs.encode, which Python 3 pickles (protocol < 3) use for bytes.
ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}  # fmt: skip


class ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers only: a batch file cannot run code."""

    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A batch file's images as (N, 3, 32, 32) uint8 and their labels."""
    try:
        with open(path, "rb") as file:
            # latin1, as torchvision reads them: the files are Python 2 pickles
            batch = ArraysOnly(file, encoding="latin1").load()
        data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch["labels"], dtype=np.int64)
        if labels.shape != (len(data),):
            raise ValueError(f"{labels.size} labels for {len(data)} images")
        return data, labels
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as error:
        raise ConfigError(
            "data.root", str(path), f"not a CIFAR-10 python batch ({type(error).__name__})"
        ) from None


class CIFAR10(ImageSource):
    def __init__(self, *args, split: str = "train", **kwargs):
        super().__init__(*args, **kwargs)
        self.hparams.split = choice("data.split", split, (*SPLITS, "all"))

    def prepare(self) -> None:
        if self.hparams.download:
            from torchvision.datasets import CIFAR10

            self.download(lambda: CIFAR10(self.hparams.root, download=True))

    def files(self) -> list[Path]:
        folder = Path(self.hparams.root) / FOLDER
        split = self.hparams.split
        names = SPLITS["train"] + SPLITS["test"] if split == "all" else SPLITS[split]
        if missing := [n for n in names if not (folder / n).is_file()]:
            raise ConfigError(
                "data.root", self.hparams.root, f"missing {FOLDER}/{missing[0]} (the python "
                "version of CIFAR-10, as torchvision.datasets.CIFAR10 unpacks it)",
            )  # fmt: skip
        return [folder / n for n in names]

    def build_dataset(self) -> UInt8Images:
        images, labels = zip(*[read_batch(p) for p in self.files()], strict=True)
        return UInt8Images(
            torch.from_numpy(np.concatenate(images)), self.hparams.image_size,
            self.hparams.channels, torch.from_numpy(np.concatenate(labels)), CLASSES,
        )  # fmt: skip

    def fingerprint(self) -> str:
        return content_hash(self.files())
