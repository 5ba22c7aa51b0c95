"""The run directory a training run owns (Hydra gap: nothing stops a second run from writing
into a directory in use, and Hydra writes `.hydra/` before the job starts): locked while in
use, its `.hydra/` files written once the lock is held, debris of killed writers cleared."""

import fcntl
import os
from pathlib import Path
from typing import IO

from omegaconf import DictConfig, OmegaConf

from src.errors import ConfigError
from src.utils.checkpoint import remove_orphaned_temp_files


class RunDirectory:
    """`with RunDirectory(path, cfg):` an OS file lock (flock, released with a killed
    process) on `<path>/.lock`; a second run into the directory is refused in one line."""

    def __init__(self, path: str | os.PathLike, cfg: DictConfig | None = None):
        self.path, self.cfg = Path(path), cfg
        self.file: IO[str] | None = None

    def __enter__(self) -> "RunDirectory":
        if any(os.environ.get(v, "0") != "0" for v in ("RANK", "LOCAL_RANK", "NODE_RANK")):
            return self  # a rank the launching process started: it shares the directory
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path / ".lock", "a+")  # noqa: SIM115 (held for the run)
        except OSError as error:
            raise ConfigError("hydra.run.dir", str(self.path), f"not writable ({error})") from None
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            owner = self.file.read().strip() or "?"
            self.file.close()
            raise ConfigError(
                "hydra.run.dir", str(self.path),
                f"in use by another run (pid {owner}); wait for it or choose another directory",
            ) from None  # fmt: skip
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"{os.getpid()}\n")
        self.file.flush()
        self.write_hydra_files()
        remove_orphaned_temp_files(self.path / "checkpoints")
        return self

    def write_hydra_files(self) -> None:
        """`.hydra/{config,overrides,hydra}.yaml`, an earlier launch's in `.hydra/launch_<n>/`
        (Hydra's own copy is off: it would overwrite a running run's before the lock refuses)."""
        if self.cfg is None:
            return
        from hydra.core.hydra_config import HydraConfig

        folder = self.path / ".hydra"
        folder.mkdir(exist_ok=True)
        if (folder / "config.yaml").exists():  # an earlier launch (a resume): keep its files
            earlier = folder / f"launch_{len(list(folder.glob('launch_*'))) + 1}"
            earlier.mkdir()
            for name in ("config.yaml", "overrides.yaml", "hydra.yaml"):
                if (folder / name).exists():
                    (folder / name).rename(earlier / name)
        OmegaConf.save(self.cfg, folder / "config.yaml")
        if HydraConfig.initialized():
            hydra_cfg = HydraConfig.get()
            OmegaConf.save(
                OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False),
                folder / "overrides.yaml",
            )
            OmegaConf.save({"hydra": hydra_cfg}, folder / "hydra.yaml")

    def __exit__(self, *exc_info: object) -> None:
        if self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()
            self.file = None
