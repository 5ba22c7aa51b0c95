"""Optimizers from the `optimizer` config group: one `momentum` knob for SGD and Adam."""

from collections.abc import Callable, Iterable

import torch

from src.utils.errors import ConfigError

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "linear_decay")


def build_optimizer(
    params: Iterable[torch.nn.Parameter],
    name: str,
    lr: float,
    momentum: float,
    beta2: float = 0.999,
    weight_decay: float = 0.0,
    fused: bool = True,
) -> torch.optim.Optimizer:
    """`momentum` is SGD's momentum or Adam's beta1, so one sweep axis covers both.

    fused: one kernel for all parameters (CPU and CUDA), and it honours `found_inf`, which
    lets the module skip a non-finite update without a host-device sync.
    """
    if name == "adam":
        betas = (momentum, beta2)
        return torch.optim.Adam(
            params, lr=lr, betas=betas, weight_decay=weight_decay, fused=fused or None
        )
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, weight_decay=weight_decay, fused=fused or None
        )
    raise ConfigError("optimizer.name", name, f"allowed: {', '.join(OPTIMIZERS)}")


def build_schedule(
    optimizer: torch.optim.Optimizer,
    schedule: str,
    total_steps: int | Callable[[], int],
    decay_start: float = 0.5,
) -> torch.optim.lr_scheduler.LambdaLR | None:
    """None for `constant`; for `linear_decay` the lr stays put for the first `decay_start` of
    the `total_steps` batches, then falls linearly to 0 at the last one (stepped per batch).

    `total_steps` may be a callable, read at every step after the first: the module passes
    the trainer's batch count, which is known only once training starts. The factor is a
    plain function of the step, so a checkpoint keeps only the step count and a resumed run
    with more epochs stretches the schedule to its new length.
    """
    if schedule == "constant":
        return None
    if schedule != "linear_decay":
        raise ConfigError("optimizer.schedule", schedule, f"allowed: {', '.join(SCHEDULES)}")

    def factor(step: int) -> float:
        if step == 0:
            return 1.0  # whatever the length (LambdaLR evaluates step 0 when it is built)
        total = total_steps() if callable(total_steps) else total_steps
        start = int(decay_start * total)
        return max(0.0, min(1.0, (total - step) / max(1, total - start)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
