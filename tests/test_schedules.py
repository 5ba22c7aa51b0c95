"""R3GAN's schedules (lr, beta2, gamma, EMA half-life, augmentation p over the images seen) and
adaptive augmentation (ADA's p from E[sign(D(real))]): values, checks, exact resume."""

import math

import pytest
import torch
from pytorch_lightning import Callback

from src.errors import ConfigError
from src.models.augment import Augment
from src.models.schedules import Cosine
from tests.helpers import assert_same_state, fit_batches, resumed_and_straight, tiny_module


def reference(cur_nimg, base_value, total_nimg, final_value=0.0, warmup_value=0.0, warmup_nimg=0):
    """brownvc/R3GAN training_loop.cosine_decay_with_warmup (no hold), the oracle."""
    decay = 0.5 * (1 + math.cos(math.pi * (cur_nimg - warmup_nimg) / (total_nimg - warmup_nimg)))
    value = base_value + (1 - decay) * (final_value - base_value)
    if warmup_nimg > 0 and cur_nimg < warmup_nimg:
        value = (base_value - warmup_value) / warmup_nimg * cur_nimg + warmup_value
    return final_value if cur_nimg > total_nimg else value


@pytest.mark.parametrize("warmup", [0, 2e6])
def test_cosine_is_the_reference_schedule(warmup):
    schedule = Cosine(2e-4, 5e-5, 2e7, warmup_images=warmup, warmup_start=1e-6).check("k")
    for seen in (0, 1e5, 1e6, 2e6, 5e6, 1e7, 1.99e7, 2e7, 3e7):
        expected = reference(seen, 2e-4, 2e7, 5e-5, 1e-6, warmup)
        assert schedule(seen, run_images=1e9) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    over_the_run = Cosine(0.9, 0.99).check("k")  # images: null -> the run's length
    assert over_the_run(50, run_images=100) == pytest.approx(reference(50, 0.9, 100, 0.99))


class Record(Callback):
    """What the optimizers, the penalty, the EMA and the augmentation held after each batch."""

    def __init__(self):
        self.rows = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        opt_d, opt_g = module.built_optimizers
        self.rows.append({
            "seen": module.schedules.images_seen,
            "lr": (opt_d.param_groups[0]["lr"], opt_g.param_groups[0]["lr"]),
            "beta2": (opt_d.param_groups[0]["betas"][1], opt_g.param_groups[0]["betas"][1]),
            "gamma": module.regularizers["r1"].weight,
            "ema": float(module.generator_ema.scheduled_decay),
            "p": module.augmentation.p,
        })  # fmt: skip


def schedules(images=None):
    return {
        "lr": Cosine(1.0, 0.25, images), "beta2": Cosine(0.9, 0.99, images),
        "penalty_weight": Cosine(0.05, 0.005, images),
        "ema_half_life": Cosine(0.0, 64.0, images), "augment_p": Cosine(0.0, 0.55, images),
    }  # fmt: skip


