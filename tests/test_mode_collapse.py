"""Issue 37: two options of every D against mode collapse, the minibatch standard deviation
(`model.discriminator.minibatch_std`) and packing (`model.pack`), on every architecture,
conditional or not, under every loss, penalty and augmentation."""

import pytest
import torch

from src.models import dcgan, r3gan, resnet, sngan
from src.models.conditional import MinibatchStd
from src.models.regularizers import GradientPenalty, Seen, squared_input_gradient
from tests.conftest import TINY
from tests.helpers import fit_batches, options, tiny_module

# (class, image size, width) small enough to run in milliseconds
ARCHITECTURES = {
    "dcgan": (dcgan.Discriminator, 16, 4),
    "sngan": (sngan.Discriminator, 32, 4),
    "resnet": (resnet.Discriminator, 32, 8),
    "r3gan": (r3gan.Discriminator, 16, 16),
}


def test_minibatch_std_tells_a_collapsed_batch_from_a_diverse_one():
    layer = MinibatchStd(4)
    diverse = torch.randn(8, 3, 4, 4)
    collapsed = diverse[:1].expand(8, 3, 4, 4)
    assert layer(diverse).shape == (8, 4, 4, 4)
    assert layer(collapsed)[:, 3].max() < 1e-3  # the std channel is ~0 where all are alike
    assert layer(diverse)[:, 3].min() > 0.5  # ~1 for unit Gaussians
    # a group holds images i, i + n/4, ...: each image sees its own group's spread
    grouped = torch.cat([torch.zeros(4, 3, 4, 4), torch.randn(4, 3, 4, 4)])
    std = layer(grouped)[:, 3, 0, 0]
    assert torch.equal(std[:4], std[4:])  # image i and i + 4 are in one group (of 4 groups of 2)
    # vectors (pooled features) get one more column; an odd batch the largest group dividing it
    assert layer(torch.randn(6, 5)).shape == (6, 6)
    assert layer(torch.randn(7, 5)).shape == (7, 6)  # 7: groups of 1 (7 is prime), std 0


