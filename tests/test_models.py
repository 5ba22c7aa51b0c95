import pytest
import torch

from src.errors import ConfigError
from src.models import r3gan, resnet, sngan
from src.models.dcgan import Discriminator, Generator

G = {"ngf": 64, "latent_components": 0}  # the DCGAN paper's generator
D = {"ndf": 64, "norm": "batch"}  # and discriminator


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_64x64_parameter_counts_match_the_pytorch_dcgan_example():
    assert (
        count(Generator(image_size=64, channels=3, latent_dim=100, ngf=64, latent_components=0))
        == 3_576_704
    )
    assert count(Discriminator(image_size=64, channels=3, ndf=64, norm="batch")) == 2_765_568


@pytest.mark.parametrize("image_size", [16, 32, 64, 128, 256])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_for_every_resolution_and_channel_count(image_size, channels):
    generator = Generator(image_size, channels, latent_dim=16, ngf=4, latent_components=0)
    discriminator = Discriminator(image_size, channels, ndf=4)
    images = generator(torch.randn(3, 16))
    assert images.shape == (3, channels, image_size, image_size)
    assert images.min() >= -1 and images.max() <= 1  # Tanh output
    assert discriminator(images).shape == (3,)


def test_blocks_follow_the_resolution():
    # One stride-2 block per doubling from 4x4: 32x32 has one block fewer than 64x64.
    def convs(m):
        return sum(isinstance(x, torch.nn.Conv2d | torch.nn.ConvTranspose2d) for x in m.modules())

    assert convs(Generator(64, 3, **G)) == convs(Generator(32, 3, **G)) + 1 == 5
    assert convs(Discriminator(64, 3, **D)) == convs(Discriminator(32, 3, **D)) + 1 == 5


def test_discriminator_has_no_batchnorm_on_its_first_block_and_no_sigmoid():
    layers = list(Discriminator(64, 3, ndf=64, norm="batch").net)
    assert isinstance(layers[0], torch.nn.Conv2d) and isinstance(layers[1], torch.nn.LeakyReLU)
    assert layers[1].negative_slope == 0.2
    assert not any(isinstance(m, torch.nn.Sigmoid) for m in layers)
    assert isinstance(layers[-1], torch.nn.Conv2d)


def test_dcgan_initialisation():
    torch.manual_seed(0)
    generator = Generator(64, 3, **G)
    conv_weights = torch.cat(
        [m.weight.flatten() for m in generator.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    )
    bn = [m for m in generator.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert abs(conv_weights.mean()) < 1e-3 and abs(conv_weights.std() - 0.02) < 1e-3
    bn_weights = torch.cat([m.weight for m in bn])
    assert abs(bn_weights.mean() - 1) < 0.01 and abs(bn_weights.std() - 0.02) < 0.005
    assert all((m.bias == 0).all() for m in bn)


@pytest.mark.parametrize("image_size", [0, 8, 48, 512])
def test_bad_resolution_names_the_value_and_what_is_allowed(image_size):
    with pytest.raises(
        ValueError, match=rf"data.image_size={image_size}: allowed for model=dcgan: 16, 32, 64"
    ):
        Generator(image_size, 1, **G)


def test_the_default_latent_prior_is_the_standard_normal():
    generator = Generator(16, 1, latent_dim=8, ngf=4, latent_components=0)
    assert "latent_centres" not in generator.state_dict()
    drawn = generator.sample_latent(10, generator=torch.Generator().manual_seed(3))
    assert torch.equal(drawn, torch.randn(10, 8, generator=torch.Generator().manual_seed(3)))


def test_a_mixture_prior_draws_unit_gaussians_around_centres_kept_in_the_state_dict():
    torch.manual_seed(0)
    generator = Generator(16, 1, latent_dim=64, ngf=4, latent_components=5, component_spread=3.0)
    assert generator.state_dict()["latent_centres"].shape == (5, 64)
    z = generator.sample_latent(2000, generator=torch.Generator().manual_seed(1))
    nearest = torch.cdist(z, generator.latent_centres).min(dim=1)
    # a unit Gaussian in 64-d lies ~sqrt(64) = 8 from its centre; centres are ~34 apart
    assert nearest.values.mean().item() == pytest.approx(8.0, rel=0.05)
    shares = torch.bincount(nearest.indices, minlength=5) / len(z)
    assert shares.min() > 0.15 and shares.max() < 0.25  # equal weights
    # the centres travel with the weights: a differently seeded G draws the same latents
    torch.manual_seed(1)
    other = Generator(16, 1, latent_dim=64, ngf=4, latent_components=5, component_spread=3.0)
    other.load_state_dict(generator.state_dict())
    again = other.sample_latent(2000, generator=torch.Generator().manual_seed(1))
    assert torch.equal(z, again)


def test_spectral_norm_replaces_batchnorm_in_d_and_keeps_its_vectors_in_the_state_dict():
    torch.manual_seed(0)
    d = Discriminator(32, 3, ndf=8, norm="spectral")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in convs)
    x = torch.randn(4, 3, 32, 32)
    for _ in range(30):  # power iterations run in training mode
        d(x)
    for conv in convs:  # the effective weight has spectral norm 1
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert sigma.item() == pytest.approx(1.0, abs=0.05)
    state = d.state_dict()
    assert any(k.endswith("._u") for k in state) and any(k.endswith("._v") for k in state)
    torch.manual_seed(1)
    other = Discriminator(32, 3, ndf=8, norm="spectral")
    other.load_state_dict(state)  # weights and vectors restored bitwise: the same outputs
    assert torch.equal(other.eval()(x), d.eval()(x))


def test_generator_norm_options():
    g = Generator(32, 1, ngf=8, latent_components=0, norm="spectral")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in g.modules())  # SN with BN (SAGAN)
    none = Generator(32, 1, ngf=8, latent_components=0, norm="none")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in none.modules())
    with pytest.raises(ValueError, match="model.generator.norm='layer': allowed: batch"):
        Generator(32, 1, ngf=8, latent_components=0, norm="layer")


