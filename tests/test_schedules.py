"""R3GAN's schedules (lr, beta2, gamma, EMA half-life, augmentation p over the images seen) and
adaptive augmentation (ADA's p from E[sign(D(real))]): values, checks, exact resume."""

import math
from functools import partial

import pytest
import torch
from pytorch_lightning import Callback

from src.errors import ConfigError
from src.models.augment import Augment
from src.models.ema import EMAGenerator
from src.models.optim import Optimizers
from src.models.regularizers import GradientPenalty
from src.models.schedules import Cosine
from tests.helpers import (
    adam,
    assert_same_state,
    fit_batches,
    policies,
    resumed_and_straight,
    tiny_module,
)


def reference(cur_nimg, base_value, total_nimg, final_value=0.0, warmup_value=0.0, warmup_nimg=0):
    """brownvc/R3GAN training_loop.cosine_decay_with_warmup (no hold), the oracle."""
    decay = 0.5 * (1 + math.cos(math.pi * (cur_nimg - warmup_nimg) / (total_nimg - warmup_nimg)))
    value = base_value + (1 - decay) * (final_value - base_value)
    if warmup_nimg > 0 and cur_nimg < warmup_nimg:
        value = (base_value - warmup_value) / warmup_nimg * cur_nimg + warmup_value
    return final_value if cur_nimg > total_nimg else value


@pytest.mark.parametrize("warmup", [0, 2e6])
def test_cosine_is_the_reference_schedule(warmup):
    schedule = Cosine(2e-4, 5e-5, 2e7, warmup_images=warmup, warmup_start=1e-6).checked("k")
    for seen in (0, 1e5, 1e6, 2e6, 5e6, 1e7, 1.99e7, 2e7, 3e7):
        expected = reference(seen, 2e-4, 2e7, 5e-5, 1e-6, warmup)
        assert schedule(seen, run_images=1e9) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    over_the_run = Cosine(0.9, 0.99).checked("k")  # images: null -> the run's length
    assert over_the_run(50, run_images=100) == pytest.approx(reference(50, 0.9, 100, 0.99))


class Record(Callback):
    """What the optimizers, the penalty, the EMA and the augmentation held after each batch."""

    def __init__(self):
        self.rows = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        opt_d, opt_g = module.optimizer.built
        self.rows.append({
            "seen": module.images_seen,
            "lr": (opt_d.param_groups[0]["lr"], opt_g.param_groups[0]["lr"]),
            "beta2": (opt_d.param_groups[0]["betas"][1], opt_g.param_groups[0]["betas"][1]),
            "gamma": module.regularizers["r1"].weight,
            "ema": float(module.generator_ema.scheduled_decay),
            "p": module.augmentation.p,
        })  # fmt: skip


def schedules(images=None):
    return {
        "lr": Cosine(1.0, 0.25, images), "beta2": Cosine(0.9, 0.99, images),
        "gamma": Cosine(0.05, 0.005, images),
        "ema_half_life": Cosine(0.0, 64.0, images), "augment_p": Cosine(0.0, 0.55, images),
    }  # fmt: skip


def scheduled_module(**overrides):
    """The tiny module with every part following its schedule of `schedules()`."""
    plan = schedules()
    kwargs = dict(
        lr=2e-4, momentum=0.0, schedules={"lr": plan["lr"], "beta2": plan["beta2"]},
        ema=partial(EMAGenerator, decay=0.999, half_life=plan["ema_half_life"]),
        regularizers={"r1": GradientPenalty("real", 0.05, schedule=plan["gamma"])},
        augmentation=Augment(policies("translation", "xflip"), p=0.0,
                             schedule=plan["augment_p"]),
    )  # fmt: skip
    return tiny_module(**(kwargs | overrides))


