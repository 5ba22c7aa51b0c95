"""The `optimizer` group as one part: each network's optimizer (a `torch.optim` partial), the
sweep knobs they interpolate (`optimizer.lr`, `optimizer.momentum`), lr scaling with the
number of processes, the lr schedule, and what `optimizer.schedules` changes over the images
seen; plus the linear lr decay the default run uses."""

import inspect
import math
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import torch
from torch import nn

from src.errors import ConfigError, choice, number
from src.models.graphs import set_value
from src.models.schedules import Cosine, RunLength, schedule_at
from src.utils.instantiators import blamed

LR_SCALING = ("none", "linear", "sqrt")
Factory = Callable[..., torch.optim.Optimizer]


class Optimizers:
    """D's and G's optimizers, built once for their networks by `build` (before Lightning is
    imported, so torch's refusals are said at once)."""

    def __init__(
        self,
        generator: Factory,
        discriminator: Factory,
        lr: float,
        momentum: float,
        scale_lr: str = "none",
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        schedules: Mapping[str, Cosine] | None = None,
    ):
        number("optimizer.lr", lr, low_open=True)
        number("optimizer.momentum", momentum, 0.0, 1.0, high_open=True)
        self.scale_lr = choice("optimizer.scale_lr", scale_lr, LR_SCALING)
        self.factories = {"discriminator": discriminator, "generator": generator}
        self.scheduler = scheduler
        self.schedules = dict(schedules or {})
        for name, schedule in self.schedules.items():
            key = f"optimizer.schedules.{name}"
            choice("optimizer.schedules", name, ("lr", "beta2"))
            high = math.inf if name == "lr" else 1.0  # a factor on the lr; Adam's beta2
            schedule_at(key, schedule).checked(key, 0.0, high, high_open=name == "beta2")
        if "lr" in self.schedules and scheduler is not None:
            raise ConfigError(
                "optimizer.schedules.lr",
                "a schedule",
                "optimizer.scheduler schedules the lr too: set it to null",
            )
        self.built: tuple[torch.optim.Optimizer, torch.optim.Optimizer] | None = None
        self.base_lrs: list[list[float]] = []
        self.lr_factor = 1.0

    def build(self, generator: nn.Module, discriminator: nn.Module) -> "Optimizers":
        """(D's optimizer, G's) for these networks; what torch refuses is one line."""
        nets = {"discriminator": discriminator, "generator": generator}
        for name, factory in self.factories.items():  # before torch imports its compiler (~1 s)
            func = getattr(factory, "func", factory)
            check_arguments(func, keywords(factory), f"optimizer.{name}")
        self.built = tuple(
            build_optimizer(self.factories[name], nets[name], f"optimizer.{name}")
            for name in ("discriminator", "generator")
        )  # fmt: skip
        if "beta2" in self.schedules and any(
            "betas" not in group for o in self.built for group in o.param_groups
        ):
            raise ConfigError(
                "optimizer.schedules.beta2",
                "a schedule",
                "the optimizers have no betas (Adam's): use optimizer=adam",
            )
        self.base_lrs = [[g["lr"] for g in o.param_groups] for o in self.built]
        return self

    def classes(self) -> dict[str, str]:
        """The optimizer class of each network (a resume must use the same)."""
        opt_d, opt_g = self.built
        return {"generator": type(opt_g).__name__, "discriminator": type(opt_d).__name__}

    def scale(self, world_size: int) -> None:
        """lr multiplier for `world_size` processes: none (as published), linear (Goyal et al.
        2017, for SGD) or sqrt (Krizhevsky 2014, for Adam)."""
        rule = self.scale_lr
        self.lr_factor = {"none": 1.0, "linear": float(world_size), "sqrt": world_size**0.5}[rule]
        self.set_lrs()

    def set_lrs(self, factor: float = 1.0) -> None:
        """Each group's lr: its configured lr x the scale_lr factor x `factor` (a schedule's)."""
        for optimizer, lrs in zip(self.built, self.base_lrs, strict=True):
            for group, lr in zip(optimizer.param_groups, lrs, strict=True):
                set_value(group, "lr", lr * self.lr_factor * factor)

    def follow(self, seen: float, run_images: RunLength, images: int) -> dict[str, float]:
        """The scheduled lr factor and beta2 for the coming batch."""
        values = {name: s(seen, run_images) for name, s in self.schedules.items()}
        if "lr" in values:
            self.set_lrs(values["lr"])
        if "beta2" in values:
            for optimizer in self.built:
                for group in optimizer.param_groups:
                    group["betas"] = (group["betas"][0], values["beta2"])
        return {f"train/{name}": value for name, value in values.items()}

    def lr_schedulers(self, d_steps: Callable[[], int], g_steps: Callable[[], int]) -> list[Any]:
        """`optimizer.scheduler` built for each optimizer, with its network's step count over
        the run (a callable: read when the schedule first steps); none without one."""
        if self.scheduler is None:
            return []
        opt_d, opt_g = self.built
        return [self.scheduler(opt_d, d_steps), self.scheduler(opt_g, g_steps)]


