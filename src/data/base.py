"""The images every dataset shares (`ImageSource`, the `data` node): its keys, the dataset,
labels and class names, the validation reference set, the metrics it is judged by, and a
resident fast path and a streaming path for its batches. Without Lightning, so a mistake in
the data keys is said before Lightning is imported; `src.data.module.ImageDataModule` hands
it to Lightning.

Datasets yield uint8 CHW tensors already at (channels, image_size, image_size); batches are
turned into floats in [-1, 1] on the training device.

- resident: the whole dataset decoded once into one uint8 tensor (cached on disk, keyed by
  content), kept on the training device; each step slices a batch by index, the epoch's
  order copied to the device once per epoch. No per-sample Python work, no worker processes
  and no host-to-device copy per batch.
- streaming: a DataLoader with workers, pinned memory and persistent workers for data
  too large to hold (CelebA, LSUN, big folders).

Both draw the same epoch-seeded order (`sampling.EpochSampler`), so they deliver exactly the
same batches for a given seed and epoch, and under DDP each rank gets a disjoint shard.
"""

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from src.data.sampling import ContiguousBatches, EpochSampler, ResumableLoader
from src.data.transforms import fit_images
from src.errors import ConfigError, choice, integer, number
from src.utils.checkpoint import atomic_write

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when decoding changes, so old caches are not reused
STREAMING_POOL = 20_000
VAL_BATCH = 500


class UInt8Images(Dataset):
    """uint8 (N, C, H, W) images (fitted to `size` when fetched, if given) with `targets` and
    `classes`; an index tensor or list fetches a whole batch in one vectorised call."""

    def __init__(
        self,
        images: torch.Tensor,
        size: int | None = None,
        channels: int = 1,
        targets: torch.Tensor | None = None,
        classes: list[str] | None = None,
    ):
        self.images, self.size, self.channels = images, size, channels
        self.targets, self.classes = targets, classes

    def __len__(self) -> int:
        return len(self.images)

    def fit(self, images: torch.Tensor) -> torch.Tensor:
        return images if self.size is None else fit_images(images, self.size, self.channels)

    def __getitem__(self, index: int | torch.Tensor) -> torch.Tensor:
        if isinstance(index, torch.Tensor):
            return self.fit(self.images[index.to(self.images.device)])
        return self.fit(self.images[index : index + 1])[0]

    def __getitems__(self, indices: list[int]) -> list[torch.Tensor]:
        return list(self.fit(self.images[indices]))


class WithLabels(Dataset):
    """(image, label) pairs from a dataset and its aligned `targets`, for conditional models;
    index tensors and `__getitems__` lists fetch whole batches as the dataset does."""

    def __init__(self, dataset: Dataset, targets: torch.Tensor):
        self.dataset, self.targets = dataset, targets

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(index, torch.Tensor):
            return self.dataset[index], self.targets[index.to(self.targets.device)]
        return self.dataset[index], self.targets[index]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        fetch = getattr(self.dataset, "__getitems__", None)
        images = fetch(indices) if fetch else [self.dataset[i] for i in indices]
        return list(zip(images, self.targets[indices], strict=True))


class ReferenceImages(Dataset):
    """(uint8 images, labels or None, positions) of a datamodule's images at `indices`, fetched
    a batch of positions at a time."""

    def __init__(self, datamodule: "ImageSource", indices: torch.Tensor):
        self.datamodule, self.indices = datamodule, indices
        self.targets = datamodule.targets()

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, positions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        indices = self.indices[positions]
        labels = self.targets[indices] if self.targets is not None else None
        return self.datamodule.fetch(indices), labels, positions