def test_each_batch_sets_the_values_of_the_images_seen_before_it():
    module = tiny_module(lr=2e-4, momentum=0.0, schedules=schedules(), ema_decay=0.999,
                         penalty="r1", augment=["translation", "xflip"])  # fmt: skip
    record = Record()
    fit_batches(module, 6, callbacks=[record])
    run = 6 * 8  # 6 batches of 8 images: the length of a schedule with images: null
    for row in record.rows:
        before = row["seen"] - 8
        value = {name: s(before, run) for name, s in schedules().items()}
        assert row["lr"] == pytest.approx((2e-4 * value["lr"],) * 2)
        assert row["beta2"] == pytest.approx((value["beta2"],) * 2)
        assert row["gamma"] == pytest.approx(value["penalty_weight"])
        assert row["ema"] == pytest.approx(0.5 ** (8 / max(value["ema_half_life"], 1e-8)))
        assert row["p"] == pytest.approx(value["augment_p"])
    assert [row["seen"] for row in record.rows] == [8, 16, 24, 32, 40, 48]
    assert record.rows[0]["ema"] == 0  # a half-life of 0 images: the first update copies G


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"schedules": {"lr": Cosine(1, 0)}, "scheduler": lambda o, n: None},
         "model.schedules.lr='a schedule': optimizer.scheduler schedules the lr too"),
        ({"schedules": {"beta2": Cosine(0.9, 0.99)}, "optimizer": "sgd"},
         "model.schedules.beta2='a schedule': the optimizers have no betas"),
        ({"schedules": {"penalty_weight": Cosine(1, 0)}}, "no penalty to weigh"),
        ({"schedules": {"ema_half_life": Cosine(0, 1e4)}}, "there is no EMA of G"),
        ({"schedules": {"augment_p": Cosine(0, 1)}, "ada_target": 0.6, "augment": ["xflip"]},
         "model.ada_target adapts p itself"),
        ({"schedules": {"gamma": Cosine(1, 0)}}, "model.schedules='gamma': allowed: lr, beta2"),
        ({"schedules": {"lr": Cosine(1, 0, images=10, warmup_images=20)}},
         "model.schedules.lr.warmup_images=20: allowed: fewer than model.schedules.lr.images=10"),
        ({"schedules": {"lr": Cosine("high", 0)}}, "model.schedules.lr.start='high'"),
        ({"ada_target": 1.5, "augment": ["xflip"]}, r"model.ada_target=1.5: allowed: .*\(0, 1\)"),
        ({"augment_p": -0.1}, r"model.augment_p=-0.1: allowed: a number in \[0, 1\]"),
    ],
)  # fmt: skip
def test_a_schedule_or_ada_setting_that_cannot_apply_is_one_error(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        tiny_module(**kwargs)


def test_ada_moves_p_toward_the_target_by_the_published_step_and_keeps_it_in_0_1():
    ada = Augment(["xflip"], p=0.5, target=0.6, interval=2, speed_images=1000)
    mean = lambda t: t  # noqa: E731  (one rank)
    confident = torch.full((10,), 3.0)  # sign +1 on every real image: r_t = 1 > 0.6
    assert "train/ada_rt" not in ada.observe(lambda: confident, 1, 10, mean)
    assert float(ada.p) == 0.5  # adjusted only every `interval` batches
    logs = ada.observe(lambda: confident, 2, 10, mean)
    assert float(logs["train/ada_rt"]) == 1.0
    assert float(ada.p) == pytest.approx(0.5 + 2 * 10 / 1000)
    unsure = torch.tensor([1.0, -1.0, -2.0, 4.0, -1.0])  # r_t = -0.2 < 0.6: p falls
    for batch in range(3, 200):
        ada.observe(lambda: unsure, batch, 10, mean)
    assert float(ada.p) == 0.0
    assert ada.signs.tolist() == [-1.0, 5.0]  # the odd batch since the last adjustment


def test_ada_averages_r_t_over_ranks_before_moving_p():
    """Rank A alone is confident, but the ranks' mean r_t is below target: p falls on both."""
    a, b = (Augment(["xflip"], p=0.5, target=0.6, interval=1) for _ in range(2))
    logits = {id(a): torch.ones(4), id(b): -torch.ones(4)}
    stats = {}
    for ada in (a, b):  # each rank's sums, then the all-reduce mean (what gan_ddp's reduce does)
        ada.signs += torch.stack([logits[id(ada)].sign().sum(), torch.tensor(4.0)])
        stats[id(ada)] = ada.signs.clone()
        ada.signs.zero_()
    mean = lambda _: (stats[id(a)] + stats[id(b)]) / 2  # noqa: E731
    for ada in (a, b):
        ada.observe(lambda: torch.zeros(0), 1, 8, mean)
    assert float(a.p) == float(b.p) < 0.5


def test_p_applies_each_policy_to_that_share_of_the_images():
    torch.manual_seed(0)
    images = torch.arange(64.0).view(1, 1, 8, 8).repeat(4000, 1, 1, 1) / 64
    for p in (0.0, 0.3, 1.0):
        flipped = Augment(["rot90"], p=p)(images)
        changed = (flipped != images).flatten(1).any(1).float().mean()
        assert float(changed) == pytest.approx(p * 0.75, abs=0.03)  # rot90: 3 of 4 rotate


@pytest.mark.slow  # three training runs
def test_resume_with_schedules_and_ada_is_bitwise(train_entry, tmp_path):
    """The images seen (schedules' state) and ADA's p and sign counts (buffers) continue: one
    epoch + resume to two equals two epochs, bitwise; each schedule spans the two epochs (in
    images: one over "the run" would differ between a 1- and a 2-epoch run)."""
    cosine = "{_target_:src.models.schedules.Cosine,start:%s,end:%s,images:128}"
    settings = [
        "model=r3gan", "optimizer=adam", "optimizer.momentum=0", "model.ada_target=0.6",
        "model.ada_interval=3", "model.augment=[xflip,rot90,translation,color,cutout]",
        "model.augment_p=0.5", "model.ada_images=1000", f"+model.schedules.lr={cosine % (1, 0.25)}",
        *(f"model.schedules.{name}.images=128" for name in ("beta2", "penalty_weight")),
        "model.schedules.ema_half_life.end=50", "model.schedules.ema_half_life.images=128",
    ]  # fmt: skip
    a, b = resumed_and_straight(train_entry, settings, tmp_path)
    assert int(a["state_dict"]["schedules._extra_state"]) == 8 * 16
    assert float(a["state_dict"]["augmentation.p"]) != 0.5  # moved, 3 x 16 / 1000 a step
    assert_same_state(a, b)


def test_each_loss_gives_ada_the_verdict_at_its_own_boundary():
    """r_t = E[sign(verdict)]: least squares separates at 0.5 (targets 1 and 0), so logits of
    0.3 are taken for fake although positive; the relativistic losses compare with fake."""
    from src.models.losses import LOSSES

    real, fake = torch.tensor([0.3, 0.7, 2.0]), torch.tensor([0.5, 1.0, 1.0])
    expected = {
        "bce": [1, 1, 1], "hinge": [1, 1, 1], "least_squares": [-1, 1, 1],
        "wasserstein": [-1, -1, 1], "relativistic": [-1, -1, 1], "rpgan": [-1, -1, 1],
    }  # fmt: skip
    assert set(expected) == set(LOSSES)
    for name, signs in expected.items():
        assert LOSSES[name]().verdict(real, fake).sign().tolist() == signs, name


def test_ada_without_policies_adapts_nothing():
    """model.augment=[] under an adaptive default: no augmentation, no p, no error."""
    module = tiny_module(augment=[], ada_target=0.6)
    assert not module.augmentation.adaptive and "augmentation.p" not in module.state_dict()
    images = torch.randn(2, 1, 16, 16)
    assert module.augment(images) is images
