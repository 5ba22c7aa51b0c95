"""Training entry point: `python -m src.train [overrides]` (see conf/train.yaml).

Lightning and W&B are imported only after the config has been validated, so a mistake is
reported within the time it takes to import torch.
"""

import os
import re
import signal
from pathlib import Path
from typing import Any

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from src.utils.checkpoint import resolve_ckpt_path
from src.utils.cli import one_line_errors
from src.utils.errors import ConfigError, Interrupted
from src.utils.rundir import RunDirectory
from src.utils.validation import planned_world_size, validate

DATA_PARALLEL = ("auto", "ddp", "gan_ddp")


def choose_strategy(trainer_cfg: DictConfig) -> Any:
    """More than one process: our DDP for the two-optimizer step (src/utils/distributed.py).

    `auto` and `ddp` mean "data parallel" to a user; plain DistributedDataParallel cannot run
    the alternating D/G updates, so both map to gan_ddp. Any other strategy is passed on.
    """
    strategy = trainer_cfg.get("strategy", "auto")
    if strategy in DATA_PARALLEL and planned_world_size(trainer_cfg) > 1:
        return "gan_ddp"
    return strategy


def instantiate(cfg: DictConfig, **kwargs: Any) -> Any:
    """hydra.utils.instantiate with plain containers as arguments (so checkpoints hold no
    OmegaConf objects); a constructor's ConfigError is re-raised as itself, and arguments
    the constructor does not take are a config error too."""
    try:
        return hydra.utils.instantiate(cfg, _convert_="all", **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        while cause is not None and not isinstance(cause, ConfigError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        if missing := re.search(r"Error locating target '([^']+)'", str(error)):
            raise ConfigError("_target_", missing[1], "no such class or function") from None
        if isinstance(error.__cause__, TypeError):
            target = cfg.get("_target_", "?")
            raise ConfigError(f"{target}", "arguments", str(error.__cause__)) from None
        raise


def instantiate_list(cfg: DictConfig | None) -> list[Any]:
    """Instantiates every entry with a `_target_` of a config group such as callbacks/logger."""
    if not cfg:
        return []
    return [instantiate(c) for c in cfg.values() if c and "_target_" in c]


def train(cfg: DictConfig) -> dict[str, Any]:
    """Validates, seeds, builds data/model/callbacks/loggers/trainer, fits, returns metrics.

    Raises ConfigError for a user mistake (before any heavy work), DivergenceError when the
    losses stay non-finite and Interrupted after SIGINT/SIGTERM.
    """
    validate(cfg)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), cfg.paths.output_dir)
    with RunDirectory(cfg.paths.output_dir, cfg):
        return fit(cfg, ckpt_path)


def fit(cfg: DictConfig, ckpt_path: str | None) -> dict[str, Any]:
    from pytorch_lightning import Trainer, seed_everything
    from pytorch_lightning.utilities import rank_zero_info
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    from src.utils.loggers import ensure_loggers_start, finish_loggers

    seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    model.config = OmegaConf.to_container(cfg, resolve=True)
    callbacks = instantiate_list(cfg.get("callbacks"))
    loggers = ensure_loggers_start(instantiate_list(cfg.get("logger")))
    strategy = choose_strategy(cfg.trainer)
    distributed = None
    if strategy == "gan_ddp":
        from src.utils import distributed  # registers gan_ddp with Lightning

        distributed.relaunch_as_single_run()
    trainer: Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers, strategy=strategy
    )
    rank_zero_info(
        f"Effective batch: {cfg.data.batch_size} per device x {trainer.num_devices} device(s) "
        f"x {trainer.num_nodes} node(s) = "
        f"{cfg.data.batch_size * trainer.num_devices * trainer.num_nodes} "
        f"(optimizer.scale_lr={cfg.optimizer.get('scale_lr', 'none')})"
    )
    for logger in trainer.loggers:
        logger.log_hyperparams(model.config)
    rank_zero_info(f"Run directory: {cfg.paths.output_dir}")
    if cfg.get("ckpt_path") == "auto":
        found = f"resuming from {ckpt_path}" if ckpt_path else "no checkpoint yet, fresh start"
        rank_zero_info(f"ckpt_path=auto: {found}")
    environment = dict(os.environ)
    failed = True
    try:
        # weights_only: a checkpoint is data, never code (a pickle payload is refused).
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        failed = False
    except SIGTERMException:
        raise Interrupted(interrupted_message("SIGTERM", cfg), 128 + signal.SIGTERM) from None
    except SystemExit:
        if trainer.interrupted:  # Lightning turns Ctrl-C into a graceful stop + exit(1)
            raise Interrupted(interrupted_message("SIGINT", cfg), 128 + signal.SIGINT) from None
        raise
    finally:
        finish_loggers(trainer.loggers, failed)
        if distributed is not None:
            distributed.end_distributed(environment)
    return dict(trainer.callback_metrics)


def interrupted_message(signal_name: str, cfg: DictConfig) -> str:
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    saved = f"{last} holds the last completed epoch" if last.is_file() else "no epoch completed"
    return (
        f"stopped by {signal_name}; {saved}; continue with ckpt_path=auto "
        f"hydra.run.dir={cfg.paths.output_dir}"
    )


def compose_config(
    overrides: list[str] | None = None, output_dir: str = "outputs/api"
) -> DictConfig:
    """The run config `python -m src.train <overrides>` would use, for the Python API
    (notebooks, scripts): `train(compose_config(["trainer.max_epochs=5"], "outputs/nb"))`."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(str(conf), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides or []), return_hydra_config=True)
    output_dir = str(Path(output_dir).resolve())
    with open_dict(cfg):
        cfg.paths.output_dir = output_dir
        cfg.hydra.runtime.output_dir = output_dir
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # as in a real run: the job's config has no `hydra` node
    return cfg


def metric_value(metrics: dict[str, Any], name: str | None) -> float | None:
    """The sweep objective, as a float; None when no metric is configured."""
    if not name:
        return None
    if name not in metrics:
        logged = ", ".join(sorted(metrics))
        raise ConfigError("optimized_metric", name, f"not logged; logged metrics: {logged}")
    value = metrics[name]
    return float(value.item() if hasattr(value, "item") else value)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train.yaml")
@one_line_errors
def main(cfg: DictConfig) -> float | None:
    """Returns `optimized_metric` so Hydra sweepers (e.g. Optuna) can minimise it.

    A user mistake ends the run with one line on stderr and exit status 2; divergence with
    status 3 (src/utils/cli.py). No traceback for either.
    """
    return metric_value(train(cfg), cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
