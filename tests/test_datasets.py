"""Every dataset config, read from a fixture in its real on-disk format, through the real CLI."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from src.data.base import ImageSource
from src.data.cifar import CIFAR10
from src.data.folder import CelebA, Folder
from src.data.idx import MNIST
from src.data.transforms import fit_pil
from src.models.loading import load_generator, rebuild
from tests import fixtures
from tests.conftest import TINY, run_cli, run_entry
from tests.helpers import epoch_batches

WRITERS = {
    "mnist": fixtures.write_mnist,
    "fashion_mnist": lambda root: fixtures.write_mnist(root, folder="FashionMNIST", gz=True),
    "cifar10": fixtures.write_cifar10,
    "celeba": fixtures.write_celeba,
    "lsun": fixtures.write_lsun,
    "folder": fixtures.write_folder,
    "fake": lambda root: root,
}
SIZES = {"mnist": 32, "fashion_mnist": 32, "cifar10": 32, "celeba": 64, "lsun": 64,
         "folder": 64, "fake": 64}  # fmt: skip


@pytest.mark.parametrize("name", WRITERS)
def test_each_dataset_trains_one_fast_epoch_from_its_real_format(tmp_path, name):
    root = WRITERS[name](tmp_path / "data")
    run_dir = tmp_path / "run"
    root_override = [] if name == "fake" else [f"data.root={root}"]
    run_cli(
        f"data={name}", *root_override, "debug=fast", *TINY, "data.batch_size=8", "logger=csv",
        f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert (run_dir / "samples" / "epoch_000.png").is_file()
    # Its checkpoint is usable: weights-only load, G and the datamodule rebuilt (issue 16, #3).
    generator, config = load_generator(str(run_dir / "checkpoints" / "last.ckpt"))
    size = SIZES[name]  # G follows the data's resolution
    assert generator(generator.sample_latent(2)).shape[-2:] == (size, size)
    assert isinstance(rebuild(config["data"], "data", ImageSource), ImageSource)


@pytest.mark.parametrize(
    ("make", "writer"),
    [
        (lambda root, **kw: CIFAR10(root=root, channels=3, **kw), "write_cifar10"),
        (
            lambda root, **kw: Folder(root=root, image_size=32, channels=3, **kw),
            "write_folder",
        ),
        (lambda root, **kw: MNIST(root=root, split="all", **kw), "write_mnist"),
    ],  # fmt: skip
)
def test_resident_path_yields_exactly_the_streaming_batches(tmp_path, make, writer):
    root = str(getattr(fixtures, writer)(tmp_path))
    for epoch in (0, 2):
        resident = epoch_batches(make(root, batch_size=8, seed=5, resident=True), epoch)
        streaming = epoch_batches(make(root, batch_size=8, seed=5, resident=False), epoch)
        assert len(resident) == len(streaming) > 0
        assert all(torch.equal(r, s) for r, s in zip(resident, streaming, strict=True))


def test_resident_tensor_is_cached_by_content_outside_the_data(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = fixtures.write_cifar10(tmp_path / "data")
    before = sorted(root.rglob("*"))
    first = CIFAR10(root=str(root), channels=3)
    first.setup("fit")
    (cached,) = (tmp_path / "cache" / "convgan").glob("*.pt")
    assert sorted(root.rglob("*")) == before  # nothing written into the dataset
    caplog.set_level(logging.INFO)
    again = CIFAR10(root=str(root), channels=3)
    again.setup("fit")
    assert "from cache" in caplog.text and torch.equal(first.images, again.images)
    # different content -> a different key, never the stale tensor
    fixtures.write_cifar10(root, per_batch=24)
    changed = CIFAR10(root=str(root), channels=3)
    changed.setup("fit")
    assert len(changed.images) == 120
    assert len(list((tmp_path / "cache" / "convgan").glob("*.pt"))) == 2 and cached.is_file()


def test_folder_reads_mixed_sizes_and_modes_and_skips_a_corrupt_file(tmp_path, caplog):
    root = fixtures.write_folder(tmp_path, n=12)
    datamodule = Folder(root=str(root), image_size=32, channels=3, batch_size=4)
    with caplog.at_level(logging.WARNING):
        datamodule.setup("fit")
    assert len(datamodule.dataset) == 13  # 12 images + broken.png; notes.txt is not an image
    assert "broken.png" in caplog.text
    assert datamodule.images.shape == (13, 3, 32, 32)


def test_modes_are_converted_to_the_configured_channels():
    rgba = Image.fromarray(fixtures.colour_pictures(1, 40, 60)[0]).convert("RGBA")
    grey = rgba.convert("L")
    assert fit_pil(rgba, 32, 3).shape == (3, 32, 32)
    assert fit_pil(rgba, 32, 1).shape == (1, 32, 32)
    as_rgb = fit_pil(grey, 32, 3)
    assert torch.equal(as_rgb[0], as_rgb[2])  # grey repeated
    # shorter side resized then center-cropped: a 40x60 image keeps its middle 40x40
    wide = np.zeros((40, 60), dtype=np.uint8)
    wide[:, :8] = 255  # a white stripe at the far left is cropped away
    assert fit_pil(Image.fromarray(wide), 32, 1).max() == 0


def test_celeba_split_uses_the_partition_list(tmp_path):
    root = str(fixtures.write_celeba(tmp_path, n=48))
    sizes = {}
    for split in ("train", "valid", "all"):
        datamodule = CelebA(root=root, split=split, resident=False, batch_size=4)
        datamodule.setup("fit")
        sizes[split] = len(datamodule.dataset)
    assert sizes == {"train": 36, "valid": 12, "all": 48}


def corrupt_idx(root: Path) -> Path:
    fixtures.write_mnist(root)
    path = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x08\x01" + path.read_bytes()[4:])
    return root


def evil_cifar(root: Path) -> Path:
    fixtures.write_cifar10(root)
    marker = root / "pwned"
    (root / "cifar-10-batches-py" / "data_batch_3").write_bytes(
        b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    )
    return root


ERRORS = [
    (["data=mnist"], None, "data.root='???': required"),
    (["data=mnist", "data.root={tmp}/nowhere"], None, "data.root='{tmp}/nowhere': no such dir"),
    (["data=mnist", "data.root={tmp}"], None, "no raw/train-images-idx3-ubyte (or .gz)"),
    (["data=fashion_mnist", "data.root={tmp}"], fixtures.write_mnist, "under FashionMNIST/"),
    (["data=mnist", "data.root={tmp}"], corrupt_idx, "not an IDX image file"),
    (["data=cifar10", "data.root={tmp}"], None, "missing cifar-10-batches-py/data_batch_1"),
    (["data=cifar10", "data.root={tmp}"], evil_cifar, "not a CIFAR-10 python batch"),
    (["data=folder", "data.root={tmp}"], None, "no images (.png, .jpg, .jpeg, .webp, .bmp)"),
    (["data=lsun", "data.root={tmp}"], None, "data.classes=['bedroom']: no LMDB database"),
    (["data=celeba", "data.root={tmp}", "data.split=test"], fixtures.write_folder,
     "data.split='test': needs"),
    (["data=fake", "data.num_images=0"], None, "data.num_images=0: allowed: an integer in [1, "),
    (["data=cifar10", "data.root={tmp}", "data.split=val"], fixtures.write_cifar10,
     "data.split='val': allowed: train, test, all"),
    (["model.generator.image_size=64"], None, "model.generator.image_size=64: must match"),
]  # fmt: skip


# ids by a writer's name, not its repr (an address differs between pytest-xdist workers)
@pytest.mark.parametrize(
    ("overrides", "writer", "message"), ERRORS, ids=lambda c: getattr(c, "__name__", str(c)[:30])
)
def test_a_data_mistake_is_one_clear_line(tmp_path, overrides, writer, message):
    data = tmp_path / "data"
    data.mkdir()
    if writer:
        writer(data)
    overrides = [o.format(tmp=data) for o in overrides]
    status, stderr = run_entry(
        "src.train", *TINY, "logger=csv", *overrides, f"hydra.run.dir={tmp_path}/run"
    )
    assert status == 2, stderr[-3000:]
    (line,) = stderr.strip().splitlines()
    assert line.startswith("error: config error: ") and message.format(tmp=data) in line
    assert not (data / "pwned").exists()


PRESETS = {
    "dcgan_mnist": fixtures.write_mnist,
    "dcgan_fashion": lambda root: fixtures.write_mnist(root, folder="FashionMNIST"),
    "dcgan_cifar10": fixtures.write_cifar10,
    "dcgan_celeba64": fixtures.write_celeba,
    "dcgan_lsun64": fixtures.write_lsun,
    "sngan_cifar10": fixtures.write_cifar10,
    "sngan_cnn_cifar10": fixtures.write_cifar10,
    "resnet_cifar10": fixtures.write_cifar10,
    "wgan_gp_cifar10": fixtures.write_cifar10,
    "r3gan_cifar10": fixtures.write_cifar10,
    "r3gan_ffhq64": fixtures.write_folder,
}


# n_dis 5 with a penalty / the ResNet / R3GAN's double backward at 32 and 64 pixels
SLOW_PRESETS = ("resnet_cifar10", "wgan_gp_cifar10", "r3gan_cifar10", "r3gan_ffhq64")
# the last of FFHQ-64's stages is half as wide: 16 wide at tiny sizes, so 8 (one group) there
WIDER = {"r3gan_ffhq64": ["model.generator.ngf=16", "model.discriminator.ndf=16"]}


@pytest.mark.parametrize(
    "preset",
    [pytest.param(p, marks=pytest.mark.slow) if p in SLOW_PRESETS else p for p in PRESETS],
)
def test_each_experiment_preset_trains_from_a_fixture(tmp_path, preset):
    root = PRESETS[preset](tmp_path / "data")
    run_dir = tmp_path / "run"
    run_cli(
        f"experiment={preset}", f"data.root={root}", "debug=fast", *TINY, *WIDER.get(preset, []),
        "data.batch_size=8",
        "data.num_workers=0", "logger=csv", f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    config = (run_dir / ".hydra" / "config.yaml").read_text()
    assert f"task_name: {preset}" in config
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("sngan_cifar10", {"model.generator._target_": "src.models.sngan.Generator",
                           "model.loss._target_": "src.models.losses.Hinge",
                           "model.discriminator.norm": "spectral",
                           "model.d_steps_per_g_step": 5, "optimizer.lr": 2e-4,
                           "optimizer.generator.betas": [0.0, 0.9]}),
        ("resnet_cifar10", {"model.discriminator._target_": "src.models.resnet.Discriminator",
                            "model.loss._target_": "src.models.losses.Hinge",
                            "optimizer.discriminator.betas": [0.0, 0.9]}),
        ("wgan_gp_cifar10", {"model.loss._target_": "src.models.losses.Wasserstein",
                             "model.regularizers.wgan_gp.weight": 10.0,
                             "model.discriminator.norm": "none",
                             "model.d_steps_per_g_step": 5, "optimizer.lr": 1e-4,
                             "optimizer.generator.betas": [0.0, 0.9]}),
    ],
)  # fmt: skip
def test_literature_presets_hold_the_published_settings(tmp_path, preset, expected):
    from omegaconf import OmegaConf

    from src.train import compose_config

    cfg = compose_config([f"experiment={preset}", "data.root=/data"], str(tmp_path / "api"))
    for key, value in expected.items():
        found = OmegaConf.select(cfg, key)
        found = OmegaConf.to_container(found, resolve=True) if OmegaConf.is_config(found) else found
        assert found == value, key
    assert OmegaConf.select(cfg, "optimizer.scheduler._target_").endswith("LinearDecayLR")


def test_the_r3gan_preset_holds_the_reference_cifar10_settings(tmp_path):
    """brownvc/R3GAN train.py --preset=CIFAR10 --cond=1: the values its schedules start and
    end at, over its 20M images, and the 250M-image run."""
    from omegaconf import OmegaConf

    from src.train import compose_config

    cfg = compose_config(["experiment=r3gan_cifar10", "data.root=/data"], str(tmp_path / "api"))
    assert (cfg.model.loss._target_, list(cfg.model.regularizers), cfg.model.conditional) == (
        "src.models.losses.RelativisticPairing",
        ["r1", "r2"],
        True,
    )
    assert (cfg.model.generator.ngf, cfg.model.discriminator.ndf, cfg.data.batch_size) == (
        768,
        768,
        512,
    )
    assert cfg.optimizer.scheduler is None and cfg.optimizer.lr == 2e-4
    assert OmegaConf.to_container(cfg.optimizer.generator.betas, resolve=True)[0] == 0
    assert cfg.trainer.max_epochs * 50_000 == 250_000_000
    schedules = {
        "lr": cfg.optimizer.schedules.lr, "beta2": cfg.optimizer.schedules.beta2,
        "r1": cfg.model.regularizers.r1.schedule, "r2": cfg.model.regularizers.r2.schedule,
        "ema_half_life": cfg.model.ema.half_life, "augment_p": cfg.model.augmentation.schedule,
    }  # fmt: skip
    ends = {k: (s.start, s.end, s.images) for k, s in map_instantiate(schedules).items()}
    assert ends == {
        "lr": (1.0, 0.25, 2e7), "beta2": (0.9, 0.99, 2e7), "r1": (0.05, 0.005, 2e7),
        "r2": (0.05, 0.005, 2e7), "ema_half_life": (0, 5e6, 2e7), "augment_p": (0.0, 0.55, 2e7),
    }  # fmt: skip
    assert list(cfg.model.augmentation.policies) == ["xflip", "rot90", "translation", "color",
                                                     "cutout"]  # fmt: skip


def test_the_r3gan_ffhq64_preset_builds_the_reference_networks(tmp_path):
    """--preset=FFHQ-64: the reference's stage widths (its G and D parameter counts), gamma
    2 -> 0.2, the EMA's half-life to 500k images, p to 0.3, unconditional, batch 256."""
    from hydra.utils import instantiate

    from src.train import compose_config

    cfg = compose_config(["experiment=r3gan_ffhq64", "data.root=/data"], str(tmp_path / "api"))
    generator, discriminator = (
        instantiate(cfg.model.generator),
        instantiate(cfg.model.discriminator),
    )
    assert sum(p.numel() for p in generator.parameters()) == 22_429_824
    assert sum(p.numel() for p in discriminator.parameters()) == 22_381_440
    assert (cfg.data.image_size, cfg.data.batch_size, cfg.model.conditional) == (64, 256, False)
    schedules = map_instantiate({
        "r1": cfg.model.regularizers.r1.schedule, "lr": cfg.optimizer.schedules.lr,
        "ema_half_life": cfg.model.ema.half_life, "augment_p": cfg.model.augmentation.schedule,
    })  # fmt: skip
    assert (schedules["r1"].start, schedules["r1"].end) == (2.0, 0.2)
    assert (schedules["ema_half_life"].end, schedules["augment_p"].end) == (5e5, 0.3)
    assert {s.images for s in schedules.values()} == {2e7}


