"""`gan_ddp`: data parallelism for the two-optimizer GAN step, without DDP's wrapper.

Lightning gap: one DistributedDataParallel around G and D expects every parameter to get a
gradient in every backward; our D backward touches only D and G's only G, so DDP fails
("Expected to have finished reduction", Lightning #20328) or needs find_unused_parameters
(a graph walk per backward, both networks' gradients all-reduced twice per batch), and two
D forwards before one backward trip its BatchNorm broadcast (pytorch #22095). Here every
rank starts from rank 0's weights and the step all-reduces exactly the gradients of the
network it updates, in one flat buffer: the weights stay bitwise identical across ranks.
"""

import contextlib
import os
import sys
from collections.abc import Iterator

import torch
import torch.distributed as dist
from pytorch_lightning.strategies import DDPStrategy, StrategyRegistry
from torch import nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors


class GANDDPStrategy(DDPStrategy):
    """DDPStrategy's processes and collectives, with the gradient all-reduce done by the step."""

    strategy_name = "gan_ddp"

    def configure_ddp(self) -> None:
        self.broadcast_tensors([*self.model.parameters(), *self.model.buffers()])

    def broadcast_tensors(self, tensors: list[torch.Tensor]) -> None:
        """Rank 0's values into `tensors` on every rank, as one flat buffer."""
        if not dist.is_initialized() or dist.get_world_size() == 1 or not tensors:
            return
        flat = _flatten_dense_tensors([t.detach() for t in tensors])
        dist.broadcast(flat, src=0)
        with torch.no_grad():
            for tensor, value in zip(tensors, _unflatten_dense_tensors(flat, tensors), strict=True):
                tensor.copy_(value)

    def all_reduce_gradients(self, net: nn.Module, skip: torch.Tensor) -> torch.Tensor:
        """Averages the gradients of `net`'s trainable parameters over the ranks in one
        collective, with the flag "skip this update" ORed along so every rank skips together."""
        if not dist.is_initialized() or dist.get_world_size() == 1:
            return skip
        params = [p for p in net.parameters() if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = _flatten_dense_tensors([*grads, skip.float().reshape(1)])
        dist.all_reduce(flat)
        flat[:-1].div_(dist.get_world_size())
        for param, grad, synced in zip(
            params, grads, _unflatten_dense_tensors(flat[:-1], grads), strict=True
        ):
            grad.copy_(synced)
            param.grad = grad
        return flat[-1] > 0


StrategyRegistry.register(
    GANDDPStrategy.strategy_name, GANDDPStrategy, description="DDP for GANModule",
    override=True,
)  # fmt: skip


@contextlib.contextmanager
def processes_for_this_job() -> Iterator[None]:
    """Lets a Hydra job use several processes, then restores this process (Hydra gap:
    Lightning starts the other ranks by re-running the command line, which in a multirun is
    the whole sweep, Lightning #11300: the job's overrides and run dir become it)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf, read_write

    environment, argv = dict(os.environ), list(sys.argv)
    if HydraConfig.initialized() and not os.environ.get("LOCAL_RANK"):
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode == RunMode.MULTIRUN:
            task = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)
            sys.argv = [sys.argv[0], *task]
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
