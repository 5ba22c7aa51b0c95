"""Training entry point: `python -m src.train [overrides]` (see conf/train.yaml).

Config -> start-up checks -> run directory -> objects (data, model, callbacks, loggers,
trainer) -> `Trainer.fit`. Lightning and W&B are imported only after the checks.
"""

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from src.cli import check_overrides, one_line_errors, quiet_known_warnings
from src.config import validate
from src.errors import ConfigError
from src.utils.checkpoint import resolve_ckpt_path
from src.utils.instantiators import instantiate, instantiate_list
from src.utils.rundir import RunDirectory


def train(cfg: DictConfig) -> dict[str, Any]:
    """Checks, builds and fits; returns the trainer's metrics. Raises ConfigError for a user
    mistake, DivergenceError when the losses stay non-finite, Interrupted after a signal."""
    quiet_known_warnings()  # as quiet through the Python API (notebooks) as on the command line
    validate(cfg)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), cfg.paths.output_dir)
    with RunDirectory(cfg.paths.output_dir, cfg):
        return fit(cfg, ckpt_path)


def fit(cfg: DictConfig, ckpt_path: str | None) -> dict[str, Any]:
    from pytorch_lightning import seed_everything
    from pytorch_lightning.utilities import rank_zero_info

    from src.cli import signals_as_exit_status
    from src.utils import distributed
    from src.utils.loggers import ensure_loggers_start, finished

    seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    class_names = datamodule.class_names() if cfg.model.get("conditional") else None
    if class_names:  # G and D of a conditional model get the data's number of classes
        with open_dict(cfg):
            for net in ("generator", "discriminator"):
                cfg.model[net].num_classes = len(class_names)
    model = instantiate(cfg.model)
    model.config = OmegaConf.to_container(cfg, resolve=True)
    model.class_names = class_names
    callbacks = instantiate_list(cfg.get("callbacks"))
    loggers: list = []  # started once the Trainer has checked its keys (W&B takes seconds)
    with finished(loggers), distributed.processes_for_this_job():
        trainer = build_trainer(cfg.trainer, callbacks, instantiate_list(cfg.get("logger")))
        trainer.loggers = loggers[:] = ensure_loggers_start(trainer.loggers)
        devices = trainer.num_devices * trainer.num_nodes
        rank_zero_info(
            f"Run directory: {cfg.paths.output_dir}; effective batch {cfg.data.batch_size} x "
            f"{devices} device(s) = {cfg.data.batch_size * devices} "
            f"(optimizer.scale_lr={cfg.optimizer.get('scale_lr', 'none')}); parameters: G "
            f"{count(model.generator):,}, D {count(model.discriminator):,}"
        )
        if cfg.get("ckpt_path") == "auto":
            found = f"resuming from {ckpt_path}" if ckpt_path else "no checkpoint yet, fresh start"
            rank_zero_info(f"ckpt_path=auto: {found}")
        for logger in trainer.loggers:
            logger.log_hyperparams(model.config)
        with signals_as_exit_status(trainer, cfg.paths.output_dir):
            # weights_only: a checkpoint is data, never code (a pickle payload is refused).
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    return dict(trainer.callback_metrics)


def count(net: Any) -> int:
    return sum(p.numel() for p in net.parameters())


def build_trainer(cfg: DictConfig, callbacks: list, loggers: list) -> Any:
    """The Trainer; with several processes our `gan_ddp` (plain DDP cannot run the alternating
    updates) wherever the strategy is `auto` or `ddp`. Lightning checks its own keys."""
    trainer = instantiate(cfg, callbacks=callbacks, logger=loggers)
    data_parallel = cfg.get("strategy", "auto") in ("auto", "ddp")
    if data_parallel and trainer.world_size > 1:
        trainer = instantiate(cfg, callbacks=callbacks, logger=loggers, strategy="gan_ddp")
    return trainer


def compose_config(
    overrides: list[str] | None = None, output_dir: str = "outputs/api"
) -> DictConfig:
    """The run config `python -m src.train <overrides>` would use, for the Python API
    (notebooks, scripts): `train(compose_config(["trainer.max_epochs=5"], "outputs/nb"))`."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

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
    """Returns `optimized_metric` so Hydra sweepers (e.g. Optuna) can minimise it; a user
    mistake ends with one line and exit status 2, divergence with 3 (src/cli.py)."""
    return metric_value(train(cfg), cfg.get("optimized_metric"))


if __name__ == "__main__":
    check_overrides("train")
    main()
