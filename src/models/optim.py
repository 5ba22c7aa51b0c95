"""Optimizers from the `optimizer` config group: one `momentum` knob for SGD and Adam."""

from collections.abc import Iterable

import torch

from src.utils.errors import ConfigError

OPTIMIZERS = ("adam", "sgd")


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
