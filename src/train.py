"""Training entry point: `python -m src.train [overrides]` (see conf/train.yaml).

Hydra composes the config (types checked against src/config.py's schema) -> the seed, the
data, G, D and their optimizers, built once before Lightning is imported (their constructors'
checks are said at once) -> the module, callbacks, loggers and Trainer -> `Trainer.fit`.
"""

import contextlib
import logging
import os
import random
import signal
import subprocess
import sys
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from src.cli import entry, one_line_errors, to_log_files
from src.config import TrainConfig, check_keys
from src.errors import ConfigError, EnvironmentFault, Interrupted, integer, number
from src.utils.instantiators import instantiate, instantiate_list
from src.utils.outputs import shown


def train(cfg: DictConfig) -> dict[str, Any]:
    """Builds and fits; returns the trainer's metrics. Raises ConfigError for a user mistake,
    DivergenceError when the losses stay non-finite, Interrupted after a signal."""
    quiet_known_warnings()  # as quiet through the Python API (notebooks) as on the command line
    check_keys(cfg, TrainConfig)
    shown = OmegaConf.to_yaml(cfg)
    to_log_files(f"The composed config:\n{shown}")  # always in the run's train.log
    if sys.stdout.isatty() and os.environ.get("LOCAL_RANK", "0") == "0":
        print(shown, flush=True)
    seed_everything(cfg.seed)
    data = instantiate(cfg.data)
    for net, key in [(n, k) for n in ("generator", "discriminator") for k in data.SHAPE]:
        value = cfg.model[net].get(key)  # G and D follow the data (their YAML interpolates it)
        if value is not None and value != getattr(data.hparams, key):
            raise ConfigError(f"model.{net}.{key}", value, f"must match data.{key}={cfg.data[key]}")
    classes = data.class_names() if cfg.model.get("conditional") else None
    # D judges packs of model.pack images (a D that packs); not .get: its errors name no key
    pack = cfg.model.pack if "pack" in cfg.model else 1
    nets = {net: instantiate(cfg.model[net], num_classes=len(classes or []),
                             **({"pack": pack} if net == "discriminator" and pack != 1 else {}))
            for net in ("generator", "discriminator")}  # fmt: skip
    check_trainer(cfg.trainer)
    optimizer = instantiate(cfg.optimizer).build(**nets)
    return fit(cfg, data, nets, optimizer, classes)


def check_trainer(trainer: DictConfig) -> None:
    """Trainer values Lightning accepts that this module cannot train with (its types are
    the schema's, the rest Lightning's): no epoch or batch to train, logging every 0 steps,
    float64, more CPU processes than memory holds."""
    if trainer.max_epochs != -1:
        integer("trainer.max_epochs", trainer.max_epochs)
    for key in ("limit_train_batches", "limit_val_batches", "overfit_batches"):  # a count or a
        if (value := trainer[key]) is not None or key == "overfit_batches":  # share (1 batch,
            number(f"trainer.{key}", value)  # 1.0 all); null: every batch (not for overfit)
    if trainer.limit_train_batches == 0:
        raise ConfigError("trainer.limit_train_batches", 0, "allowed: > 0 (0 trains nothing)")
    integer("trainer.log_every_n_steps", trainer.log_every_n_steps)
    if trainer.check_val_every_n_epoch is not None:
        integer("trainer.check_val_every_n_epoch", trainer.check_val_every_n_epoch)
    if str(trainer.precision).startswith("64"):
        raise ConfigError("trainer.precision", trainer.precision, "allowed: 32-true, "
                          "bf16-mixed, 16-mixed, bf16-true, 16-true (no float64 runs)")  # fmt: skip
    devices = trainer.devices
    if isinstance(devices, int) and devices > 1 and on_cpu(trainer.accelerator):
        most = cpu_processes()
        if devices > most:
            raise ConfigError(
                "trainer.devices",
                devices,
                f"allowed on the CPU: 1..{most} "
                f"(a process needs ~{PROCESS_GIB} GiB; memory for {most})",
            )


PROCESS_GIB = 1.0  # what one CPU training process of the default run holds (RSS, measured)


def on_cpu(accelerator: str) -> bool:
    import torch

    return accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())


def cpu_processes() -> int:
    """How many CPU training processes the available memory holds."""
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    return max(1, int(available / PROCESS_GIB))