def test_each_batch_sets_the_values_of_the_images_seen_before_it():
    module = scheduled_module()
    record = Record()
    fit_batches(module, 6, callbacks=[record])
    run = 6 * 8  # 6 batches of 8 images: the length of a schedule with images: null
    for row in record.rows:
        before = row["seen"] - 8
        value = {name: s(before, run) for name, s in schedules().items()}
        assert row["lr"] == pytest.approx((2e-4 * value["lr"],) * 2)
        assert row["beta2"] == pytest.approx((value["beta2"],) * 2)
        assert row["gamma"] == pytest.approx(value["gamma"])
        assert row["ema"] == pytest.approx(0.5 ** (8 / max(value["ema_half_life"], 1e-8)))
        assert row["p"] == pytest.approx(value["augment_p"])
    assert [row["seen"] for row in record.rows] == [8, 16, 24, 32, 40, 48]
    assert record.rows[0]["ema"] == 0  # a half-life of 0 images: the first update copies G


OWNERS = [  # (what a schedule drives, built with it, the line it is refused with)
    (lambda s: Optimizers(adam(), adam(), 2e-4, 0.5, schedules={"lr": s}),
     "optimizer.schedules.lr.start=-1: allowed: a number >= 0"),
    (lambda s: Optimizers(adam(), adam(), 2e-4, 0.5, schedules={"beta2": s}),
     r"optimizer.schedules.beta2.start=-1: allowed: a number in \[0, 1\)"),
    (lambda s: GradientPenalty("real", 1.0, schedule=s),
     "schedule.start=-1: allowed: a number >= 0"),
    (lambda s: EMAGenerator(torch.nn.Linear(1, 1), 0.9, half_life=s),
     "model.ema.half_life.start=-1: allowed: a number >= 0"),
    (lambda s: Augment(policies("xflip"), p=0.0, target=None, schedule=s),
     r"model.augmentation.schedule.start=-1: allowed: a number in \[0, 1\]"),
]  # fmt: skip


