"""The divergence guard inside the step: an update whose loss is non-finite is skipped on the
device (no host sync); `src.callbacks.health.Health` counts the skips and stops a run that
keeps producing them."""

from typing import Any

import torch


def skips_on_device(optimizer: Any) -> bool:
    """Fused optimizers take the skip flag as `found_inf` (AMP's mechanism) and skip on the
    device; others must read it on the host."""
    inner = getattr(optimizer, "optimizer", optimizer)  # unwrap LightningOptimizer
    return bool(inner.defaults.get("fused"))


def step_unless(optimizer: Any, skip: torch.Tensor) -> None:
    """Steps `optimizer` unless the device flag `skip` is set (`skips_on_device`, or a host
    sync)."""
    inner = getattr(optimizer, "optimizer", optimizer)  # unwrap LightningOptimizer
    if skips_on_device(inner):
        inner.found_inf, inner.grad_scale = skip.float(), None
        optimizer.step()
    elif not skip.item():
        optimizer.step()
