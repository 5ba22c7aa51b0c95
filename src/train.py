"""Training entry point: `python -m src.train [overrides]` (see conf/train.yaml)."""

import warnings
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning import (
    Callback,
    LightningDataModule,
    LightningModule,
    Trainer,
    seed_everything,
)
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities import rank_zero_info


def instantiate_list(cfg: DictConfig | None) -> list[Any]:
    """Instantiates every entry with a `_target_` of a config group such as callbacks/logger."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(c) for c in cfg.values() if c and "_target_" in c]


def train(cfg: DictConfig) -> dict[str, Any]:
    """Seeds, builds data/model/callbacks/loggers/trainer from `cfg`, fits, returns metrics."""
    # The CSV logger writes metrics.csv into the run dir, which always holds .hydra/ already.
    warnings.filterwarnings(
        "ignore", message="Experiment logs directory .* exists and is not empty"
    )
    seed_everything(cfg.seed, workers=True)
    datamodule: LightningDataModule = hydra.utils.instantiate(cfg.data)
    model: LightningModule = hydra.utils.instantiate(cfg.model)
    model.config = OmegaConf.to_container(cfg, resolve=True)
    callbacks: list[Callback] = instantiate_list(cfg.get("callbacks"))
    loggers: list[Logger] = instantiate_list(cfg.get("logger"))
    trainer: Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    for logger in trainer.loggers:
        logger.log_hyperparams(model.config)
    rank_zero_info(f"Run directory: {cfg.paths.output_dir}")
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    return dict(trainer.callback_metrics)


def metric_value(metrics: dict[str, Any], name: str | None) -> float | None:
    """The sweep objective, as a float; None when no metric is configured."""
    if not name:
        return None
    if name not in metrics:
        logged = ", ".join(sorted(metrics))
        raise KeyError(f"optimized_metric={name!r} was not logged; logged metrics: {logged}")
    value = metrics[name]
    return float(value.item() if isinstance(value, torch.Tensor) else value)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    """Returns `optimized_metric` so Hydra sweepers (e.g. Optuna) can minimise it."""
    return metric_value(train(cfg), cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
