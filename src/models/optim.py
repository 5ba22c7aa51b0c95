"""Building a network's optimizer from its config (a `torch.optim` partial) and the linear
lr decay the default run uses. The `optimizer` config group names the classes it builds."""

import math
from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from src.errors import ConfigError, blamed

LR_SCALING = ("none", "linear", "sqrt")


def lr_scale(rule: str, world_size: int) -> float:
    """lr multiplier for `world_size` processes: none (as published), linear (Goyal et al. 2017,
    for SGD) or sqrt (Krizhevsky 2014, for Adam)."""
    if rule not in LR_SCALING:
        raise ConfigError("optimizer.scale_lr", rule, f"allowed: {', '.join(LR_SCALING)}")
    return {"none": 1.0, "linear": float(world_size), "sqrt": world_size**0.5}[rule]


def build_optimizer(
    factory: Callable[..., torch.optim.Optimizer], net: nn.Module, key: str
) -> torch.optim.Optimizer:
    """`factory(net.parameters())`; what torch refuses (or an lr that would not train) is a
    ConfigError naming `key` (e.g. optimizer.generator)."""
    name = getattr(getattr(factory, "func", factory), "__name__", str(factory))
    arguments = factory.keywords if isinstance(factory, partial) else {}
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