def map_instantiate(nodes: dict) -> dict:
    from hydra.utils import instantiate

    return {k: instantiate(v) for k, v in nodes.items()}


@pytest.mark.slow  # a download attempt
def test_a_failed_download_is_one_line(tmp_path):
    """No network here: torchvision's download fails, the user is told where files go."""
    result = run_cli(
        "data=mnist", f"data.root={tmp_path}/mnist", "data.download=true", *TINY, "logger=csv",
        f"hydra.run.dir={tmp_path}/run", check=False, env={"no_proxy": "*"},
    )  # fmt: skip
    if result.returncode == 0:
        pytest.skip("a network is available here: the download succeeded")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "data.download=True: the download failed" in line and "data.root" in line


def mid_grey(mode: str) -> Image.Image:
    """A 16x16 image of `mode` at half intensity (128 of 255 in 8 bits)."""
    if mode.startswith("I;16"):
        return Image.fromarray(np.full((16, 16), 128 * 257, dtype=np.uint16))
    if mode == "I":
        return Image.fromarray(np.full((16, 16), 128 * 257, dtype=np.int32))
    if mode == "F":
        return Image.fromarray(np.full((16, 16), 128 / 255, dtype=np.float32))
    return Image.new("L", (16, 16), 128).convert(mode)


@pytest.mark.parametrize(
    ("mode", "suffix"),
    [("L", ".png"), ("LA", ".png"), ("P", ".png"), ("RGB", ".png"), ("RGBA", ".png"),
     ("I;16", ".png"), ("I", ".tif"), ("F", ".tif"), ("CMYK", ".jpg"), ("1", ".bmp")],
)  # fmt: skip
def test_every_bit_depth_and_mode_pil_opens_reads_at_its_intensity(tmp_path, mode, suffix):
    """A 16-bit grey PNG read as 8 bits is 99% white unless scaled: each mode's half
    intensity reads as ~128 of 255."""
    path = tmp_path / f"image{suffix}"
    mid_grey(mode).save(path)
    with Image.open(path) as image:
        assert image.mode.startswith(mode.split(";")[0])
        grey, rgb = fit_pil(image, 16, 1), fit_pil(image, 16, 3)
    expected = 128  # a 1-bit image: dithered, half its pixels white
    assert abs(float(grey.float().mean()) - expected) <= 2, (image.mode, grey.float().mean())
    assert abs(float(rgb.float().mean()) - expected) <= 2
