"""LSUN scenes from the official LMDB databases: `<root>/<class>_train_lmdb/` (data.mdb)."""

from pathlib import Path

import torch
from torch.utils.data import Dataset

from src.data.base import ImageSource, stat_fingerprint
from src.data.transforms import decode
from src.errors import ConfigError


class LMDBImages(Dataset):
    """Encoded images stored as the values of LMDB databases (one per class).

    Keys are read once at start-up; each worker opens its own read-only environment.
    """

    def __init__(self, databases: list[Path], size: int, channels: int):
        import lmdb

        self.databases, self.size, self.channels = databases, size, channels
        self.index: list[tuple[int, bytes]] = []
        for d, path in enumerate(databases):
            env = lmdb.open(str(path), readonly=True, lock=False, readahead=False)
            with env, env.begin() as txn:
                self.index.extend((d, key) for key in txn.cursor().iternext(values=False))
        self.envs: dict[int, object] = {}
        # the class of an image is its database (data.classes, in order)
        self.targets = torch.tensor([d for d, _ in self.index], dtype=torch.long)
        self.classes = [p.name.removesuffix("_lmdb").removesuffix("_train") for p in databases]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> torch.Tensor:
        import lmdb

        d, key = self.index[i]
        if d not in self.envs:  # opened lazily: LMDB handles must not cross fork()
            self.envs[d] = lmdb.open(
                str(self.databases[d]), readonly=True, lock=False, readahead=False, meminit=False
            )
        with self.envs[d].begin() as txn:
            return decode(txn.get(key), self.size, self.channels)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "envs": {}}


class LSUN(ImageSource):
    def __init__(self, *args, classes: list[str] | tuple[str, ...] = ("bedroom",), **kwargs):
        super().__init__(*args, **kwargs)
        if not classes:
            raise ConfigError("data.classes", classes, "allowed: a list of LSUN classes")
        self.hparams.classes = list(classes)

    def databases(self) -> list[Path]:
        root = Path(self.hparams.root)
        found = []
        for name in self.hparams.classes:
            path = root / (name if name.endswith("_lmdb") else f"{name}_train_lmdb")
            if not (path / "data.mdb").is_file():
                raise ConfigError(
                    "data.classes", list(self.hparams.classes),
                    f"no LMDB database {path} (expected <root>/<class>_train_lmdb/data.mdb)",
                )  # fmt: skip
            found.append(path)
        return found

    def build_dataset(self) -> LMDBImages:
        try:
            import lmdb  # noqa: F401
        except ImportError:
            raise ConfigError("data", "lsun", "needs the lmdb package: pip install lmdb") from None
        return LMDBImages(self.databases(), self.hparams.image_size, self.hparams.channels)

    def fingerprint(self) -> str:
        databases = self.databases()
        return stat_fingerprint(Path(self.hparams.root), [d / "data.mdb" for d in databases])
