"""`data=streaming data.root=<folder or s3://bucket/prefix>`: shards written by `python -m
src.prepare`, read with litdata's `StreamingDataset` / `StreamingDataLoader`.

litdata shuffles (by data.seed and the epoch), splits the shards across DDP ranks and nodes,
downloads remote chunks ahead into a local cache (`data.cache_dir`; by default inside the
run) and keeps its position in the checkpoint (the loader's `state_dict`), so a run stopped
mid-epoch continues with the next unseen batch. The manifest beside the shards gives the
class names, the labels (for conditional models and the metrics' class balance) and the shape
the shards were written at; images are fitted to data.image_size / data.channels when those
differ, as every dataset's are.
"""

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset

from src.data.base import ImageSource, cache_dir
from src.data.folder import UNREADABLE
from src.data.transforms import fit_images, fit_pil
from src.errors import ConfigError

log = logging.getLogger(__name__)
logging.getLogger("litdata").setLevel(logging.WARNING)  # its per-dataset cache-size notes

MANIFEST, LABELS = "manifest.json", "labels.pt"
FORMAT = "convgan-shards/1"


def allow_plain_http(storage_options: dict[str, Any] | None = None) -> None:
    """A plain-HTTP endpoint (a local MinIO or moto server): object_store's AWS_ALLOW_HTTP,
    set for an http:// endpoint_url (worker processes inherit it), passed into litdata's
    obstore client options, which litdata builds without reading it (0.2.76)."""
    endpoint = (storage_options or {}).get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL")
    if str(endpoint or "").startswith("http://"):
        os.environ.setdefault("AWS_ALLOW_HTTP", "true")
    if os.environ.get("AWS_ALLOW_HTTP", "").lower() in ("1", "true"):
        from litdata.streaming import downloader

        options = getattr(downloader, "_OBSTORE_CLIENT_OPTIONS", None)
        if isinstance(options, dict):
            downloader._OBSTORE_CLIENT_OPTIONS = {**options, "allow_http": True}


def is_remote(root: str) -> bool:
    return "://" in root and not root.startswith("local:")


def fetch_file(root: str, name: str, into: Path, storage_options: dict[str, Any]) -> Path:
    """`root/name` as a local file (downloaded into `into` when `root` is remote)."""
    if not is_remote(root):
        return Path(root.removeprefix("local:")) / name
    from litdata.streaming.fs_provider import _get_fs_provider

    into.mkdir(parents=True, exist_ok=True)
    local = into / name
    url = f"{root.rstrip('/')}/{name}"
    try:
        _get_fs_provider(url, storage_options).download_file(url, str(local))
    except Exception as error:  # no such bucket/key, no endpoint, no credentials
        reason = " ".join(str(error).split())[:160]
        raise ConfigError("data.root", root, f"cannot read {name} there ({reason})") from None
    return local


def read_manifest(root: str, into: Path, storage_options: dict[str, Any]) -> dict[str, Any]:
    path = fetch_file(root, MANIFEST, into, storage_options)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(
            "data.root", root, f"no shards written by src.prepare there (no readable "
            f"{MANIFEST}): python -m src.prepare data=<name> out=<it>",
        )  # fmt: skip
    return manifest


class Sample:
    """litdata's item (a dict) as the tensors training reads: a uint8 (C, H, W) image fitted
    to the run's size and channels, with its label when the model is conditional."""

    def __init__(self, size: int, channels: int, labels: bool):
        self.size, self.channels, self.labels = size, channels, labels

    def image(self, item: dict[str, Any]) -> torch.Tensor:
        image = torch.as_tensor(item["image"])
        if tuple(image.shape) != (self.channels, self.size, self.size):
            image = fit_images(image[None], self.size, self.channels)[0]
        return image

    def __call__(self, item: dict[str, Any]) -> Any:
        image = self.image(item)
        return (image, torch.tensor(int(item["label"]))) if self.labels else image


class Shards(Dataset):
    """Random access to the shards (the metrics' reference images, an overfit batch): uint8
    images by index, with `targets` and `classes` from the manifest."""

    def __init__(self, dataset: Any, sample: Sample, targets: torch.Tensor | None, classes: Any):
        self.dataset, self.sample = dataset, sample
        self.targets, self.classes = targets, classes

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.sample.image(self.dataset[int(index)])


def shard_loader_class() -> type:
    from litdata import StreamingDataLoader

    class ShardLoader(StreamingDataLoader):
        """litdata's loader, whose restored position is used by the first epoch after a
        resume only. litdata clears it when an iterator runs out, but Lightning stops at the
        epoch's last batch by count (or at limit_train_batches) without exhausting it: the
        next epoch would replay the restored position."""

        restored_unused = False

        def load_state_dict(self, obj: dict[str, Any]) -> None:
            super().load_state_dict(obj)
            self.restored_unused = True

        def __iter__(self) -> Any:
            if self.restore and not self.restored_unused:
                self.restore = False  # a new epoch, not the resumed one
            self.restored_unused = False
            return super().__iter__()

    return ShardLoader