def seed_everything(seed: int) -> None:
    """Lightning's seed_everything(seed, workers=True), whose module is imported with all of
    Lightning (~3 s here): G and D draw their weights before Lightning is imported. The
    environment variables are how Lightning's DDP ranks and loader workers see the seed."""
    import numpy as np
    import torch

    integer("seed", seed, low=0, high=2**32 - 1)
    os.environ["PL_GLOBAL_SEED"], os.environ["PL_SEED_WORKERS"] = str(seed), "1"
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fit(
    cfg: DictConfig, data: Any, nets: dict[str, Any], optimizer: Any, classes: list[str] | None
) -> dict[str, Any]:
    from pytorch_lightning.utilities import rank_zero_info

    from src.data.module import ImageDataModule
    from src.utils import distributed
    from src.utils.loggers import ensure_loggers_start, finished

    callbacks = instantiate_list(cfg.get("callbacks"))
    ckpt_path = cfg.get("ckpt_path")
    ckpt_path = os.path.expanduser(ckpt_path) if ckpt_path else ckpt_path
    if ckpt_path == "auto":  # this run directory's last checkpoint, or a fresh start
        last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
        ckpt_path = str(last) if last.is_file() else None
    trainer = build_trainer(cfg.trainer, callbacks, [])  # Lightning checks its keys first
    built = instantiate_list(cfg.get("logger"))  # named by the sweep's command line
    model = instantiate(cfg.model, **nets, optimizer=optimizer)
    model.config, model.class_names = OmegaConf.to_container(cfg, resolve=True), classes
    loggers: list = []  # started now (W&B takes seconds), finished whatever happens
    with finished(loggers), distributed.processes_for_this_job():
        trainer.loggers = loggers[:] = ensure_loggers_start(built)
        devices = trainer.num_devices * trainer.num_nodes
        if on_cpu(cfg.trainer.accelerator) and devices > (os.cpu_count() or 1):
            rank_zero_info(f"{devices} processes share this machine's {os.cpu_count()} CPU "
                           "cores: each step takes longer than on one process")  # fmt: skip
        rank_zero_info(
            f"Run directory: {shown(cfg.paths.output_dir)}; effective batch "
            f"{cfg.data.batch_size} x {devices} device(s) = {cfg.data.batch_size * devices} "
            f"(optimizer.scale_lr={optimizer.scale_lr}); parameters: G "
            f"{count(model.generator):,}, D {count(model.discriminator):,}"
        )
        if cfg.get("ckpt_path") == "auto":
            found = f"resuming from {ckpt_path}" if ckpt_path else "no checkpoint yet, fresh start"
            rank_zero_info(f"ckpt_path=auto: {found} with the run's own overrides")
            if RESUMED:
                rank_zero_info(f"resuming with {', '.join(RESUMED)}")
        for logger in trainer.loggers:
            logger.log_hyperparams(model.config)
        with signals_as_exit_status(trainer, cfg.paths.output_dir):
            # weights_only: a checkpoint is data, never code (a pickle payload is refused).
            trainer.fit(model, datamodule=ImageDataModule(data), ckpt_path=ckpt_path,
                        weights_only=True)  # fmt: skip
    return dict(trainer.callback_metrics)


def build_trainer(cfg: DictConfig, callbacks: list, loggers: list) -> Any:
    """The Trainer; with several processes our `gan_ddp` (plain DDP cannot run the alternating
    updates: src/utils/distributed.py) wherever the strategy is `auto` or `ddp`."""
    trainer = instantiate(cfg, callbacks=callbacks, logger=loggers)
    if trainer.world_size > 1 and cfg.get("strategy", "auto") in ("auto", "ddp"):
        trainer = instantiate(cfg, callbacks=callbacks, logger=loggers, strategy="gan_ddp")
    return trainer


def quiet_known_warnings() -> None:
    """The project's only warning filters: noise that is understood and not actionable."""
    rank_zero = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if not any(isinstance(f, WithoutTips) for f in rank_zero.filters):  # the API calls it again
        rank_zero.addFilter(WithoutTips())
    # The progress bar shows rank 0's epoch means on purpose (no extra collective per step).
    warnings.filterwarnings("ignore", message=r".*when logging on epoch level in distributed")
    # a resume writes into its own checkpoints/ again, on purpose
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    # debug=overfit: our val sampler is a fixed contiguous slice (not shuffled), validation off
    warnings.filterwarnings("ignore", message=r"You requested to overfit but enabled val ")
    # litdata's StreamingDataset has a length and splits the data across workers itself
    warnings.filterwarnings("ignore", message=r"Your `IterableDataset` has `__len__` defined")
    # Lightning 2.6 calls a torch pytree API that torch 2.14 deprecates.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


