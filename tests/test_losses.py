"""The losses and the regularizer terms against hand computations."""

import math

import pytest
import torch

from src.errors import ConfigError
from src.models.regularizers import (
    WGANGP,
    DStep,
    GradientPenalty,
    LeCam,
    Seen,
    mode_seeking,
    squared_input_gradient,
)
from tests.helpers import options, part

LOSSES = options("model/loss")  # discovered: a new loss's file is tested here with the rest


def build_loss(name: str, g_objective: str | None = None):
    return part("model/loss", name, **({"g_objective": g_objective} if g_objective else {}))


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def d_loss(name: str, real: torch.Tensor, fake: torch.Tensor) -> float:
    return build_loss(name).discriminator(real, fake).item()


def test_discriminator_loss_is_the_negated_minimax_value():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    expected = (
        -sum(math.log(sigmoid(x)) for x in real.tolist()) / 2
        - sum(math.log(1 - sigmoid(x)) for x in fake.tolist()) / 2
    )
    assert d_loss("bce", real, fake) == pytest.approx(expected, rel=1e-6)


def test_generator_objectives_by_hand():
    fake = torch.tensor([0.5, -3.0, 1.5])
    non_saturating = -sum(math.log(sigmoid(x)) for x in fake.tolist()) / 3
    minimax = sum(math.log(1 - sigmoid(x)) for x in fake.tolist()) / 3
    ns = build_loss("bce", "non_saturating").generator(fake).item()
    assert ns == pytest.approx(non_saturating, rel=1e-6)
    assert build_loss("bce", "minimax").generator(fake).item() == pytest.approx(minimax, rel=1e-6)


def test_losses_are_finite_for_extreme_logits():
    logits = torch.tensor([-200.0, 200.0])
    for name in LOSSES:
        loss = build_loss(name, "minimax" if name == "bce" else None)
        assert torch.isfinite(loss.discriminator(logits, logits)), name
        assert torch.isfinite(loss.generator(logits, logits)), name


def test_an_unknown_objective_is_refused_by_the_loss_that_has_objectives():
    from src.models.losses import BCE

    with pytest.raises(ConfigError, match=r"g_objective='wasserstein': allowed: non_saturating"):
        BCE("wasserstein")


def test_each_loss_separates_real_from_fake_at_its_own_boundary():
    """train/d_real and train/d_fake: the shares D takes for real, decided where each loss puts
    its boundary (least squares at 0.5, the relativistic ones against the other side)."""
    real, fake = torch.tensor([0.3, 0.7, 2.0]), torch.tensor([0.5, 1.0, 1.0])
    expected = {
        "bce": ([1, 1, 1], [1, 1, 1]), "hinge": ([1, 1, 1], [1, 1, 1]),
        "least_squares": ([-1, 1, 1], [0, 1, 1]),
        "wasserstein": ([-1, -1, 1], [-1, 0, 0]), "relativistic": ([-1, -1, 1], [-1, 0, 0]),
        "rpgan": ([-1, -1, 1], [1, 1, -1]),
    }  # fmt: skip
    assert set(expected) == set(LOSSES)  # a new loss: add its boundary here
    for name, (real_signs, fake_signs) in expected.items():
        real_verdict, fake_verdict = build_loss(name).verdict(real, fake)
        assert real_verdict.sign().tolist() == real_signs, name
        assert fake_verdict.sign().tolist() == fake_signs, name
    # a D that has separated the two: every real taken for real, no fake, under every loss
    separated_real, separated_fake = torch.tensor([3.0, 4.0]), torch.tensor([-3.0, -4.0])
    for name in LOSSES:
        real_verdict, fake_verdict = build_loss(name).verdict(separated_real, separated_fake)
        assert (real_verdict > 0).all() and (fake_verdict <= 0).all(), name


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
    assert d_loss(loss, REAL, FAKE) == pytest.approx(d_expected, rel=1e-6)
    assert build_loss(loss).generator(FAKE).item() == pytest.approx(g_expected, rel=1e-6)


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
    loss = build_loss("relativistic")
    assert loss.g_needs_real  # the step runs D on reals in G's turn because the loss says so
    assert loss.discriminator(REAL, FAKE).item() == pytest.approx(d, rel=1e-6)
    assert loss.generator(FAKE, REAL).item() == pytest.approx(g, rel=1e-6)