class Streaming(ImageSource):
    """Shards by `src.prepare` (a local folder, `local:<shared folder>` or `s3://...`);
    `storage_options`: litdata's (e.g. {endpoint_url: http://127.0.0.1:9000} for an
    S3-compatible server; boto3's AWS_* variables work too)."""

    def __init__(self, *args: Any, storage_options: dict[str, Any] | None = None, **kwargs: Any):
        root = kwargs.get("root")
        if not isinstance(root, str) or not root:
            raise ConfigError("data.root", root, "the shards' folder or s3:// URI "
                              "(python -m src.prepare ... out=<it>)")  # fmt: skip
        remote = is_remote(root)
        if remote:  # not a local directory: the base class checks local ones only
            kwargs["root"] = None
        super().__init__(*args, **kwargs)
        if remote:
            self.hparams.root = root
        self.hparams.storage_options = dict(storage_options or {})
        allow_plain_http(self.hparams.storage_options)
        # conf/data/streaming.yaml: inside the run; through the Python API: the user's cache
        key = hashlib.sha1(root.encode()).hexdigest()[:12]
        self.cache = cache_dir(self.hparams.cache_dir, None) / (
            "" if self.hparams.cache_dir else f"shards/{key}")  # fmt: skip
        self.manifest = read_manifest(root, self.cache / "manifest", self.hparams.storage_options)
        shape = (self.manifest["channels"], self.manifest["image_size"])
        if shape != (self.hparams.channels, self.hparams.image_size):
            log.info("The shards are %d px with %d channel(s): fitted to data.image_size=%d, "
                     "data.channels=%d per image (src.prepare at those skips it)", shape[1],
                     shape[0], self.hparams.image_size, self.hparams.channels)  # fmt: skip

    @property
    def is_resident(self) -> bool:
        return False  # streamed: the point of shards

    def streaming_dataset(self, shuffle: bool) -> Any:
        from litdata import StreamingDataset

        h = self.hparams
        root = h.root if is_remote(h.root) else str(Path(h.root.removeprefix("local:")))
        try:
            return StreamingDataset(
                root, cache_dir=str(self.cache / "chunks") if is_remote(h.root) else None,
                shuffle=shuffle, drop_last=True, seed=h.seed,
                storage_options=h.storage_options,
                transform=Sample(h.image_size, h.channels, h.labels) if shuffle else None,
            )  # fmt: skip
        except (ValueError, FileNotFoundError, OSError) as error:
            reason = " ".join(str(error).split())[:160]
            raise ConfigError(
                "data.root", h.root, f"litdata cannot read the shards ({reason})"
            ) from None

    def build_dataset(self) -> Dataset:
        classes = self.manifest.get("classes")
        targets = None
        if classes:
            path = fetch_file(self.hparams.root, LABELS, self.cache / "manifest",
                              self.hparams.storage_options)  # fmt: skip
            targets = torch.load(path, weights_only=True)
        sample = Sample(self.hparams.image_size, self.hparams.channels, False)
        return Shards(self.streaming_dataset(shuffle=False), sample, targets, classes)

    def train_loader(
        self, rank: int = 0, world_size: int = 1, device: torch.device | None = None,
        epoch: Any = None, overfit: bool = False,
    ) -> Any:  # fmt: skip
        """litdata's loader: it shards by rank itself (torch.distributed's), shuffles by the
        epoch it counts, and its `state_dict` is the position Lightning checkpoints."""
        if overfit:
            return super().train_loader(rank, world_size, device, epoch, overfit)
        self.setup("fit")
        h = self.hparams
        return shard_loader_class()(
            self.streaming_dataset(shuffle=True), batch_size=h.batch_size,
            num_workers=h.num_workers, pin_memory=device is not None and device.type == "cuda",
            persistent_workers=False, drop_last=True,
            # its own generator: starting an epoch never draws from the global RNG that the
            # training noise comes from (a resume starts one more epoch iterator)
            generator=torch.Generator().manual_seed(h.seed),
        )  # fmt: skip


# --- writing (src.prepare): in a module, so litdata's worker processes can unpickle it
class Item:
    """litdata's `fn`: input index -> {image: uint8 (C, H, W), label}, or None (skipped) for
    an unreadable file, whose name goes into `skipped/` (one file per worker process)."""

    def __init__(self, dataset: Any, targets: torch.Tensor | None, skipped: Path):
        self.dataset, self.targets, self.skipped = dataset, targets, skipped

    def __call__(self, index: int) -> dict[str, Any] | None:
        paths = getattr(self.dataset, "paths", None)
        try:
            if paths is not None:  # a file: read it itself (the dataset would replace it)
                with Image.open(paths[index]) as image:
                    picture = fit_pil(image, self.dataset.size, self.dataset.channels)
            else:
                picture = self.dataset[index]
        except UNREADABLE as error:
            with open(self.skipped / f"{os.getpid()}.txt", "a") as file:
                file.write(f"{index}\t{paths[index] if paths else index}\t{error}\n")
            return None
        label = int(self.targets[index]) if self.targets is not None else -1
        return {"image": picture.numpy(), "label": label}


def skipped_items(folder: Path) -> list[tuple[int, str]]:
    rows = [line.split("\t") for f in folder.glob("*.txt") for line in f.read_text().splitlines()]
    return sorted((int(row[0]), row[1]) for row in rows)


allow_plain_http()  # in litdata's worker processes too (they import this module)
