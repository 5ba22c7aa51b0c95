"""Optimizers from the `optimizer` config group: one `momentum` knob for SGD and Adam."""

from collections.abc import Iterable

import torch

OPTIMIZERS = ("adam", "sgd")


def build_optimizer(
    params: Iterable[torch.nn.Parameter],
    name: str,
    lr: float,
    momentum: float,
    beta2: float = 0.999,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """`momentum` is SGD's momentum or Adam's beta1, so one sweep axis covers both."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(momentum, beta2), weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"optimizer.name={name!r}: must be one of {', '.join(OPTIMIZERS)}")