@pytest.mark.parametrize(("build", "message"), OWNERS)
def test_every_value_a_schedule_can_take_is_checked_by_the_owner_of_what_it_drives(build, message):
    build(Cosine(0.5, 0.5))  # within every range
    with pytest.raises(ConfigError, match=message):
        build(Cosine(-1, 0.5))
    if "[0, 1" in message:  # bounded above too (beta2, p)
        with pytest.raises(ConfigError, match=message.replace("start=-1", "end=3")):
            build(Cosine(0.5, 3))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Optimizers(adam(), adam(), 2e-4, 0.5, scheduler=lambda o, n: None,
                            schedules={"lr": Cosine(1, 0)}),
         "optimizer.schedules.lr='a schedule': optimizer.scheduler schedules the lr too"),
        (lambda: scheduled_module(optimizer="sgd", schedules={"beta2": Cosine(0.9, 0.99)}),
         "optimizer.schedules.beta2='a schedule': the optimizers have no betas"),
        (lambda: Augment(policies("xflip"), target=0.6, schedule=Cosine(0, 1)),
         "model.augmentation.target adapts p itself"),
        (lambda: Optimizers(adam(), adam(), 2e-4, 0.5, schedules={"gamma": Cosine(1, 0)}),
         "optimizer.schedules='gamma': allowed: lr, beta2"),
        (lambda: Cosine(1, 0, images=10, warmup_images=20).checked("k"),
         "k.warmup_images=20: allowed: fewer than k.images=10"),
        (lambda: Cosine("high", 0).checked("k"), "k.start='high'"),
        (lambda: GradientPenalty("real", 1.0, schedule={"start": 1}), "schedule=.*allowed: {_t"),
        (lambda: Augment(policies("xflip"), target=1.5), r"target=1.5: allowed: .*\(0, 1\)"),
        (lambda: Augment(p=-0.1), r"model.augmentation.p=-0.1: allowed: a number in \[0, 1\]"),
    ],
)  # fmt: skip
def test_a_schedule_or_ada_setting_that_cannot_apply_is_one_error(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


def test_ada_moves_p_toward_the_target_by_the_published_step_and_keeps_it_in_0_1():
    ada = Augment(policies("xflip"), p=0.5, target=0.6, interval=2, speed_images=1000)
    mean = lambda t: t  # noqa: E731  (one rank)
    confident = torch.full((10,), 3.0)  # sign +1 on every real image: r_t = 1 > 0.6
    assert "train/ada_rt" not in ada.observe(confident, 1, 10, mean)
    assert float(ada.p) == 0.5  # adjusted only every `interval` batches
    logs = ada.observe(confident, 2, 10, mean)
    assert float(logs["train/ada_rt"]) == 1.0
    assert float(ada.p) == pytest.approx(0.5 + 2 * 10 / 1000)
    unsure = torch.tensor([1.0, -1.0, -2.0, 4.0, -1.0])  # r_t = -0.2 < 0.6: p falls
    for batch in range(3, 200):
        ada.observe(unsure, batch, 10, mean)
    assert float(ada.p) == 0.0
    assert ada.signs.tolist() == [-1.0, 5.0]  # the odd batch since the last adjustment


def test_ada_averages_r_t_over_ranks_before_moving_p():
    """Rank A alone is confident, but the ranks' mean r_t is below target: p falls on both."""
    a, b = (Augment(policies("xflip"), p=0.5, target=0.6, interval=1) for _ in range(2))
    logits = {id(a): torch.ones(4), id(b): -torch.ones(4)}
    stats = {}
    for ada in (a, b):  # each rank's sums, then the all-reduce mean (what gan_ddp's reduce does)
        ada.signs += torch.stack([logits[id(ada)].sign().sum(), torch.tensor(4.0)])
        stats[id(ada)] = ada.signs.clone()
        ada.signs.zero_()
    mean = lambda _: (stats[id(a)] + stats[id(b)]) / 2  # noqa: E731
    for ada in (a, b):
        ada.observe(torch.zeros(0), 1, 8, mean)
    assert float(a.p) == float(b.p) < 0.5


def test_p_applies_each_policy_to_that_share_of_the_images():
    torch.manual_seed(0)
    images = torch.arange(64.0).view(1, 1, 8, 8).repeat(4000, 1, 1, 1) / 64
    for p in (0.0, 0.3, 1.0):
        flipped = Augment(policies("rot90"), p=p)(images)
        changed = (flipped != images).flatten(1).any(1).float().mean()
        assert float(changed) == pytest.approx(p * 0.75, abs=0.03)  # rot90: 3 of 4 rotate


@pytest.mark.slow  # three training runs
def test_resume_with_schedules_and_ada_is_bitwise(train_entry, tmp_path):
    """The images seen (schedules' state) and ADA's p and sign counts (buffers) continue: one
    epoch + resume to two equals two epochs, bitwise; each schedule spans the two epochs (in
    images: one over "the run" would differ between a 1- and a 2-epoch run)."""
    cosine = "{_target_:src.models.schedules.Cosine,start:%s,end:%s,images:128}"
    settings = [
        "model=r3gan", "optimizer=adam", "optimizer.momentum=0", "model.augmentation.interval=3",
        "model/augmentation/policies=[xflip,rot90,translation,color,cutout]",
        "model.augmentation.p=0.5", "model.augmentation.speed_images=1000",
        f"+optimizer.schedules.lr={cosine % (1, 0.25)}",
        f"+optimizer.schedules.beta2={cosine % (0.9, 0.99)}",
        *(f"model.regularizers.{name}.schedule.images=128" for name in ("r1", "r2")),
        "model.ema.half_life.end=50", "model.ema.half_life.images=128",
    ]  # fmt: skip
    a, b = resumed_and_straight(train_entry, settings, tmp_path)
    assert int(a["state_dict"]["_extra_state"]) == 8 * 16
    assert float(a["state_dict"]["augmentation.p"]) != 0.5  # moved, 3 x 16 / 1000 a step
    assert_same_state(a, b)


def test_ada_without_policies_adapts_nothing():
    """ADA (a target) without policies: no augmentation, no p, no error."""
    module = tiny_module(augmentation=Augment({}, p=0.0, target=0.6))
    assert not module.augmentation.adaptive and "augmentation.p" not in module.state_dict()
    images = torch.randn(2, 1, 16, 16)
    assert module.augment(images) is images
