"""`model.compile=true` trains with the same gradients as eager mode.

Toggling requires_grad around compiled modules has produced silently wrong gradients in
recent PyTorch releases, so the compiled D/G step is compared with the eager one.
"""

import pytest
import torch
from pytorch_lightning import Trainer, seed_everything

from src.data.digits import DigitsDataModule
from src.models.dcgan import Discriminator, Generator
from src.models.gan_module import GANModule


def trained(compile: bool, batches: int) -> GANModule:
    seed_everything(0)
    module = GANModule(
        Generator(16, 1, latent_dim=8, ngf=4), Discriminator(16, 1, ndf=4),
        # plain SGD with lr 1: each parameter moves by exactly its gradient
        {"name": "sgd", "lr": 1.0, "momentum": 0.0}, compile=compile,
    )  # fmt: skip
    trainer = Trainer(
        max_epochs=1, limit_train_batches=batches, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(module, datamodule=DigitsDataModule(image_size=16, batch_size=8))
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