def test_relativistic_pairing_loss_by_hand():
    """RpGAN pairs real i with fake i: D softplus(-(r_i - f_i)), G softplus(-(f_i - r_i)); not
    the relativistic average (which compares with the other side's mean)."""
    pairs = list(zip(REAL.tolist(), FAKE.tolist(), strict=True))
    d = sum(math.log(1 + math.exp(-(r - f))) for r, f in pairs) / 2
    g = sum(math.log(1 + math.exp(-(f - r))) for r, f in pairs) / 2
    loss = build_loss("rpgan")
    assert loss.g_needs_real
    assert loss.discriminator(REAL, FAKE).item() == pytest.approx(d, rel=1e-6)
    assert loss.generator(FAKE, REAL).item() == pytest.approx(g, rel=1e-6)
    assert loss.discriminator(REAL, FAKE).item() != pytest.approx(
        build_loss("relativistic").discriminator(REAL, FAKE).item(), rel=1e-3
    )


def test_losses_are_float32_under_bfloat16_logits():
    for name in LOSSES:
        loss = build_loss(name)
        d = loss.discriminator(REAL.bfloat16(), FAKE.bfloat16())
        g = loss.generator(FAKE.bfloat16(), REAL.bfloat16())
        assert d.dtype == g.dtype == torch.float32, name


