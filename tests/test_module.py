"""The alternating updates, run through a real Lightning Trainer on real digits."""

from functools import partial

import pytest
import torch

from src.errors import ConfigError
from src.models.augment import Augment
from src.models.ema import EMAGenerator
from src.models.optim import LinearDecayLR
from tests.helpers import fit_batches, options, part, policies, tiny_module

LOSSES = options("model/loss")


def regularizer(name: str, **overrides) -> dict:
    return {name: part("model/regularizers", name, **overrides)}


def make_module(**kwargs):
    return tiny_module(**kwargs)


def fit_one_batch(module):
    fit_batches(module, 1)
    return module


def params(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_d_step_leaves_generator_untouched():
    # With d_steps_per_g_step=2 the first batch is a D-only batch.
    module = make_module(d_steps_per_g_step=2)
    g_before, d_before = params(module.generator), params(module.discriminator)
    fit_one_batch(module)
    assert same(params(module.generator), g_before)
    assert not same(params(module.discriminator), d_before)


def test_g_step_leaves_discriminator_untouched_and_computes_no_d_weight_grads():
    d_only = fit_one_batch(make_module(d_steps_per_g_step=2))
    both = make_module(d_steps_per_g_step=1)
    g_before = params(both.generator)
    d_grad_calls = [0]
    for p in both.discriminator.parameters():
        p.register_hook(lambda grad: d_grad_calls.__setitem__(0, d_grad_calls[0] + 1))
    fit_one_batch(both)
    # Same seed, same batch: D after "D step + G step" equals D after the D step alone.
    assert same(params(both.discriminator), params(d_only.discriminator))
    assert not same(params(both.generator), g_before)
    # One gradient per D parameter (from the D step): the G step computed none for D.
    assert d_grad_calls[0] == len(list(both.discriminator.parameters()))
    assert all(p.requires_grad for p in both.discriminator.parameters())  # restored


def test_ema_generator_is_swa_utils_averaged_model_with_warm_up():
    module = fit_one_batch(make_module(ema=partial(EMAGenerator, decay=0.5)))
    ema = module.generator_ema
    # AveragedModel copies G at its first update; its counter is state (exact resume).
    assert int(ema.n_averaged) == 1
    assert module.sampling_generator is ema.module
    assert same(params(ema.module), params(module.generator))
    before = params(ema.module)
    with torch.no_grad():
        for p in module.generator.parameters():
            p.add_(1.0)
    ema.update_parameters(module.generator)
    # Warm-up: after n=1 update the decay is min(0.5, (1 + 1) / (10 + 1)) = 2/11.
    for avg, old, raw in zip(params(ema.module), before, params(module.generator), strict=True):
        assert torch.allclose(avg, 2 / 11 * old + 9 / 11 * raw, atol=1e-6)
    assert "generator_ema.n_averaged" in module.state_dict()


def test_samples_use_running_statistics_and_leave_the_mode_alone():
    module = make_module()
    module.generator.train()
    images = module.sample(module.fixed_noise[:3])
    assert images.shape == (3, 1, 16, 16)
    assert module.generator.training
    # Inference-mode BatchNorm: a sample does not depend on the rest of the batch.
    assert torch.allclose(module.sample(module.fixed_noise[:1]), images[:1], atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1.0}, "optimizer.lr=-1.0: allowed: a number > 0"),
        ({"momentum": 1.0}, r"optimizer.momentum=1.0: allowed: a number in \[0, 1\)"),
        ({"d_steps_per_g_step": 0}, "model.d_steps_per_g_step=0: allowed: an integer >= 1"),
        ({"ema": partial(EMAGenerator, decay=1.0)}, r"model.ema.decay=1.0: allowed: a num"),
        ({"loss": object()}, "model.loss=<object .*: allowed: a Loss; a built-in one is chosen"),
        ({"regularizers": {"x": 3}}, "model.regularizers.x=3: allowed: a Regularizer"),
    ],
)
def test_bad_module_settings_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make_module(**kwargs)


def test_what_torch_refuses_in_an_optimizer_names_its_key():
    from src.models.optim import Optimizers, build_optimizer
    from tests.helpers import adam

    net = torch.nn.Linear(2, 2)
    with pytest.raises(ConfigError, match="optimizer.generator.lr=-1.0: Adam refused it"):
        build_optimizer(adam(lr=-1.0), net, "optimizer.generator")
    with pytest.raises(ConfigError, match="optimizer.generator.lr=0.0: allowed: a finite"):
        build_optimizer(adam(lr=0.0), net, "optimizer.generator")
    with pytest.raises(ConfigError, match="optimizer.scale_lr='cubic': allowed: none, linear"):
        Optimizers(adam(), adam(), 2e-4, 0.5, scale_lr="cubic")


def d_inputs(augment: list[str]) -> list[torch.Tensor]:
    """What D saw during one batch (real, fake, fake again for G's step)."""
    module = make_module(augmentation=Augment(policies(*augment)))
    seen: list[torch.Tensor] = []
    module.discriminator.register_forward_pre_hook(lambda _, args: seen.append(args[0].detach()))
    fit_one_batch(module)
    return seen