LABELLED = (
    "labelled data: digits, mnist/fashion_mnist (with their *-labels-idx1-ubyte files), "
    "cifar10, lsun with several classes, a folder with one sub-folder per class"
)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], on whatever device the batch is."""
    return images.float().div_(127.5).sub_(1.0)


def stack_dataset(dataset: Dataset, num_workers: int = 0) -> torch.Tensor:
    """Decodes every item of `dataset` once (in order) into one uint8 tensor."""
    loader = DataLoader(dataset, batch_size=256, num_workers=num_workers)
    return torch.cat(list(loader)) if len(dataset) else torch.empty(0, dtype=torch.uint8)


RESIDENT_CHOICES = ("auto", True, False)


class ImageSource:
    """Subclasses implement `build_dataset` (and `fingerprint` to cache the resident tensor);
    their own keys go into `self.hparams` beside these."""

    SHAPE = ("image_size", "channels")  # what G and D are built for

    def __init__(
        self,
        root: str | None = None,
        download: bool = False,
        image_size: int = 32,
        channels: int = 1,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        resident: str | bool = "auto",
        resident_max_gb: float = 4.0,
        cache_dir: str | None = None,
        labels: bool = False,
        val_size: int = 1000,
    ):
        """`labels`: batches are (images, labels) pairs (for a conditional model; the
        dataset must have class labels). `val_size`: reference images of the validation
        metrics (as many samples are generated)."""
        choice("data.channels", channels, (1, 3))
        integer("data.batch_size", batch_size)
        cpus = os.cpu_count() or 1  # loader processes beyond a few per CPU only fill memory
        integer("data.num_workers", num_workers, low=0, high=4 * cpus)
        integer("data.val_size", val_size, low=2)
        number("data.resident_max_gb", resident_max_gb)
        choice("data.resident", resident, RESIDENT_CHOICES)
        root = os.path.expanduser(root) if isinstance(root, str) else root  # as a shell would
        cache_dir = os.path.expanduser(cache_dir) if isinstance(cache_dir, str) else cache_dir
        if root is not None and not download and not Path(root).is_dir():
            raise ConfigError(
                "data.root", root,
                "no such directory (point it at the dataset, or data.download=true with a "
                "network)",
            )  # fmt: skip
        self.hparams = SimpleNamespace(
            root=root, download=download, image_size=image_size, channels=channels,
            batch_size=batch_size, num_workers=num_workers, seed=seed, resident=resident,
            resident_max_gb=resident_max_gb, cache_dir=cache_dir, labels=labels,
            val_size=val_size,
        )  # fmt: skip
        self.dataset: Dataset | None = None
        self.images: torch.Tensor | None = None  # the resident tensor, when resident

    # --- what a dataset provides -------------------------------------------------------
    def build_dataset(self) -> Dataset:
        """The streaming dataset: uint8 (channels, image_size, image_size) tensors."""
        raise NotImplementedError

    def fingerprint(self) -> str | None:
        """A key that changes when the data on disk changes (None: do not cache on disk)."""
        return None

    def targets(self) -> torch.Tensor | None:
        """Class labels (int64) aligned with the dataset, when the format has them."""
        self.setup("fit")
        return getattr(self.dataset, "targets", None)

    @property
    def num_classes(self) -> int:
        """The dataset's number of classes (0 when it has no labels)."""
        names = getattr(self.dataset, "classes", None) if self.targets() is not None else None
        return len(names or [])

    def class_names(self) -> list[str]:
        """The names of the dataset's classes, index = label; a ConfigError when it has none
        (a conditional model needs them)."""
        self.setup("fit")
        targets, names = self.targets(), getattr(self.dataset, "classes", None)
        if targets is None or not names or len(names) < 2:
            found = "one class" if names and len(names) == 1 else "no class labels"
            raise ConfigError(
                "model.conditional", True, f"{type(self).__name__} has {found} here; "
                f"a conditional model needs {LABELLED}",
            )  # fmt: skip
        return list(names)

    def metric_pool(self) -> torch.Tensor:
        """Dataset indices of the images quality metrics draw on: every image when resident,
        else a fixed random `STREAMING_POOL` (enough to train the extractor and to compare)."""
        self.setup("fit")
        n, seeded = len(self.dataset), torch.Generator().manual_seed(0)
        return (
            torch.arange(n)
            if self.images is not None
            else torch.randperm(n, generator=seeded)[:STREAMING_POOL]
        )

    def evaluation_split(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The pool in a fixed random order, split into the `n` reference images the samples
        are compared with and the rest (held out: the real-vs-real floor)."""
        pool = self.metric_pool()
        order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(0))
        return pool[order[:n]], pool[order[n:]]

    def fetch(self, indices: torch.Tensor) -> torch.Tensor:
        """uint8 images of the dataset at `indices`, on the CPU."""
        self.setup("fit")
        if self.images is not None:
            return self.images[indices.to(self.images.device)].cpu()
        if not len(indices):
            return torch.empty(0, self.hparams.channels, *[self.hparams.image_size] * 2).byte()
        return torch.stack([self.dataset[int(i)] for i in indices])

    def prepare(self) -> None:
        """Downloads what `data.download=true` asks for (once, on one process)."""

    def download(self, fetch: Callable[[], object]) -> None:
        """Runs a torchvision download (data.download=true); a failure is one clear line."""
        try:
            fetch()
        except Exception as error:  # no network, server down, disk full, ...
            reason = " ".join(str(error).split())[:160]
            raise ConfigError(
                "data.download", True,
                f"the download failed ({type(error).__name__}: {reason}); "
                "put the files under data.root yourself",
            ) from None  # fmt: skip

    # --- the metrics this data is judged by ---------------------------------------------
    def metric_source(self) -> "ImageSource":
        """The data the domain feature extractor is trained on: these images."""
        return self

    def quality_metrics(self, domain: Any, conditional: bool) -> Any:
        """The validation metrics (a torchmetrics MetricCollection) on features of `domain`, the
        extractor trained on `metric_source()` (src/metrics)."""
        from src.metrics.domain import DomainFeatures
        from src.metrics.quality import quality_metrics

        return quality_metrics(DomainFeatures(domain.net), domain.labelled, conditional)

    # --- loading ------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.dataset is not None:
            return
        self.dataset = self.build_dataset()
        if len(self.dataset) == 0:
            raise ConfigError("data.root", self.hparams.root, "no images found there")
        targets, names = (
            getattr(self.dataset, "targets", None),
            getattr(self.dataset, "classes", None),
        )
        if targets is not None and names and len(targets):
            low, high = int(targets.min()), int(targets.max())
            if low < 0 or high >= len(names):  # read from a file: say which
                where = getattr(self.dataset, "label_file", self.hparams.root)
                raise ConfigError("data.root", str(where), f"labels {low}..{high} outside the "
                                  f"{len(names)} classes 0..{len(names) - 1}")  # fmt: skip
        if self.hparams.labels:
            self.class_names()  # refuses unlabelled data before any decoding
        if self.is_resident:
            self.images = self.load_resident()

    @property
    def is_resident(self) -> bool:
        """resident=auto holds the data when its uint8 tensor fits in `resident_max_gb`."""
        if self.hparams.resident != "auto":
            return bool(self.hparams.resident)
        h = self.hparams
        size = len(self.dataset) * h.channels * h.image_size**2
        return size <= h.resident_max_gb * 2**30

    def train_loader(
        self, rank: int = 0, world_size: int = 1, device: torch.device | None = None,
        epoch: Callable[[], int] | None = None, overfit: bool = False,
    ) -> DataLoader:  # fmt: skip
        """This rank's training batches; `epoch` reads the epoch being started (the sampler's
        order), `overfit`: epoch 0's first batches again and again (Lightning's overfit mode)."""
        h, device = self.hparams, device or torch.device("cpu")
        # The loader's own generator (its worker base seed), so creating an epoch's iterator
        # never draws from the global RNG that the training noise comes from.
        rng = torch.Generator().manual_seed(h.seed)
        if overfit:  # epoch 0's order, with the sequential sampler Lightning's overfit mode wants
            first = EpochSampler(len(self.dataset), h.batch_size, h.seed, rank, world_size)
            dataset = UInt8Images(self.images.to(device)) if self.images is not None else None
            subset = Subset(
                self.with_labels(dataset or self.dataset, device), first.indices().tolist()
            )
            return DataLoader(subset, batch_size=h.batch_size, drop_last=True, generator=rng)
        if self.images is not None:
            self.images = self.images.to(device)
            sampler = EpochSampler(
                len(self.images), h.batch_size, h.seed, rank, world_size, True, epoch, device
            )
            return ResumableLoader(
                self.with_labels(UInt8Images(self.images), device), batch_size=None,
                sampler=sampler, generator=rng,
            )  # fmt: skip
        sampler = EpochSampler(
            len(self.dataset), h.batch_size, h.seed, rank, world_size, epoch_source=epoch
        )
        return ResumableLoader(
            self.with_labels(self.dataset),
            batch_size=h.batch_size,
            sampler=sampler,
            drop_last=True,
            num_workers=h.num_workers,
            pin_memory=device.type == "cuda",
            persistent_workers=h.num_workers > 0,
            generator=rng,
        )  # worker seeds: Lightning's worker_init_fn, since seed_everything(workers=True)

    def val_loader(
        self, rank: int = 0, world_size: int = 1, device: torch.device | None = None
    ) -> DataLoader:
        """The reference images of the validation metrics (`val_size` of them, with their
        labels, if any, and their positions), each rank a contiguous slice: nothing padded."""
        reference, _ = self.evaluation_split(self.hparams.val_size)
        if self.images is not None and device is not None:
            self.images = self.images.to(device)
        return DataLoader(
            ReferenceImages(self, reference), batch_size=None, generator=torch.Generator(),
            sampler=ContiguousBatches(len(reference), VAL_BATCH, rank, world_size),
        )  # fmt: skip

    def with_labels(self, dataset: Dataset, device: torch.device | None = None) -> Dataset:
        """`dataset` as (image, label) pairs when the model is conditional, else as it is."""
        if not self.hparams.labels:
            return dataset
        return WithLabels(dataset, self.targets().to(device or "cpu"))

    # --- the resident tensor --------------------------------------------------------------
    def load_resident(self) -> torch.Tensor:
        """The decoded uint8 tensor, from the on-disk cache when its content key matches."""
        path = self.cache_path()
        if path is not None and path.exists():
            try:
                images = torch.load(path, map_location="cpu", weights_only=True)
                log.info("Resident data from cache %s", path)
                return images
            except Exception as error:  # a damaged cache is rebuilt, never trusted
                log.warning("Ignoring unreadable data cache %s (%s)", path, error)
        images = stack_dataset(self.dataset, self.hparams.num_workers)
        if path is not None:
            try:
                atomic_write(path, lambda file: torch.save(images, file))
            except OSError as error:
                if self.hparams.cache_dir:  # the user chose it: say so
                    raise ConfigError(
                        "data.cache_dir", self.hparams.cache_dir, f"not writable ({error.strerror})"
                    ) from None
                log.warning("Not caching the decoded data (%s: %s)", path, error.strerror)
        return images

    def cache_path(self) -> Path | None:
        key = self.fingerprint()
        if key is None:
            return None
        h = self.hparams
        digest = hashlib.sha1(
            f"{CACHE_VERSION}|{type(self).__name__}|{key}|{h.image_size}|{h.channels}".encode()
        ).hexdigest()[:16]
        name = f"{type(self).__name__.lower()}_{h.image_size}px_{h.channels}c_{digest}.pt"
        return cache_dir(h.cache_dir, h.root) / name


def cache_dir(configured: str | None, root: str | None) -> Path:
    """`data.cache_dir`, else the user's cache directory ($XDG_CACHE_HOME or ~/.cache), never
    inside the dataset unless asked (data.cache_dir=<root>/...)."""
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "convgan"


def content_hash(paths: list[Path]) -> str:
    """sha1 over the files' bytes: the resident cache is reused only for identical data."""
    digest = hashlib.sha1()
    for path in paths:
        with open(path, "rb") as file:
            while chunk := file.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()


def stat_fingerprint(root: Path, paths: list[Path]) -> str:
    """Relative path, size and modification time of every file (reading every byte of a big
    folder at each start would cost more than decoding it)."""
    digest = hashlib.sha1()
    for p in paths:
        stat = p.stat()
        digest.update(f"{p.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()
