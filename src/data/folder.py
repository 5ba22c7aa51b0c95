"""Image files on disk: any folder tree (`folder`) and CelebA's aligned images (`celeba`)."""

import logging
import os
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from src.data.base import ImageSource, stat_fingerprint
from src.data.transforms import fit_pil
from src.errors import ConfigError, choice

log = logging.getLogger(__name__)

EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class FileImages(Dataset):
    """One decoded file per item; an unreadable file is reported once and replaced by the next
    readable one (of its class), so one corrupt image never stops a long run."""

    def __init__(
        self,
        paths: list[Path],
        size: int,
        channels: int,
        targets: torch.Tensor | None = None,
        classes: list[str] | None = None,
    ):
        self.paths, self.size, self.channels = paths, size, channels
        self.targets, self.classes = targets, classes
        self.bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        for offset in range(len(self.paths)):
            i = (index + offset) % len(self.paths)
            if i in self.bad or (
                self.targets is not None and self.targets[i] != self.targets[index]
            ):
                continue
            try:
                with Image.open(self.paths[i]) as image:
                    return fit_pil(image, self.size, self.channels)
            except UNREADABLE as error:
                self.bad.add(i)
                log.warning("Skipping unreadable image %s (%s)", self.paths[i], error)
        raise ConfigError("data.root", str(self.paths[index].parent), "no readable image files")


MAX_SCANNED_FILES = 2_000_000
UNREADABLE = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError)


def list_images(root: Path, extensions: tuple[str, ...]) -> list[Path]:
    """Every file under `root` (recursively) with one of `extensions`, in a stable order.

    A file-system root or a home directory is no dataset (scanning `/` would crawl every
    mounted disk and write a cache there), and the scan stops past MAX_SCANNED_FILES.
    """
    if root.resolve() in (Path("/"), Path.home().resolve()):
        raise ConfigError("data.root", str(root), "not a dataset folder: give the folder of images")
    extensions = tuple(e.lower() for e in extensions)
    found, scanned = [], 0
    for directory, _, names in os.walk(root, followlinks=False):
        scanned += len(names)
        if scanned > MAX_SCANNED_FILES:
            raise ConfigError(
                "data.root", str(root), f"more than {MAX_SCANNED_FILES:,} files under it: "
                "not a dataset folder (give the folder of images)",
            )  # fmt: skip
        found += [Path(directory, n) for n in names if Path(n).suffix.lower() in extensions]
    return sorted(p for p in found if p.is_file())


class Folder(ImageSource):
    """Any tree of images under `root`: mixed sizes and modes (grey, RGB, RGBA, palette)."""

    def __init__(self, *args, extensions: list[str] | tuple[str, ...] = EXTENSIONS, **kwargs):
        super().__init__(*args, **kwargs)
        for suffix in extensions:
            if not (isinstance(suffix, str) and suffix.startswith(".") and len(suffix) > 1):
                raise ConfigError(
                    "data.extensions", list(extensions),
                    f"allowed: file suffixes with their dot, e.g. .{suffix}",
                )  # fmt: skip
        self.hparams.extensions = list(extensions)
        self._paths: list[Path] | None = None

    def image_root(self) -> Path:
        return Path(self.hparams.root)

    def paths(self) -> list[Path]:
        if self._paths is None:
            self._paths = list_images(self.image_root(), tuple(self.hparams.extensions))
            if not self._paths:
                raise ConfigError(
                    "data.root", self.hparams.root,
                    f"no images ({', '.join(self.hparams.extensions)}) under it",
                )  # fmt: skip
        return self._paths

    def build_dataset(self) -> FileImages:
        paths = self.paths()
        targets, classes = folder_classes(self.image_root(), paths)
        return FileImages(paths, self.hparams.image_size, self.hparams.channels, targets, classes)

    def fingerprint(self) -> str:
        return stat_fingerprint(self.image_root(), self.paths())


def folder_classes(root: Path, paths: list[Path]) -> tuple[torch.Tensor | None, list[str] | None]:
    """Labels from the first sub-folder under `root` (torchvision ImageFolder's convention:
    classes are the sorted sub-folder names); (None, None) when any image lies in `root` itself."""
    tops = [p.relative_to(root).parts for p in paths]
    if any(len(parts) < 2 for parts in tops):
        return None, None
    classes = sorted({parts[0] for parts in tops})
    index = {name: i for i, name in enumerate(classes)}
    return torch.tensor([index[parts[0]] for parts in tops], dtype=torch.long), classes


CELEBA_SPLITS = {"train": 0, "valid": 1, "test": 2}


class CelebA(Folder):
    """CelebA's aligned faces: `<root>/celeba/img_align_celeba/*.jpg` (torchvision's layout),
    `<root>/img_align_celeba/`, or a folder of the images itself. `split` uses
    `list_eval_partition.txt` when it is there (train/valid/test), else every image."""

    def __init__(self, *args, split: str = "all", **kwargs):
        super().__init__(*args, **kwargs)
        self.hparams.split = choice("data.split", split, (*CELEBA_SPLITS, "all"))

    def image_root(self) -> Path:
        root = Path(self.hparams.root)
        for candidate in (root / "celeba" / "img_align_celeba", root / "img_align_celeba"):
            if candidate.is_dir():
                return candidate
        return root

    def build_dataset(self) -> FileImages:
        """Faces without class labels (the attribute files are not read)."""
        return FileImages(self.paths(), self.hparams.image_size, self.hparams.channels)

    def paths(self) -> list[Path]:
        paths = super().paths()
        if self.hparams.split == "all":
            return paths
        partition = self.image_root().parent / "list_eval_partition.txt"
        if not partition.is_file():
            raise ConfigError(
                "data.split", self.hparams.split, f"needs {partition} (or use data.split=all)"
            )
        wanted = str(CELEBA_SPLITS[self.hparams.split])
        names = {
            line.split()[0]
            for line in partition.read_text().splitlines()
            if len(line.split()) == 2 and line.split()[1] == wanted
        }
        self._paths = [p for p in paths if p.name in names]
        return self._paths
