"""Data-parallel training for the two-optimizer GAN step.

Why not Lightning's plain DDP: one DistributedDataParallel wrapper around G and D expects
every parameter to get a gradient in every backward. Our step runs two backwards per batch
(D's loss touches only D; G's loss, with D frozen, only G), so DDP either fails ("Expected
to have finished reduction in the prior iteration") or needs find_unused_parameters=True,
which walks the autograd graph each backward and all-reduces both networks' gradients
(zeros included) twice per batch. Two forwards of D before one backward (real, then fake)
also trip DDP's in-place buffer broadcast for BatchNorm.

Instead the processes, devices and collectives come from Lightning's DDPStrategy, the
module is not wrapped, and the step all-reduces exactly the gradients of the network it
is about to step, as one flat buffer (one collective per update; half of what
find_unused_parameters=True sends). Every rank starts from rank 0's weights and steps with
the same averaged gradients, so the weights stay bitwise identical across ranks.
BatchNorm statistics stay per device (each rank normalises its own batch, as DCGAN's
single-GPU BatchNorm does), unless `trainer.sync_batchnorm=true` makes them global.
"""

import contextlib
import os
import sys
from collections.abc import Iterator

import torch
import torch.distributed as dist
from pytorch_lightning.strategies import DDPStrategy, StrategyRegistry
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors


class GANDDPStrategy(DDPStrategy):
    """DDPStrategy without the DistributedDataParallel wrapper (see the module docstring)."""

    strategy_name = "gan_ddp"

    def configure_ddp(self) -> None:
        broadcast_from_rank0([*self.model.parameters(), *self.model.buffers()])  # as DDP does

    def _register_ddp_hooks(self) -> None:
        pass


StrategyRegistry.register(
    GANDDPStrategy.strategy_name, GANDDPStrategy, description="DDP for GANModule",
    override=True,
)  # fmt: skip


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def broadcast_from_rank0(tensors: list[torch.Tensor]) -> None:
    """Rank 0's values into `tensors` on every rank, as one flat buffer (any memory format)."""
    if not is_distributed() or not tensors:
        return
    flat = _flatten_dense_tensors([t.detach() for t in tensors])
    dist.broadcast(flat, src=0)
    with torch.no_grad():
        for tensor, value in zip(tensors, _unflatten_dense_tensors(flat, tensors), strict=True):
            tensor.copy_(value)


def all_gather_rows(rows: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """Every rank's `rows` stacked in rank order; rank r holds `counts[r]` rows (may differ).

    Rows are padded to the largest count for the collective and trimmed after. Outside a
    process group `rows` is returned as it is.
    """
    if not is_distributed():
        return rows
    padded = rows.new_zeros((max(counts), *rows.shape[1:]))
    padded[: len(rows)] = rows
    gathered = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(gathered, padded.contiguous())
    return torch.cat([g[:n] for g, n in zip(gathered, counts, strict=True)])


def all_reduce_gradients(params: list[torch.nn.Parameter], flag: torch.Tensor) -> torch.Tensor:
    """Averages the gradients of `params` over all ranks in one collective; ORs `flag` along.

    `flag` ("this rank's loss was not finite") travels in the same buffer, so every rank
    skips an update together. Returns the global flag.
    """
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = _flatten_dense_tensors([*grads, flag.float().reshape(1)])
    dist.all_reduce(flat)
    flat[:-1].div_(dist.get_world_size())
    for param, grad, synced in zip(
        params, grads, _unflatten_dense_tensors(flat[:-1], grads), strict=True
    ):
        grad.copy_(synced)
        param.grad = grad
    return flat[-1] > 0


@contextlib.contextmanager
def processes_for_this_job() -> Iterator[None]:
    """Lets a Hydra job use several processes, and leaves this process as it was after.

    Lightning starts ranks 1..N-1 by re-running this command line with `hydra.run.dir=` set
    to Hydra's run dir. In a multirun that command line is the whole sweep (`-m ...`), and
    the run dir is not the job's directory: each rank would start the sweep again. So the
    job's own overrides become the command line and its output dir the run dir. Afterwards
    the process group is destroyed and the environment restored (Lightning's launcher sets
    MASTER_PORT, LOCAL_RANK, ...), so the next job of a multirun starts its own processes.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import read_write

    environment, argv = dict(os.environ), list(sys.argv)
    if HydraConfig.initialized() and not os.environ.get("LOCAL_RANK"):
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode == RunMode.MULTIRUN:
            sys.argv = [sys.argv[0], *hydra_cfg.overrides.task]
            with read_write(hydra_cfg.run):
                hydra_cfg.run.dir = hydra_cfg.runtime.output_dir
    try:
        yield
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        os.environ.clear()
        os.environ.update(environment)
        sys.argv = argv
