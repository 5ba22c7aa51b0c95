"""The divergence guard: skip non-finite updates, stop a run that keeps producing them, warn
when D collapses; kept on the device, so a step costs no host sync."""

import logging
from typing import Any

import torch

from src.errors import DivergenceError, integer

log = logging.getLogger(__name__)


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


class HealthMonitor:
    """Counts skipped steps and D collapse on the device; `check` (on log steps) reads them,
    stops a run of `max_nonfinite_steps` and warns once per collapse episode."""

    def __init__(self, max_nonfinite_steps: int, collapse_warn_steps: int):
        self.max_nonfinite_steps = integer("model.max_nonfinite_steps", max_nonfinite_steps)
        self.collapse_warn_steps = integer("model.collapse_warn_steps", collapse_warn_steps)
        self.total = self.run = self.worst_run = self.collapse_run = None
        self.collapse_warned = False

    def update(self, bad: torch.Tensor, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        """Records one step; returns the total count of skipped steps (a device tensor)."""
        bad = bad.float()
        if self.total is None:
            self.total, self.run, self.worst_run, self.collapse_run = (
                torch.zeros((), device=bad.device) for _ in range(4)
            )
        self.total = self.total + bad
        self.run = (self.run + bad) * bad
        self.worst_run = torch.maximum(self.worst_run, self.run)
        collapsed = ((d_real > 0.99) & (d_fake < 0.01)).float()
        self.collapse_run = (self.collapse_run + collapsed) * collapsed
        return self.total

    def check(self, step: int, completed_epochs: int) -> None:
        if self.total is None:
            return
        worst, collapse = (int(t) for t in torch.stack([self.worst_run, self.collapse_run]))
        self.worst_run = torch.zeros_like(self.worst_run)
        if worst >= self.max_nonfinite_steps:
            saved = (
                "checkpoints/last.ckpt holds the last completed epoch (resume: ckpt_path=auto)"
                if completed_epochs
                else "no epoch completed, so no checkpoint was written"
            )
            raise DivergenceError(
                f"training diverged: {worst} consecutive steps with a non-finite loss by batch "
                f"{step} (model.max_nonfinite_steps={self.max_nonfinite_steps}); those updates "
                f"were skipped; {saved}; lower optimizer.lr or check the data"
            )
        if collapse >= self.collapse_warn_steps and not self.collapse_warned:
            log.warning(
                "D collapse at batch %d: d_real > 0.99 and d_fake < 0.01 for %d steps in a row; "
                "G gets little gradient (try augment, a lower lr_d or more G steps)",
                step, collapse,
            )  # fmt: skip
        self.collapse_warned = collapse >= self.collapse_warn_steps
