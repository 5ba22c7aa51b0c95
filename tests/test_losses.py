import math

import pytest
import torch

from src.models.losses import discriminator_loss, generator_loss


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_discriminator_loss_is_the_negated_minimax_value():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    expected = (
        -sum(math.log(sigmoid(x)) for x in real.tolist()) / 2
        - sum(math.log(1 - sigmoid(x)) for x in fake.tolist()) / 2
    )
    assert discriminator_loss(real, fake).item() == pytest.approx(expected, rel=1e-6)


def test_generator_objectives_by_hand():
    fake = torch.tensor([0.5, -3.0, 1.5])
    non_saturating = -sum(math.log(sigmoid(x)) for x in fake.tolist()) / 3
    minimax = sum(math.log(1 - sigmoid(x)) for x in fake.tolist()) / 3
    assert generator_loss(fake, "non_saturating").item() == pytest.approx(non_saturating, rel=1e-6)
    assert generator_loss(fake, "minimax").item() == pytest.approx(minimax, rel=1e-6)


def test_losses_are_finite_for_extreme_logits():
    logits = torch.tensor([-200.0, 200.0])
    assert torch.isfinite(discriminator_loss(logits, logits))
    assert torch.isfinite(generator_loss(logits, "minimax"))


def test_unknown_objective_is_refused():
    with pytest.raises(ValueError, match="model.g_objective='wasserstein': allowed:"):
        generator_loss(torch.zeros(2), "wasserstein")
