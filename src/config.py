"""The types of the keys the entry points read themselves, and of the Trainer's, declared once:
dataclass schemas that `conf/train.yaml`, `generate.yaml` and `evaluate.yaml` extend, so Hydra
checks them when it composes the config and names the full key. Every other node is typed and
checked by the constructor its `_target_` names; Lightning checks its Trainer's values."""

import difflib
from dataclasses import dataclass, field, fields
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from src.errors import ConfigError


@dataclass
class Paths:
    output_dir: str | None = "${hydra:runtime.output_dir}"


@dataclass
class TrainerSchema:
    """The Trainer keys the configs set (Lightning's names; `+trainer.<key>` adds another)."""

    _target_: str = "pytorch_lightning.Trainer"
    default_root_dir: str | None = None
    accelerator: str = "auto"
    devices: Any = 1  # a count, a list of device indices, or auto
    num_nodes: int = 1
    strategy: Any = "auto"
    precision: Any = "32-true"
    sync_batchnorm: bool = False
    benchmark: bool | None = None
    max_epochs: int = -1
    max_steps: int = -1
    max_time: Any = None
    log_every_n_steps: int = 50
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    check_val_every_n_epoch: int | None = 1
    num_sanity_val_steps: int = 2
    overfit_batches: Any = 0.0
    deterministic: Any = None
    enable_model_summary: bool = True
    plugins: Any = None
    profiler: Any = None


@dataclass
class ModelCheckpointSchema:
    """`callbacks.model_checkpoint` (conf/callbacks/default.yaml extends it): Lightning's
    ModelCheckpoint, which compares these values without checking their types."""

    _target_: str = "src.callbacks.checkpoint.ModelCheckpoint"
    dirpath: str | None = None
    filename: str | None = None
    monitor: str | None = None
    mode: str = "min"
    auto_insert_metric_name: bool = True
    save_last: bool | None = None
    save_top_k: int = 1
    every_n_epochs: int | None = None
    every_n_train_steps: int | None = None
    train_time_interval: Any = None  # {_target_: datetime.timedelta, minutes: 30}
    save_on_train_epoch_end: bool | None = None


@dataclass
class TrainConfig:
    """`python -m src.train`: its own keys; the groups' nodes are their constructors'."""

    data: Any = MISSING
    model: Any = MISSING
    optimizer: Any = MISSING
    trainer: TrainerSchema = field(default_factory=TrainerSchema)
    callbacks: Any = None
    logger: Any = None
    task_name: str = "train"
    tags: list[str] = field(default_factory=list)
    seed: int = 42
    ckpt_path: str | None = None
    # how a preset's published FID was measured (src.evaluate protocol=paper reads it)
    protocol: Any = None
    optimized_metric: str | None = None
    # packages outside src whose classes a checkpoint's stored config may name (resume)
    trust: list[str] = field(default_factory=list)
    paths: Paths = field(default_factory=Paths)


@dataclass
class FromCheckpoint:
    """What `src.generate` and `src.evaluate` share: a checkpoint, n samples, where to write."""

    ckpt_path: str = MISSING
    n: int = 64
    out: str | None = None
    seed: int = 0
    # packages outside src whose classes the checkpoint's config may name
    trust: list[str] = field(default_factory=list)


@dataclass
class GenerateConfig(FromCheckpoint):
    """`python -m src.generate`."""

    label: int | None = None
    nrow: int = 8
    interpolation_rows: int = 4
    interpolation_steps: int = 10


@dataclass
class EvaluateConfig(FromCheckpoint):
    """`python -m src.evaluate`."""

    n: int = 1000
    num_real: int = 1000
    data_root: str | None = None
    domain_epochs: int = 4
    cache_dir: str | None = None
    inception_weights: str | None = None
    inception_unverified: bool = False
    save_stats: str | None = None
    ref_stats: str | None = None
    protocol: str | None = None  # paper: the checkpoint preset's `protocol`
    ckpt_path: str | None = None  # or run_dir
    run_dir: str | None = None
    follow: bool = False


@dataclass
class PrepareConfig:
    """`python -m src.prepare`."""

    data: Any = MISSING
    out: str = MISSING
    workers: int = 2
    chunk_bytes: str = "64MB"
    overwrite: bool = False
    storage_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0


# `${max:4,${model.d_steps_per_g_step}}` (conf/debug): a smoke run that steps G too
OmegaConf.register_new_resolver("max", lambda *values: max(values), replace=True)
# `${flat:...}` (conf/hydra): override_dirname keeps the `/` of model/loss=hinge (a subfolder)
OmegaConf.register_new_resolver("flat", lambda name: str(name).replace("/", "_"), replace=True)

for name, schema in (("train", TrainConfig), ("generate", GenerateConfig),
                     ("evaluate", EvaluateConfig), ("prepare", PrepareConfig)):  # fmt: skip
    ConfigStore.instance().store(name=f"{name}_schema", node=schema)
ConfigStore.instance().store(group="schema", name="model_checkpoint", node=ModelCheckpointSchema)


def check_keys(cfg: DictConfig, schema: type) -> None:
    """A key added at the top (`+key=...`) that the entry point never reads: one line, with the
    nearest keys it does read (Hydra adds it past the schema; nothing else would say so)."""
    known = [f.name for f in fields(schema)]
    for key in cfg:
        if key not in known and key != "hydra":
            near = difflib.get_close_matches(str(key), known, n=3, cutoff=0.6)
            hint = f"did you mean {', '.join(near)}?" if near else f"keys: {', '.join(known)}"
            raise ConfigError(str(key), cfg.get(key), f"nothing reads this key; {hint}")
