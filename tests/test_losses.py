import math

import pytest
import torch

from src.models.losses import (
    LOSSES,
    check_loss,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    lecam,
    wgan_gp,
)


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
    ns = generator_loss(fake, "bce", "non_saturating").item()
    assert ns == pytest.approx(non_saturating, rel=1e-6)
    assert generator_loss(fake, "bce", "minimax").item() == pytest.approx(minimax, rel=1e-6)


def test_losses_are_finite_for_extreme_logits():
    logits = torch.tensor([-200.0, 200.0])
    assert torch.isfinite(discriminator_loss(logits, logits))
    for loss in LOSSES:
        assert torch.isfinite(discriminator_loss(logits, logits, loss)), loss
        objective = "minimax" if loss == "bce" else "non_saturating"
        assert torch.isfinite(generator_loss(logits, loss, objective, logits)), loss


def test_unknown_objective_and_loss_are_refused():
    with pytest.raises(ValueError, match="model.g_objective='wasserstein': allowed:"):
        check_loss("bce", "wasserstein")
    with pytest.raises(ValueError, match="model.loss='softmax': allowed: bce, hinge"):
        check_loss("softmax", "non_saturating")
    with pytest.raises(ValueError, match="minimax is defined for loss=bce only"):
        check_loss("hinge", "minimax")


REAL, FAKE = torch.tensor([2.0, -0.5]), torch.tensor([0.5, -3.0])


@pytest.mark.parametrize(
    ("loss", "d_expected", "g_expected"),
    [
        # hinge: mean(relu(1 - r)) + mean(relu(1 + f)); G: -mean(f)
        ("hinge", (0.0 + 1.5) / 2 + (1.5 + 0.0) / 2, 1.25),
        # wasserstein: mean(f) - mean(r); G: -mean(f)
        ("wasserstein", -1.25 - 0.75, 1.25),
        # least squares: (mean((r - 1)^2) + mean(f^2)) / 2; G: mean((f - 1)^2) / 2
        ("least_squares", 0.5 * ((1 + 2.25) / 2 + (0.25 + 9) / 2), 0.5 * (0.25 + 16) / 2),
    ],
)
def test_losses_by_hand(loss, d_expected, g_expected):
    assert discriminator_loss(REAL, FAKE, loss).item() == pytest.approx(d_expected, rel=1e-6)
    assert generator_loss(FAKE, loss).item() == pytest.approx(g_expected, rel=1e-6)


def test_relativistic_average_loss_by_hand():
    """D: -E[log sigmoid(r - mean f)] - E[log(1 - sigmoid(f - mean r))]; G swaps the roles."""
    mr, mf = REAL.mean().item(), FAKE.mean().item()
    d = (
        -sum(math.log(sigmoid(r - mf)) for r in REAL.tolist()) / 2
        - sum(math.log(1 - sigmoid(f - mr)) for f in FAKE.tolist()) / 2
    )
    g = (
        -sum(math.log(sigmoid(f - mr)) for f in FAKE.tolist()) / 2
        - sum(math.log(1 - sigmoid(r - mf)) for r in REAL.tolist()) / 2
    )
    assert discriminator_loss(REAL, FAKE, "relativistic").item() == pytest.approx(d, rel=1e-6)
    assert generator_loss(FAKE, "relativistic", real_logits=REAL).item() == pytest.approx(
        g, rel=1e-6
    )


def test_losses_are_float32_under_bfloat16_logits():
    for loss in LOSSES:
        d = discriminator_loss(REAL.bfloat16(), FAKE.bfloat16(), loss)
        g = generator_loss(FAKE.bfloat16(), loss, real_logits=REAL.bfloat16())
        assert d.dtype == g.dtype == torch.float32, loss


class Linear(torch.nn.Module):
    """D(x) = <w, x>: its input gradient is w for every x."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).flatten(1).sum(1)


def test_gradient_penalties_of_a_linear_discriminator():
    w = torch.full((1, 2, 2), 0.5)  # ||w||^2 = 1
    d = Linear(w.clone())
    x = torch.randn(5, 1, 2, 2)
    assert gradient_penalty(d, x).tolist() == pytest.approx([1.0] * 5)
    assert wgan_gp(d, x, torch.randn(5, 1, 2, 2)).item() == pytest.approx(0.0, abs=1e-6)
    twice = Linear(2 * w)  # ||grad|| = 2: WGAN-GP (2 - 1)^2 = 1
    assert wgan_gp(twice, x, torch.randn(5, 1, 2, 2)).item() == pytest.approx(1.0, rel=1e-5)
    # the penalty has a graph: its gradient reaches D's weights (d ||w||^2 / dw = 2w)
    gradient_penalty(d, x).mean().backward()
    assert torch.allclose(d.w.grad, 2 * w)


def test_lecam_by_hand():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.0])
    ema_real, ema_fake = torch.tensor(0.5), torch.tensor(2.0)
    # relu(r - 2)^2 -> [0, 1]; relu(0.5 - f)^2 -> [2.25, 0.25]
    assert lecam(real, fake, ema_real, ema_fake).item() == pytest.approx(0.5 + 1.25)


def test_mode_seeking_is_the_inverse_image_to_latent_distance_ratio():
    from src.models.losses import mode_seeking

    z = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0], [1.0, 3.0]])  # pairs (0, 2), (1, 3)
    images = torch.zeros(4, 1, 2, 2)
    images[2] += 0.5
    images[3] -= 0.5
    # mean |G(z1) - G(z2)| = 0.5 over mean |z1 - z2| = (2 + 0 + 0 + 2) / 4 = 1
    assert mode_seeking(images, z).item() == pytest.approx(1 / (0.5 + 1e-5))
    # G mapping two latents to one image is penalised hardest (1 / eps)
    assert mode_seeking(torch.zeros(4, 1, 2, 2), z).item() == pytest.approx(1e5)


def test_mode_seeking_trains_a_conditional_module_with_paired_classes():
    from tests.helpers import fit_batches, tiny_module

    module = tiny_module(conditional=True, num_classes=10, mode_seeking_weight=1.0)
    trainer = fit_batches(module, 2)
    assert torch.isfinite(trainer.callback_metrics["train/loss_g"])