@pytest.mark.parametrize("name", ARCHITECTURES)
@pytest.mark.parametrize("condition", [None, "projection", "acgan"])
def test_every_d_takes_both_options_conditional_or_not(name, condition):
    cls, size, width = ARCHITECTURES[name]
    classes = {"num_classes": 10, "condition": condition} if condition else {}
    plain = cls(size, 3, ndf=width, **classes)
    both = cls(size, 3, ndf=width, minibatch_std=4, pack=2, **classes)
    first = next(m for m in both.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == 6  # packing changes D's input channels: 2 images of 3
    assert sum(p.numel() for p in both.parameters()) > sum(p.numel() for p in plain.parameters())
    images, labels = torch.randn(8, 3, size, size), torch.randint(0, 10, (8,))
    out = both(images.reshape(4, 6, size, size), labels if condition else None)
    logits, classified = out if isinstance(out, tuple) else (out, None)
    assert logits.shape == (4,)  # one verdict per pack
    if condition == "acgan":
        assert classified.shape == (8, 10)  # a class per image
    # a collapsed batch and a diverse one differ in what D computes from the std feature
    single = cls(size, 3, ndf=width, minibatch_std=4, **classes)
    collapsed = images[:1].expand(8, -1, -1, -1)
    with torch.no_grad():
        h = single.features(collapsed)
        assert single.with_std(h)[:, -1].abs().max() < 1e-3
        assert single.with_std(single.features(images))[:, -1].abs().min() > 0


def test_packing_feeds_d_packs_and_the_penalty_reads_the_packed_input():
    module = tiny_module(discriminator=dcgan.Discriminator(16, 1, ndf=4, pack=2), pack=2)
    images = torch.randn(8, 1, 16, 16)
    packed = module.augment(images)
    assert packed.shape == (4, 2, 16, 16)
    assert torch.equal(packed[1, 1], images[3, 0])  # pack 1 is images 2 and 3
    # R1 on a pack: the squared norm of D's gradient over the whole packed input, per verdict
    inputs = packed.detach().requires_grad_()
    seen = Seen(inputs, None, module.eager_critic(inputs, None))
    norms = squared_input_gradient(module.eager_critic, seen)
    assert norms.shape == (4,)
    term = GradientPenalty("real", weight=2.0)
    assert torch.isclose(term.penalty(type("S", (), {"real": seen, "critic": module.eager_critic})),
                         norms.mean())  # fmt: skip


def test_a_module_and_a_d_that_disagree_on_the_pack_are_refused():
    with pytest.raises(ValueError, match="model.pack=2"):
        tiny_module(pack=2)  # D built for single images


@pytest.mark.parametrize("loss", options("model/loss"))
def test_packing_and_minibatch_std_train_under_every_loss(loss):
    d = dcgan.Discriminator(16, 1, ndf=4, norm="batch", minibatch_std=4, pack=2)
    module = tiny_module(discriminator=d, loss=loss, pack=2)
    fit_batches(module, 2)
    assert all(torch.isfinite(p).all() for p in module.discriminator.parameters())


def test_conditional_acgan_under_packing_learns_a_class_per_image():
    d = dcgan.Discriminator(16, 1, ndf=4, norm="batch", num_classes=10, condition="acgan",
                            minibatch_std=2, pack=4)  # fmt: skip
    module = tiny_module(discriminator=d, num_classes=10, pack=4)
    trainer = fit_batches(module, 2)
    assert torch.isfinite(trainer.callback_metrics["train/loss_d"])


@pytest.mark.parametrize(
    "extra",
    [
        ["model/regularizers=[r1,r2,lecam]", "model/augmentation=ada"],
        ["model/loss=wasserstein", "model/regularizers=[wgan_gp]", "model.conditional=true"],
        ["model=sngan", "model/loss=hinge", "model/augmentation=diffaugment",
         "model/regularizers=[mode_seeking]"],
        ["model=resnet", "model.conditional=true", "model.discriminator.condition=acgan",
         "data.image_size=32"],
        ["model=r3gan", "model.generator.ngf=16", "model.discriminator.ndf=16",
         "model.conditional=true"],
    ],
    ids=["penalties", "wgan-gp-conditional", "sngan", "resnet-acgan", "r3gan"],
)  # fmt: skip
def test_both_options_train_from_the_cli(train_entry, extra):
    status, err = train_entry(*TINY, *extra, "model.pack=2", "model.discriminator.minibatch_std=4",
                              "trainer.max_epochs=1", "trainer.limit_train_batches=2")  # fmt: skip
    assert status == 0, err


def test_a_batch_that_does_not_divide_into_packs_is_one_line(train_entry):
    status, err = train_entry(*TINY, "data.batch_size=6", "model.pack=4")
    assert status == 2
    assert err.strip() == (
        "error: config error: data.batch_size=6: with model.pack=4: allowed: a multiple of 4 "
        "(D judges packs)"
    )


def test_bad_option_values_name_their_keys(train_entry):
    status, err = train_entry(*TINY, "model.pack=0")
    assert status == 2 and "model.pack=0" in err, err
    status, err = train_entry(*TINY, "model.discriminator.minibatch_std=-1")
    assert status == 2 and "model.discriminator.minibatch_std=-1" in err, err


def test_r3gan_resampling_is_the_references_per_channel_filter():
    """One depthwise convolution (channels_last kept) equals filtering each channel alone with
    the [1, 3, 3, 1] outer product (x 4 up), as the reference's resampling does."""
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8, 8)
    kernel = r3gan.lowpass_kernel().view(1, 1, 4, 4)
    flat = x.reshape(10, 1, 8, 8)
    down = torch.nn.functional.conv2d(flat, kernel, stride=2, padding=1).view(2, 5, 4, 4)
    up = torch.nn.functional.conv_transpose2d(flat, 4 * kernel, stride=2, padding=1)
    nhwc = x.contiguous(memory_format=torch.channels_last)
    assert torch.allclose(r3gan.Resample(up=False)(nhwc), down, atol=1e-6)
    assert torch.allclose(r3gan.Resample(up=True)(nhwc), up.view(2, 5, 16, 16), atol=1e-6)
    assert r3gan.Resample(up=False)(nhwc).is_contiguous(memory_format=torch.channels_last)


def test_r3gan_at_its_cpu_width_trains_and_another_penalty_list_replaces_its_own(train_entry):
    """model=r3gan_cpu trains; model=r3gan's R1 + R2 are one option (model/regularizers=r3gan),
    so choosing others (or none) leaves no half node behind."""
    status, err = train_entry(*TINY[2:], "model=r3gan_cpu", "trainer.max_epochs=1",
                              "trainer.limit_train_batches=4")  # fmt: skip
    assert status == 0, err
    from src.train import compose_config

    for chosen, names in (("[]", []), ("[r1,lecam]", ["r1", "lecam"])):
        cfg = compose_config(["model=r3gan", f"model/regularizers={chosen}"])
        chosen_nodes = cfg.model.get("regularizers") or {}
        assert list(chosen_nodes) == names
        assert all("_target_" in chosen_nodes[n] for n in names)
    assert compose_config(["model=r3gan"]).model.regularizers.r2.schedule.end == 0.005