def build_optimizer(factory: Factory, net: nn.Module, key: str) -> torch.optim.Optimizer:
    """`factory(net.parameters())`; what torch refuses (or an lr that would not train) is a
    ConfigError naming `key` (e.g. optimizer.generator)."""
    name = getattr(getattr(factory, "func", factory), "__name__", str(factory))
    arguments = keywords(factory)
    check_arguments(getattr(factory, "func", factory), arguments, key)
    betas = arguments.get("betas")
    if isinstance(betas, list | tuple):  # optimizer.momentum=0 is an int: Adam wants floats
        whole = lambda b: isinstance(b, int) and not isinstance(b, bool)  # noqa: E731
        if any(whole(b) for b in betas):
            factory = partial(factory, betas=tuple(float(b) if whole(b) else b for b in betas))
    try:
        optimizer = factory(net.parameters())
    except (TypeError, ValueError, IndexError) as error:  # what torch raises for bad arguments
        argument = blamed(arguments, str(error))
        where, value = (f"{key}.{argument}", arguments[argument]) if argument else (key, arguments)
        raise ConfigError(where, value, f"{name} refused it: {error}") from None
    for group in optimizer.param_groups:
        lr = group["lr"]
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < math.inf:
            raise ConfigError(f"{key}.lr", lr, "allowed: a finite number > 0")
    return optimizer


def keywords(factory: Factory) -> dict[str, Any]:
    return factory.keywords if isinstance(factory, partial) else {}


def check_arguments(optimizer: Any, arguments: dict[str, Any], key: str) -> None:
    """Each argument whose default in the optimizer's signature is a number (or numbers) is a
    finite number (or numbers): torch compares them without a word (an infinite weight_decay,
    a string eps) or fails later with a message that names none."""
    try:
        defaults = {n: p.default for n, p in inspect.signature(optimizer).parameters.items()}
    except (TypeError, ValueError):  # not introspectable: torch's own checks only
        return
    for name, value in arguments.items():
        default = defaults.get(name)
        numbers = default if isinstance(default, tuple) else (default,)
        if not all(isinstance(d, int | float) and not isinstance(d, bool) for d in numbers):
            continue
        for item in value if isinstance(value, list | tuple) else (value,):
            number(f"{key}.{name}", item, -math.inf)


class LinearDecayLR(torch.optim.lr_scheduler.LambdaLR):
    """The lr held for the first `decay_start` of the run's batches, then linearly to 0 at the
    last; `total_steps` may be a callable (the batch count is known only once training starts),
    and the factor is a closure outside LambdaLR's state, so a longer resumed run stretches it."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: int | Callable[[], int],
        decay_start: float = 0.5,
        last_epoch: int = -1,
    ):
        numeric = isinstance(decay_start, int | float) and not isinstance(decay_start, bool)
        if not (numeric and 0 <= decay_start < 1):
            raise ConfigError("optimizer.scheduler.decay_start", decay_start, "allowed: [0, 1)")
        self.decay_start = decay_start

        def factor(step: int) -> float:
            if step == 0:
                return 1.0  # whatever the length (LambdaLR evaluates step 0 when it is built)
            total = total_steps() if callable(total_steps) else total_steps
            start = int(decay_start * total)
            return max(0.0, min(1.0, (total - step) / max(1, total - start)))

        super().__init__(optimizer, factor, last_epoch)