def test_resnet_parameter_counts_are_mimicrys_sngan_cifar_networks():
    """SNGAN's ResNet at 32x32 (Mimicry's ngf 256, ndf 128): G 4,276,739 = linear 528,384 +
    3 up blocks x 1,246,976 + BatchNorm 512 + output conv 6,915; D 1,053,825."""
    assert count(resnet.Generator(32, 3, ngf=256, latent_components=0)) == 4_276_739
    assert count(resnet.Discriminator(32, 3, ndf=128)) == 1_053_825


@pytest.mark.parametrize(("module", "size"), [
    (resnet, 32), (resnet, 48), (resnet, 64), (resnet, 128), (sngan, 32), (sngan, 48), (sngan, 64),
])  # fmt: skip
def test_sngan_and_resnet_networks_follow_the_data_size(module, size):
    generator = module.Generator(size, 1, ngf=32, latent_components=3)
    discriminator = module.Discriminator(size, 1, ndf=32)
    images = generator(generator.sample_latent(2))
    assert images.shape == (2, 1, size, size) and images.abs().max() <= 1
    assert discriminator(images).shape == (2,)
    spectral = [m for m in discriminator.modules() if hasattr(m, "parametrizations")]
    assert spectral  # D is spectrally normalized by default


def test_sngan_and_resnet_refuse_sizes_they_do_not_have():
    with pytest.raises(ValueError, match="data.image_size=16: allowed for model=resnet: 32, 48"):
        resnet.Generator(16, 1, ngf=32, latent_components=0)
    with pytest.raises(ValueError, match="data.image_size=128: allowed for model=sngan: 32, 48"):
        sngan.Discriminator(128, 1, ndf=32)
    with pytest.raises(
        ValueError, match="model.discriminator.norm='batch': allowed: spectral, none"
    ):
        resnet.Discriminator(32, 1, ndf=32, norm="batch")


def test_r3gan_parameter_counts_are_the_reference_cifar10_networks():
    """brownvc/R3GAN's CIFAR-10 preset (every stage 768 wide, 2 blocks, cardinality 96,
    expansion 2, z 64), counted by building the reference's `R3GAN/Networks.py`: G 20,732,160
    and D 20,683,776; conditional (10 classes, embeddings 64 and 768) 20,781,952 and 21,280,512.
    Per block 768->1536 (1x1) + grouped 3x3 (1536 x 16 x 9) + 1536->768 + 2 x 1536 biases."""
    common = {"latent_components": 0}
    assert count(r3gan.Generator(32, 3, 64, ngf=768, **common)) == 20_732_160
    assert count(r3gan.Discriminator(32, 3, ndf=768)) == 20_683_776
    assert count(r3gan.Generator(32, 3, 64, ngf=768, num_classes=10, **common)) == 20_781_952
    assert count(r3gan.Discriminator(32, 3, ndf=768, num_classes=10)) == 21_280_512