def test_diff_augment_reaches_d_and_a_policy_that_is_not_callable_is_refused():
    plain, augmented = d_inputs([]), d_inputs(["translation", "cutout"])
    assert len(plain) == len(augmented) == 3
    # the same real batch (same seed): D sees it shifted and with a square blanked to black
    assert not torch.equal(plain[0], augmented[0])
    assert (augmented[0] == -1).float().mean() > (plain[0] == -1).float().mean()
    with pytest.raises(ConfigError, match=r"model.augmentation.policies.flip='yes': allowed"):
        Augment({"flip": "yes"})


def test_ema_batchnorm_statistics_are_measured_for_the_ema_weights():
    module = fit_one_batch(make_module(ema=partial(EMAGenerator, decay=0.9)))
    ema = module.sampling_generator
    norm = next(m for m in ema.modules() if isinstance(m, torch.nn.BatchNorm2d))
    # Recompute what the first BatchNorm sees for the EMA weights from many noise batches.
    z = torch.randn(4096, ema.latent_dim)
    features = ema.net[0](z.view(-1, ema.latent_dim, 1, 1))
    assert torch.allclose(norm.running_mean, features.mean((0, 2, 3)), atol=0.05)
    assert norm.momentum == 0.1  # restored after calibration


def test_linear_decay_holds_the_lr_then_falls_to_zero_at_the_last_step():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.4)
    schedule = LinearDecayLR(optimizer, total_steps=10, decay_start=0.6)
    lrs = []
    for _ in range(10):
        optimizer.step()
        schedule.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.4] * 6 + [0.3, 0.2, 0.1, 0.0])
    assert set(schedule.state_dict()) >= {"last_epoch", "base_lrs"}  # plain data only
    torch.save(schedule.state_dict(), "/dev/null")
    with pytest.raises(ValueError, match=r"optimizer.scheduler.decay_start=1.5: allowed"):
        LinearDecayLR(optimizer, total_steps=10, decay_start=1.5)


@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_trains_under_bf16_autocast(loss):
    from src.callbacks.health import Health

    penalty = "wgan_gp" if loss == "wasserstein" else "r1"
    module = tiny_module(loss=loss, regularizers=regularizer(penalty, weight=1.0))
    before = params(module.generator)
    health = Health()
    fit_batches(module, 2, precision="bf16-mixed", callbacks=[health])
    assert health.total.item() == 0  # no skipped (non-finite) update
    assert all(torch.isfinite(p).all() for p in module.parameters())
    assert not same(params(module.generator), before)


@pytest.mark.parametrize("penalty", ["r1", "r2", "wgan_gp"])
def test_a_penalty_changes_d_steps_and_a_lazy_one_only_every_kth(penalty):
    plain = fit_one_batch(make_module())
    every = fit_one_batch(make_module(regularizers=regularizer(penalty, weight=5.0)))
    lazy = fit_one_batch(make_module(regularizers=regularizer(penalty, weight=5.0, every=2)))
    # batch 1: the penalty is due with every=1, not with every=2
    assert not same(params(every.discriminator), params(plain.discriminator))
    assert same(params(lazy.discriminator), params(plain.discriminator))
    lazy_two = make_module(regularizers=regularizer(penalty, weight=5.0, every=2))
    plain_two = make_module()
    fit_batches(lazy_two, 2)
    fit_batches(plain_two, 2)
    assert not same(params(lazy_two.discriminator), params(plain_two.discriminator))


def test_lecam_moving_averages_are_module_state():
    module = fit_one_batch(make_module(regularizers=regularizer("lecam")))
    state = module.state_dict()
    assert "regularizers.lecam.ema" in state  # saved in checkpoints, restored on resume
    assert state["regularizers.lecam.ema"].abs().sum() > 0
    assert not any("regularizers" in k for k in make_module().state_dict())  # only when enabled


def test_a_regularizer_from_outside_src_models_trains_through_the_cli(train_entry, tmp_path):
    """model.regularizers takes any Regularizer by _target_; nothing in gan_module.py knows it.
    On the first batch (same seed, same weights) D's loss grows by exactly weight x drift."""
    import csv

    term = ["+model.regularizers.drift._target_=tests.helpers.DriftPenalty",
            "+model.regularizers.drift.weight=0.5"]  # fmt: skip
    first = {}
    for name, extra in (("plain", []), ("drift", term)):
        status, err = train_entry(*extra, run_dir=tmp_path / name)
        assert status == 0, err
        with open(tmp_path / name / "metrics.csv") as file:
            first[name] = next(csv.DictReader(file))
    drift = float(first["drift"]["train/drift"])
    assert drift > 0 and "train/drift" not in first["plain"]
    gained = float(first["drift"]["train/loss_d"]) - float(first["plain"]["train/loss_d"])
    assert gained == pytest.approx(0.5 * drift, rel=1e-4)


def test_a_whole_momentum_gives_adam_float_betas():
    """optimizer.momentum=0 is an int on the command line; Adam refuses mixed int/float betas."""
    from functools import partial

    from src.models.optim import build_optimizer

    adam = partial(torch.optim.Adam, lr=2e-4, betas=[0, 0.99])
    optimizer = build_optimizer(adam, torch.nn.Linear(2, 2), "optimizer.generator")
    assert optimizer.param_groups[0]["betas"] == (0.0, 0.99)