class WithoutTips(logging.Filter):
    """Lightning's advertisement for its cloud logger, on every run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


@contextlib.contextmanager
def signals_as_exit_status(trainer: Any, output_dir: str) -> Iterator[None]:
    """SIGTERM (Lightning stops after the batch in progress and raises SIGTERMException; our
    ModelCheckpoint saves last.ckpt there) and Ctrl-C (Lightning stops gracefully, then exits
    1) become `Interrupted`: exit 143 / 130 with where to resume. SIGUSR1, a cluster's
    warning before its time limit (SLURM: `#SBATCH --signal=USR1@120`), stops the same way,
    then requeues the SLURM job, whose `ckpt_path=auto` continues (set before `fit`, so
    Lightning's own SLURM handler, which saves in the middle of a step, stays out). A
    collective that fails because another process of the run died (gloo's or NCCL's plain
    RuntimeError) is an `EnvironmentFault`: exit 4, the same hint."""
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    def kept() -> str:  # what was saved (read when stopped), and how to go on
        last = Path(output_dir) / "checkpoints" / "last.ckpt"
        saved = f"{shown(last)} holds the run up to its last save" if last.is_file() else (
            "nothing was saved yet")  # fmt: skip
        return (f"at step {trainer.global_step}; {saved}; continue with ckpt_path=auto "
                f"hydra.run.dir={shown(output_dir)}")  # fmt: skip

    warned: list[int] = []

    def before_time_limit(number: int, frame: Any) -> None:
        warned.append(number)
        os.kill(os.getpid(), signal.SIGTERM)  # Lightning's SIGTERM path: stop after this batch

    usr1 = getattr(signal, "SIGUSR1", None)  # not on Windows
    previous = signal.signal(usr1, before_time_limit) if usr1 else None
    try:
        yield
    except SIGTERMException:
        if warned:
            raise Interrupted(f"stopped by SIGUSR1 {kept()}{requeue()}", 128 + warned[0]) from None
        raise Interrupted(f"stopped by SIGTERM {kept()}", 128 + signal.SIGTERM) from None
    except SystemExit:
        if trainer.interrupted:
            raise Interrupted(f"stopped by SIGINT {kept()}", 128 + signal.SIGINT) from None
        raise
    except RuntimeError as error:
        if trainer.world_size > 1 and in_collective(error):
            first = (str(error).strip().splitlines() or [""])[0][:160]
            raise EnvironmentFault(
                f"another process of this run stopped ({first}) {kept()}"
            ) from None
        raise
    finally:
        if usr1:
            signal.signal(usr1, previous)


def requeue() -> str:
    """Puts this SLURM job (an array job's task too) back in the queue, from global rank 0
    after last.ckpt is saved, as Lightning's SLURM environment does; '' outside SLURM."""
    job = os.environ.get("SLURM_JOB_ID")
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    if not job or os.environ.get("RANK", "0") != "0" or os.environ.get("SLURM_PROCID", "0") != "0":
        return ""
    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    except OSError as error:
        return f"; requeueing SLURM job {job} failed: {error}"
    if done.returncode != 0:
        return f"; `scontrol requeue {job}` failed: {done.stderr.strip()[:160]}"
    return f"; SLURM job {job} requeued"


def in_collective(error: BaseException) -> bool:
    """Whether `error` was raised inside torch.distributed (a collective between processes)."""
    frames = traceback.extract_tb(error.__traceback__)
    return any(f"torch{os.sep}distributed{os.sep}" in frame.filename for frame in frames)


def count(net: Any) -> int:
    return sum(p.numel() for p in net.parameters())


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


def the_runs_own_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """`ckpt_path=auto hydra.run.dir=<run>` continues the run as it was started: the overrides
    its last launch stored (`.hydra/overrides.yaml`) come first, what is typed now after them
    (a key typed again replaces its stored value). Returns the command line and each key typed
    now that differs from the run's config, as `key=value (was old)`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    try:
        typed = {o.key_or_group: o for o in parser.parse_overrides(argv[1:])}
    except Exception:  # not overrides (-m, --cfg, ...) or bad syntax: Hydra says what
        return argv, []
    ckpt, run = typed.get("ckpt_path"), typed.get("hydra.run.dir")
    if ckpt is None or ckpt.value() != "auto" or run is None:
        return argv, []
    stored = Path(os.path.expanduser(str(run.value()))) / ".hydra"
    try:
        lines = OmegaConf.to_container(OmegaConf.load(stored / "overrides.yaml"))
        config = OmegaConf.load(stored / "config.yaml")
        kept = [o for o in parser.parse_overrides(lines) if o.key_or_group not in typed]
    except Exception:  # no earlier launch (a fresh start), or its files are not ours
        return argv, []
    changes = []
    for key, override in typed.items():
        was = OmegaConf.select(config, key, default="(unset)")
        value = override.value()
        if (
            key not in ("ckpt_path", "hydra.run.dir")
            and not OmegaConf.is_config(was)
            and (str(was) != str(value))
        ):
            changes.append(f"{key}={value} (was {was})")
    return [argv[0], *(o.input_line for o in kept), *argv[1:]], changes


RESUMED: list[str] = []  # what a resume changed, said at its start


if __name__ == "__main__":
    sys.argv, RESUMED[:] = the_runs_own_overrides(sys.argv)
    entry(main)