def test_r3gan_stage_widths_give_the_reference_ffhq64_networks():
    """The reference's FFHQ-64 preset: stages [768, 768, 768, 768, 384] from 4x4 up, counted
    by building its `R3GAN/Networks.py` (WidthPerStage 3/4 of [1024]*4 + [512]): G 22,429,824
    and D 22,381,440 parameters."""
    halves = [1, 1, 1, 1, 0.5]
    generator = r3gan.Generator(64, 3, 64, ngf=768, width_multipliers=halves, latent_components=0)
    discriminator = r3gan.Discriminator(64, 3, ndf=768, width_multipliers=halves)
    assert (count(generator), count(discriminator)) == (22_429_824, 22_381_440)
    small = r3gan.Generator(64, 3, 8, ngf=32, width_multipliers=halves, latent_components=0)
    images = small(torch.randn(2, 8))
    critic = r3gan.Discriminator(64, 3, ndf=32, width_multipliers=halves)
    assert images.shape == (2, 3, 64, 64) and critic(images).shape == (2,)


@pytest.mark.parametrize(
    ("multipliers", "message"),
    [
        ([1, 1, 0.5], r"width_multipliers=\[1, 1, 0.5\]: allowed: null or 4 numbers"),
        ([1, 1, 1, 0.3], r"width_multipliers=\[1, 1, 1, 0.3\]: allowed: stage widths \(ngf x"),
        ([1, 1, 1, -1], r"width_multipliers=-1: allowed: a number > 0"),
    ],
)
def test_r3gan_stage_widths_that_cannot_be_built_are_one_line(multipliers, message):
    with pytest.raises(ConfigError, match=message):
        r3gan.Generator(32, 3, 8, ngf=32, width_multipliers=multipliers, latent_components=0)


@pytest.mark.parametrize("size", [16, 32, 64])
def test_r3gan_follows_the_data_size_has_no_normalization_and_starts_as_identity_blocks(size):
    torch.manual_seed(0)
    generator = r3gan.Generator(size, 3, 16, ngf=16, latent_components=0, num_classes=4)
    discriminator = r3gan.Discriminator(size, 3, ndf=16, num_classes=4)
    labels = generator.sample_labels(2)
    images = generator(generator.sample_latent(2), labels)
    assert images.shape == (2, 3, size, size)
    logits = discriminator(images, labels)
    by_hand = (discriminator.projection(discriminator.features(images))
               * discriminator.class_embed.weight[labels]).sum(1)  # fmt: skip
    assert logits.shape == (2,) and torch.allclose(logits, by_hand)  # the reference's projection
    norms = (torch.nn.BatchNorm2d, torch.nn.GroupNorm, torch.nn.LayerNorm)
    modules = [*generator.modules(), *discriminator.modules()]
    assert not any(isinstance(m, norms) or hasattr(m, "parametrizations") for m in modules)
    blocks = [m for m in modules if isinstance(m, r3gan.ResidualBlock)]
    assert len(blocks) == 2 * 2 * (size.bit_length() - 2)  # 2 per stage, stages 4..size, G and D
    x = torch.randn(2, 16, 8, 8)
    assert all(torch.equal(block(x), x) for block in blocks)  # last conv zero: the identity
    assert torch.allclose(r3gan.lowpass_kernel().sum(), torch.tensor(1.0))


def test_r3gan_refuses_normalization_sizes_and_widths_it_does_not_have():
    with pytest.raises(ValueError, match="model.generator.norm='batch': allowed: none"):
        r3gan.Generator(32, 3, ngf=16, latent_components=0, norm="batch")
    with pytest.raises(ValueError, match="data.image_size=48: allowed for model=r3gan: 16, 32"):
        r3gan.Discriminator(48, 3, ndf=16)
    with pytest.raises(ValueError, match="model.discriminator.ndf=12: allowed: a multiple of 8"):
        r3gan.Discriminator(32, 3, ndf=12)
    with pytest.raises(ValueError, match="model.generator.ngf=4: allowed: an integer >= 8"):
        r3gan.Generator(32, 3, ngf=4, latent_components=0)
