"""`model.compile=true` trains with the same gradients as eager mode.

Toggling requires_grad around compiled modules has produced silently wrong gradients in
recent PyTorch releases, so the compiled D/G step is compared with the eager one.
"""

import pytest
import torch

from src.models.dcgan import Discriminator
from src.models.gan_module import GANModule
from tests.helpers import fit_batches, part, tiny_module


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


@pytest.mark.slow
@pytest.mark.parametrize(("penalty", "norm"), [("r1", "none"), ("wgan_gp", "spectral")])
def test_compiled_penalised_step_like_eager_one(penalty, norm):
    """aot_autograd has no double backward: a compiled D's gradient penalty runs D's eager
    forward on the same weights, and the step equals eager mode's (R1's extra forward changes
    nothing in a D without norm; WGAN-GP with spectral norm makes one extra forward in both)."""

    def trained(compile: bool) -> GANModule:
        torch.manual_seed(0)  # D's initial weights
        module = tiny_module(
            "sgd", lr=1.0, momentum=0.0, compile=compile,
            regularizers={penalty: part("model/regularizers", penalty, weight=1.0)},
            discriminator=Discriminator(16, 1, ndf=4, norm=norm),
        )  # fmt: skip
        fit_batches(module, 1)
        return module

    eager, compiled = trained(False), trained(True)
    for (name, a), b in zip(
        eager.state_dict().items(), compiled.state_dict().values(), strict=True
    ):
        if a.is_floating_point():
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.slow
def test_compiled_resnet_discriminator_keeps_spectral_norm_buffers_out_of_backward():
    """Two forwards then one backward through a compiled SNGAN ResNet D: inductor alone
    saved a power-iteration buffer that the second forward updates (RuntimeError "modified by
    an inplace operation"); compile_network keeps spectral norm eager. Gradients = eager's."""
    from src.models.gan_module import compile_network
    from src.models.resnet import Discriminator as ResNetD

    torch.manual_seed(0)
    eager = ResNetD(32, 3, ndf=16)
    compiled = ResNetD(32, 3, ndf=16)
    compiled.load_state_dict(eager.state_dict())
    compile_network(compiled)
    real, fake = torch.randn(2, 4, 3, 32, 32)
    for net in (eager, compiled):
        (net(real).mean() - net(fake).mean()).backward()
    for (name, a), b in zip(eager.named_parameters(), compiled.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-5, msg=name)
    for (name, a), b in zip(
        eager.state_dict().items(), compiled.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(b, a, msg=name)  # the power-iteration vectors advanced alike
