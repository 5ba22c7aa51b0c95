"""`model.compile=true` trains with the same gradients as eager mode.

Toggling requires_grad around compiled modules has produced silently wrong gradients in
recent PyTorch releases, so the compiled D/G step is compared with the eager one.
"""

import pytest
import torch

from src.models.gan_module import GANModule
from tests.helpers import fit_batches, tiny_module


def trained(compile: bool, batches: int) -> GANModule:
    # plain SGD with lr 1: each parameter moves by exactly its gradient
    module = tiny_module("sgd", lr=1.0, momentum=0.0, compile=compile)
    fit_batches(module, batches)
    return module


@pytest.mark.slow
def test_compiled_networks_step_like_eager_ones():
    """One batch = one D step and one G step (with D frozen), from identical weights."""
    initial = [p.detach().clone() for p in trained(False, 0).parameters()]
    eager, compiled = trained(False, 1), trained(True, 1)
    assert compiled._compiled
    for (name, a), b, start in zip(
        eager.named_parameters(), compiled.parameters(), initial, strict=True
    ):
        assert not torch.equal(a, start), f"{name} did not move"  # every weight got a gradient
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=name)