class Linear(torch.nn.Module):
    """D(x) = <w, x>: its input gradient is w for every x."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x: torch.Tensor, labels=None) -> torch.Tensor:
        return (x * self.w).flatten(1).sum(1)


def d_step(critic, real: torch.Tensor, fake: torch.Tensor, batch: int = 1) -> DStep:
    seen = [Seen(x, None, critic(x)) for x in (real, fake)]
    return DStep(*seen, critic=critic, batch=batch, mean_over_ranks=lambda t: t)


def test_gradient_penalties_of_a_linear_discriminator():
    w = torch.full((1, 2, 2), 0.5)  # ||w||^2 = 1
    d = Linear(w.clone())
    x, y = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    assert squared_input_gradient(d, Seen(x, None, None)).tolist() == pytest.approx([1.0] * 5)
    # R1 = gamma/2 E||grad||^2 at the reals, R2 at the fakes; WGAN-GP lambda (||grad|| - 1)^2
    assert GradientPenalty("real", 4.0).d_term(d_step(d, x, y)).item() == pytest.approx(2.0)
    assert GradientPenalty("fake", 4.0).d_term(d_step(d, x, y)).item() == pytest.approx(2.0)
    assert WGANGP(10.0).d_term(d_step(d, x, y)).item() == pytest.approx(0.0, abs=1e-5)
    twice = Linear(2 * w)  # ||grad|| = 2: (2 - 1)^2 = 1
    assert WGANGP(10.0).d_term(d_step(twice, x, y)).item() == pytest.approx(10.0, rel=1e-5)
    # the penalty has a graph: its gradient reaches D's weights (d ||w||^2 / dw = 2w)
    squared_input_gradient(d, Seen(x, None, None)).mean().backward()
    assert torch.allclose(d.w.grad, 2 * w)


def test_a_lazy_penalty_is_due_every_kth_step_and_k_times_as_strong():
    d, x = Linear(torch.full((1, 2, 2), 0.5)), torch.randn(3, 1, 2, 2)
    r1 = GradientPenalty("real", 2.0, every=4)
    assert r1.input_grads(3) == set() and r1.d_term(d_step(d, x, x, batch=3)) is None
    step = d_step(d, x, x, batch=8)
    assert r1.input_grads(8) == {"real"}
    assert r1.d_term(step).item() == pytest.approx(4 * 1.0)
    assert step.logs["train/r1"].item() == pytest.approx(1.0)  # the unscaled value


def test_the_penalty_reuses_ds_forward_when_its_input_requires_grad():
    d, x = Linear(torch.full((1, 2, 2), 0.5)), torch.randn(3, 1, 2, 2).requires_grad_(True)
    calls = []
    counted = lambda images, labels=None: calls.append(1) or d(images)  # noqa: E731
    seen = Seen(x, None, d(x))
    squared_input_gradient(counted, seen)
    assert calls == []  # no second forward of D
    squared_input_gradient(counted, Seen(x.detach(), None, seen.logits))
    assert calls == [1]


def test_lecam_by_hand_and_its_moving_averages():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.0])
    lecam = LeCam(weight=2.0)
    lecam.ema.copy_(torch.tensor([0.5, 2.0]))  # (a_R, a_F)
    step = DStep(
        Seen(real, None, real), Seen(fake, None, fake), critic=None, batch=1,
        mean_over_ranks=lambda t: t,
    )  # fmt: skip
    # relu(r - 2)^2 -> [0, 1]; relu(0.5 - f)^2 -> [2.25, 0.25]
    assert lecam.d_term(step).item() == pytest.approx(2.0 * (0.5 + 1.25))
    # decay 0.99 towards the batch means (2, -0.5)
    assert lecam.ema.tolist() == pytest.approx([0.5 + 0.01 * 1.5, 2.0 + 0.01 * -2.5])


def test_mode_seeking_is_the_inverse_image_to_latent_distance_ratio():
    z = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0], [1.0, 3.0]])  # pairs (0, 2), (1, 3)
    images = torch.zeros(4, 1, 2, 2)
    images[2] += 0.5
    images[3] -= 0.5
    # mean |G(z1) - G(z2)| = 0.5 over mean |z1 - z2| = (2 + 0 + 0 + 2) / 4 = 1
    assert mode_seeking(images, z).item() == pytest.approx(1 / (0.5 + 1e-5))
    # G mapping two latents to one image is penalised hardest (1 / eps)
    assert mode_seeking(torch.zeros(4, 1, 2, 2), z).item() == pytest.approx(1e5)


def test_every_regularizer_option_builds_and_refuses_a_bad_value_by_its_own_key():
    for name in options("model/regularizers"):
        built = part("model/regularizers", name)
        if isinstance(built, dict):  # an option of several penalties (r3gan: R1 and R2)
            assert built and all(each.weight >= 0 for each in built.values()), name
            continue
        assert built.weight >= 0, name
        with pytest.raises(ConfigError, match=r"^weight=-1: allowed: a number >= 0"):
            part("model/regularizers", name, weight=-1)
    r3gan = part("model/regularizers", "r3gan")
    assert (r3gan["r1"].side, r3gan["r2"].side) == ("real", "fake")
    assert (part("model/regularizers", "r1").side, part("model/regularizers", "r2").side) == (
        "real", "fake")  # fmt: skip
    with pytest.raises(ConfigError, match=r"^every=0: allowed: an integer >= 1"):
        part("model/regularizers", "r1", every=0)
    with pytest.raises(ConfigError, match=r"^side='middle': allowed: real, fake"):
        GradientPenalty("middle", 1.0)


def test_mode_seeking_trains_a_conditional_module_with_paired_classes():
    from tests.helpers import fit_batches, tiny_module

    module = tiny_module(
        num_classes=10, regularizers={"mode_seeking": part("model/regularizers", "mode_seeking")}
    )
    trainer = fit_batches(module, 2)
    assert torch.isfinite(trainer.callback_metrics["train/loss_g"])
