"""Class-conditional GANs: labels through the data layer, conditional BatchNorm and projection
/ AC-GAN discriminators, per-class grids, `label=` generation and class-conditional metrics."""

import csv
import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from src.data.base import to_float
from src.data.digits import Digits
from src.data.module import ImageDataModule
from src.data.sampling import EpochSampler
from src.models import dcgan, resnet, sngan
from src.models.augment import Augment
from src.models.conditional import ConditionalBatchNorm2d
from src.models.ema import EMAGenerator
from src.models.gan_module import GANModule
from src.models.loading import load_generator
from src.models.optim import Optimizers
from src.utils.checkpoint import CHECKSUM_KEY, load_checkpoint, payload_checksum
from tests.conftest import TINY, run_entry
from tests.fixtures import write_cifar10, write_folder, write_lsun, write_mnist
from tests.helpers import epoch_batches, fit_batches, part, policies, tiny_module

CONDITIONAL = ["model.conditional=true", "logger=csv"]


def one_line(status: int, stderr: str, *fragments: str) -> None:
    assert status == 2, stderr[-2000:]
    lines = [line for line in stderr.strip().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# --- data --------------------------------------------------------------------------------
@pytest.mark.parametrize("resident", [True, False])
def test_labels_come_with_their_own_images_in_the_epoch_order(resident):
    datamodule = Digits(batch_size=50, seed=3, resident=resident, labels=True)
    batches = epoch_batches(datamodule, epoch=2)
    sampler = EpochSampler(1797, 50, seed=3)
    sampler.set_epoch(2)
    order = sampler.indices()
    images = torch.cat([b[0] for b in batches])
    labels = torch.cat([b[1] for b in batches])
    assert torch.equal(images, to_float(datamodule.dataset.images[order]))
    assert torch.equal(labels, datamodule.dataset.targets[order])
    assert labels.dtype == torch.long and set(labels.tolist()) == set(range(10))
    assert datamodule.class_names() == [str(d) for d in range(10)]


def test_an_unconditional_run_gets_images_only(tmp_path):
    (batch, *_) = epoch_batches(Digits(image_size=16, batch_size=8))
    assert isinstance(batch, torch.Tensor)
    from src.data.idx import MNIST

    unlabelled = MNIST(root=str(write_mnist(tmp_path)))  # no label files: still fine
    assert unlabelled.num_classes == 0 and len(epoch_batches(unlabelled)) == 96 // 64


def test_labelled_formats_report_their_classes(tmp_path):
    from src.data.cifar import CIFAR10
    from src.data.folder import Folder
    from src.data.idx import MNIST

    mnist = MNIST(root=str(write_mnist(tmp_path / "m", labels=True)), labels=True)
    assert torch.equal(mnist.targets()[:20], torch.arange(20) % 10)
    assert mnist.class_names()[9] == "9" and mnist.num_classes == 10
    fashion = write_mnist(tmp_path / "f", folder="FashionMNIST", labels=True)
    assert MNIST(root=str(fashion), folder="FashionMNIST").class_names()[9] == "Ankle boot"
    cifar = CIFAR10(root=str(write_cifar10(tmp_path / "c")), channels=3, labels=True)
    assert torch.equal(cifar.targets()[:20], torch.arange(20) % 10)
    assert cifar.class_names()[0] == "airplane"
    folder = Folder(root=str(write_folder(tmp_path / "dir")), image_size=16, labels=True)
    assert folder.class_names() == ["a", "b"]  # the sub-folders, sorted (as ImageFolder)
    assert folder.num_classes == 2
    paths = folder.dataset.paths
    expected = [0 if p.relative_to(tmp_path / "dir").parts[0] == "a" else 1 for p in paths]
    assert folder.targets().tolist() == expected


def test_lsun_classes_are_its_databases(tmp_path):
    pytest.importorskip("lmdb")
    from src.data.lsun import LSUN

    root = write_lsun(tmp_path, classes=("bedroom", "church_outdoor"), n=6)
    datamodule = LSUN(root=str(root), classes=["bedroom", "church_outdoor"],
                                image_size=16, channels=3, labels=True)  # fmt: skip
    assert datamodule.class_names() == ["bedroom", "church_outdoor"]
    assert datamodule.targets().tolist() == [0] * 6 + [1] * 6


def test_an_unreadable_file_is_replaced_by_one_of_its_own_class(tmp_path):
    from src.data.folder import Folder

    datamodule = Folder(root=str(write_folder(tmp_path)), image_size=16, labels=True)
    datamodule.setup("fit")
    dataset = datamodule.dataset
    broken = next(i for i, p in enumerate(dataset.paths) if p.name == "broken.png")
    substitute = dataset[broken]
    matches = [i for i in range(len(dataset)) if torch.equal(dataset[i], substitute)]
    assert matches and all(dataset.targets[i] == dataset.targets[broken] for i in matches)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (["data=fake", "data.image_size=32"], "FakeImages has no class labels"),
        (["data=folder", "data.root={flat}", "data.image_size=16"], "no class labels"),
        (["data=celeba", "data.root={celeba}", "data.image_size=16"], "no class labels"),
        (["data=mnist", "data.root={mnist}"], "train-labels-idx1-ubyte"),
        (["data=folder", "data.root={one}", "data.image_size=16"], "one class"),
    ],
)
def test_a_conditional_model_on_unlabelled_data_stops_with_one_line(
    train_entry, tmp_path, data, fragment
):
    from tests.fixtures import write_celeba

    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(4):
        Image.new("RGB", (20, 20), (i * 60, 0, 0)).save(flat / f"{i}.png")
    one = tmp_path / "one" / "cats"
    one.mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (20, 20), (i * 60, 0, 0)).save(one / f"{i}.png")
    roots = {"flat": flat, "one": one.parent, "mnist": write_mnist(tmp_path / "mnist"),
             "celeba": write_celeba(tmp_path / "celeba", n=8)}  # fmt: skip
    overrides = [o.format(**roots) for o in data]
    status, err = train_entry(*CONDITIONAL, *overrides, "data.batch_size=4")
    one_line(status, err, fragment)
    assert not (tmp_path / "run" / "checkpoints").exists()  # stopped before training


# --- models --------------------------------------------------------------------------------
ARCHITECTURES = {
    "dcgan": (dcgan, 16, dict(ngf=4), dict(ndf=4, norm="batch")),
    "sngan": (sngan, 32, dict(ngf=4), dict(ndf=4)),
    "resnet": (resnet, 32, dict(ngf=8), dict(ndf=8)),
}


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_projection_logit_is_the_unconditional_head_plus_the_embedding_inner_product(arch):
    module, size, _, d_kwargs = ARCHITECTURES[arch]
    torch.manual_seed(0)
    conditional = module.Discriminator(size, 1, num_classes=3, **d_kwargs).eval()
    plain = module.Discriminator(size, 1, **d_kwargs).eval()
    state = conditional.state_dict()
    plain.load_state_dict({k: v for k, v in state.items() if not k.startswith("embed.")})
    x, y = torch.randn(5, 1, size, size), torch.tensor([0, 2, 1, 2, 0])
    with torch.no_grad():
        features = conditional.features(x)
        features = features.sum(dim=(2, 3)) if features.dim() == 4 else features
        embedding = conditional.embed.weight  # (spectrally normalised when D is)
        by_hand = torch.stack(
            [sum(embedding[y[i], j] * features[i, j] for j in range(features.shape[1]))
             for i in range(len(y))]
        )  # fmt: skip
        assert torch.allclose(conditional(x, y), plain(x) + by_hand, atol=1e-4)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_acgan_discriminator_also_returns_class_logits(arch):
    module, size, _, d_kwargs = ARCHITECTURES[arch]
    critic = module.Discriminator(size, 1, num_classes=4, condition="acgan", **d_kwargs)
    logits, classes = critic(torch.randn(3, 1, size, size), torch.tensor([0, 1, 3]))
    assert logits.shape == (3,) and classes.shape == (3, 4)


def test_conditional_batch_norm_with_one_class_is_plain_batch_norm():
    torch.manual_seed(0)
    plain = nn.BatchNorm2d(6)
    nn.init.normal_(plain.weight)
    nn.init.normal_(plain.bias)
    conditional = ConditionalBatchNorm2d(6, num_classes=1)
    with torch.no_grad():
        conditional.gain.weight[0] = plain.weight
        conditional.bias.weight[0] = plain.bias
    x, y = torch.randn(8, 6, 5, 5), torch.zeros(8, dtype=torch.long)
    assert torch.allclose(conditional(x, y), plain(x), atol=1e-6)  # batch statistics
    assert torch.allclose(conditional.bn.running_mean, plain.running_mean)
    assert torch.allclose(conditional.bn.running_var, plain.running_var)
    plain.eval(), conditional.eval()
    assert torch.allclose(conditional(x, y), plain(x), atol=1e-6)  # running statistics


def test_conditional_batch_norm_gives_each_class_its_own_scale_and_shift():
    layer = ConditionalBatchNorm2d(3, num_classes=2)
    with torch.no_grad():
        layer.gain.weight[1] = 2.0
        layer.bias.weight[1] = 5.0
    x = torch.randn(4, 3, 2, 2)
    normed = nn.functional.batch_norm(x, None, None, training=True)
    out = layer(x, torch.tensor([0, 0, 1, 1]))
    assert torch.allclose(out[:2], normed[:2], atol=1e-6)  # class 0: gain 1, bias 0
    assert torch.allclose(out[2:], 2 * normed[2:] + 5, atol=1e-6)


@pytest.mark.parametrize("condition", ["projection", "acgan"])
@pytest.mark.parametrize(
    "arch", ["dcgan", "sngan", pytest.param("resnet", marks=pytest.mark.slow)]
)  # the ResNet's step is the slowest on CPU
def test_every_architecture_trains_conditionally_with_ema_and_spectral_norm(arch, condition):
    module, size, g_kwargs, d_kwargs = ARCHITECTURES[arch]
    torch.manual_seed(0)
    factory = partial(torch.optim.Adam, lr=2e-4, betas=(0.0, 0.9))
    generator = module.Generator(size, 1, latent_dim=8, latent_components=0, num_classes=10,
                                 **g_kwargs)  # fmt: skip
    discriminator = module.Discriminator(size, 1, num_classes=10, condition=condition,
                                         **{**d_kwargs, "norm": "spectral"})  # fmt: skip
    gan = GANModule(
        generator, discriminator,
        Optimizers(factory, factory, 2e-4, 0.0).build(generator, discriminator),
        part("model/loss", "hinge"), ema=partial(EMAGenerator, decay=0.9),
        augmentation=Augment(policies("translation")), conditional=True,
    )  # fmt: skip
    from pytorch_lightning import Trainer

    trainer = Trainer(max_epochs=1, limit_train_batches=2, log_every_n_steps=1, logger=False,
                      accelerator="cpu",
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False)  # fmt: skip
    datamodule = Digits(image_size=size, batch_size=8, labels=True)
    trainer.fit(gan, datamodule=ImageDataModule(datamodule))
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["train/loss_d"]) and torch.isfinite(metrics["train/loss_g"])
    grid = gan.sample(gan.fixed_noise, gan.fixed_labels)
    assert grid.shape == (80, 1, size, size)  # 10 classes x 8 columns
    # the EMA generator's conditional BatchNorm was recalibrated (on uniform labels)
    norms = [m for m in gan.generator_ema.module.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(int(n.num_batches_tracked) > 0 for n in norms)


@pytest.mark.parametrize(
    ("loss", "penalty", "extra"),
    [
        ("bce", "none", {}),
        ("wasserstein", "wgan_gp", {"d_steps_per_g_step": 2}),
        ("least_squares", "r1", {"lecam": True}),
        ("relativistic", "r2", {"condition": "acgan"}),
    ],
)
def test_every_loss_and_penalty_trains_a_conditional_model(loss, penalty, extra):
    condition = extra.pop("condition", "projection")
    critic = dcgan.Discriminator(16, 1, ndf=4, norm="none", num_classes=10, condition=condition)
    terms = {penalty: part("model/regularizers", penalty, weight=1.0)} if penalty != "none" else {}
    if extra.pop("lecam", False):
        terms["lecam"] = part("model/regularizers", "lecam")
    module = tiny_module(num_classes=10, discriminator=critic, loss=loss, regularizers=terms,
                         **extra)  # fmt: skip
    metrics = fit_batches(module, 4).callback_metrics
    assert torch.isfinite(metrics["train/loss_d"]) and torch.isfinite(metrics["train/loss_g"])
    if penalty != "none":
        logged = metrics[f"train/{penalty}"]
        assert torch.isfinite(logged) and logged > 0


def test_the_fixed_grid_has_one_row_per_class_with_shared_columns():
    gan = tiny_module(conditional=True, num_classes=10)
    assert gan.fixed_labels.tolist() == [c for c in range(10) for _ in range(8)]
    assert torch.equal(gan.fixed_noise[:8], gan.fixed_noise[8:16])  # same latent down a column
    fit_batches(gan, 2)


def test_a_conditional_module_needs_a_conditional_generator():
    with pytest.raises(ValueError, match="conditional=True needs a G with classes"):
        tiny_module(conditional=True, num_classes=0)


# --- the CLI: train, generate, evaluate, resume ---------------------------------------------
@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory) -> Path:
    """A tiny conditional run on the digits with the class metrics evaluated at its end."""
    from tests.conftest import run_cli

    run_dir = tmp_path_factory.mktemp("conditional") / "run"
    cache = run_dir.parent / "domain"
    run_cli(
        "debug=fast", *TINY, *CONDITIONAL, f"hydra.run.dir={run_dir}",
        "trainer.limit_val_batches=1.0", "trainer.check_val_every_n_epoch=1", "data.val_size=300",
        "model.metrics.domain_epochs=2", f"model.metrics.cache_dir={cache}",
    )  # fmt: skip
    return run_dir


def test_training_logs_the_class_conditional_metrics(conditional_run):
    with open(conditional_run / "metrics.csv", newline="") as file:
        rows = [r for r in csv.DictReader(file) if r.get("val/class_accuracy")]
    assert len(rows) == 1
    assert 0 <= float(rows[0]["val/class_accuracy"]) <= 1
    assert float(rows[0]["val/intra_fid"]) > 0
    assert 0 <= float(rows[0]["val/intra_recall"]) <= 1


def test_the_sample_grid_shows_one_row_per_class(conditional_run):
    grid = np.array(Image.open(conditional_run / "samples" / "epoch_000.png").convert("L"))
    margin = grid.shape[1] - (8 * 66 + 2)  # 8 columns x 10 rows of 32x32 shown at 64, padding 2
    assert grid.shape[0] == 10 * 66 + 2 and 8 <= margin <= 60
    for row in range(10):  # each row's class name is written in the margin on its left
        band = grid[2 + row * 66 : (row + 1) * 66, :margin]
        assert band.max() > 200, row
    checkpoint = load_checkpoint(conditional_run / "checkpoints" / "last.ckpt")
    assert checkpoint["class_names"] == [str(d) for d in range(10)]
    for net in ("generator", "discriminator"):  # from the data, not typed or written in
        assert "num_classes" not in checkpoint["config"]["model"][net]
    assert load_generator(str(conditional_run / "checkpoints" / "last.ckpt"))[0].num_classes == 10


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def read_pngs(folder: Path) -> torch.Tensor:
    files = sorted(folder.glob("*.png"))
    # save_image writes grey images as RGB: the first channel
    pictures = [np.array(Image.open(f).convert("RGB"))[..., 0] for f in files]
    return torch.from_numpy(np.stack(pictures)).float() / 255


def rendered(images: torch.Tensor) -> torch.Tensor:
    """What save_image writes for images in [-1, 1], as floats in [0, 1]."""
    unit = (images.clamp(-1, 1) + 1) / 2
    return unit.mul(255).add(0.5).clamp(0, 255).to(torch.uint8)[:, 0].float() / 255


def distinct_classes(ckpt: Path, tmp_path: Path) -> Path:
    """The run's checkpoint with a random shift per class in every conditional BatchNorm of
    G (4 batches of training leave them near their initial 0), so the label visibly matters."""
    checkpoint = torch.load(ckpt, weights_only=True)
    state = checkpoint["state_dict"]
    shifts = [k for k in state if k.startswith("generator.") and k.endswith(".bias.weight")]
    assert shifts
    for name in shifts:
        state[name] = torch.randn(state[name].shape, generator=torch.Generator().manual_seed(0))
    checkpoint[CHECKSUM_KEY] = payload_checksum(checkpoint)
    torch.save(checkpoint, tmp_path / "distinct.ckpt")
    return tmp_path / "distinct.ckpt"


def test_label_k_writes_only_class_k_samples(conditional_run, tmp_path):
    ckpt = distinct_classes(conditional_run / "checkpoints" / "last.ckpt", tmp_path)
    status, err = run_entry("src.generate", f"ckpt_path={ckpt}", "n=12", "seed=5", "label=3",
                            f"out={tmp_path / 'threes'}")  # fmt: skip
    assert status == 0, err
    written = read_pngs(tmp_path / "threes" / "images")
    generator, _ = load_generator(str(ckpt))
    z = generator.sample_latent(12, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        threes = rendered(generator(z, torch.full((12,), 3)))
        fours = rendered(generator(z, torch.full((12,), 4)))
    assert (written - threes).abs().max() <= 1 / 255
    assert (written - fours).abs().max() > 10 / 255  # the label changes the image
    rows = read_csv(tmp_path / "threes" / "labels.csv")
    assert {r["label"] for r in rows} == {"3"} and len(rows) == 12


def test_without_a_label_classes_are_uniform_and_listed_in_labels_csv(conditional_run, tmp_path):
    ckpt = conditional_run / "checkpoints" / "last.ckpt"
    status, err = run_entry("src.generate", f"ckpt_path={ckpt}", "n=40", "seed=1",
                            f"out={tmp_path / 'all'}")  # fmt: skip
    assert status == 0, err
    rows = read_csv(tmp_path / "all" / "labels.csv")
    assert [r["file"] for r in rows] == [f"{i:06d}.png" for i in range(40)]
    labels = torch.tensor([int(r["label"]) for r in rows])
    assert len(set(labels.tolist())) >= 8 and all(r["class"] == r["label"] for r in rows)
    generator, _ = load_generator(str(ckpt))
    rng = torch.Generator().manual_seed(1)
    z = generator.sample_latent(40, generator=rng)
    assert torch.equal(generator.sample_labels(40, generator=rng), labels)
    with torch.no_grad():
        expected = rendered(generator(z, labels))
    assert (read_pngs(tmp_path / "all" / "images") - expected).abs().max() <= 1 / 255
    assert (tmp_path / "all" / "interpolation.png").is_file()


def test_labels_csv_quotes_class_names_and_a_rerun_replaces_the_images(conditional_run, tmp_path):
    """A class named `x,y` stays one field (the csv module); a second generate into the same
    out= leaves only its own images, also after a killed one left its staging folder."""
    import csv as csv_module

    ckpt = tmp_path / "named.ckpt"
    checkpoint = torch.load(conditional_run / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["class_names"] = ["x,y", 'say "hi"', *map(str, range(2, 10))]
    checkpoint[CHECKSUM_KEY] = payload_checksum(checkpoint)
    torch.save(checkpoint, ckpt)
    out = tmp_path / "out"
    for n in (30, 12):
        status, err = run_entry("src.generate", f"ckpt_path={ckpt}", f"n={n}", f"out={out}")
        assert status == 0, err
        (out / ".images.killed").mkdir(exist_ok=True)  # what a killed generate leaves
    with open(out / "labels.csv", newline="") as file:
        rows = list(csv_module.reader(file))
    assert rows[0] == ["file", "label", "class"] and all(len(r) == 3 for r in rows)
    named = {r[2] for r in rows[1:] if r[1] in ("0", "1")}
    assert named <= {"x,y", 'say "hi"'} and len(rows) == 1 + 12
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"{i:06d}.png" for i in range(12)]
    (out / "images" / "mine.txt").write_text("not ours")
    status, err = run_entry("src.generate", f"ckpt_path={ckpt}", "n=4", f"out={out}")
    one_line(status, err, "images/ holds files src.generate did not write")


@pytest.mark.parametrize("label", ["10", "-1", "two"])
def test_a_label_out_of_range_is_one_line(conditional_run, tmp_path, label):
    ckpt = conditional_run / "checkpoints" / "last.ckpt"
    status, err = run_entry("src.generate", f"ckpt_path={ckpt}", f"label={label}",
                            f"out={tmp_path}")  # fmt: skip
    if label == "two":  # the schema's type, before the checkpoint is read
        one_line(status, err, "label='two': allowed: an integer")
    else:
        one_line(status, err, f"label={label}", "[0, 9]")


@pytest.mark.slow  # a training run of its own
def test_a_label_for_an_unconditional_model_is_one_line(train_cli, tmp_path):
    run = train_cli("logger=none")
    status, err = run_entry("src.generate", f"ckpt_path={run}/checkpoints/last.ckpt", "label=1",
                            f"out={tmp_path / 'g'}")  # fmt: skip
    one_line(status, err, "label=1", "unconditional")


def test_evaluate_reports_class_metrics_next_to_the_real_floor(conditional_run, tmp_path):
    out = tmp_path / "metrics.json"
    status, err = run_entry(
        "src.evaluate", f"ckpt_path={conditional_run}/checkpoints/last.ckpt", "n=200",
        "num_real=300", "domain_epochs=2", f"cache_dir={conditional_run.parent / 'domain'}",
        f"out={out}",
    )  # fmt: skip
    assert status == 0, err
    report = json.loads(out.read_text())
    for name in ("class_accuracy", "intra_fid", "intra_precision", "intra_recall", "fid_class_9"):
        assert name in report["metrics"] and name in report["real_vs_real"], name
    floor = report["real_vs_real"]
    assert floor["class_accuracy"] > 0.5  # real images under their own labels
    assert floor["intra_fid"] < report["metrics"]["intra_fid"]  # 4 batches of training


@pytest.mark.slow  # three training runs
def test_resuming_a_conditional_run_is_bitwise_the_uninterrupted_run(train_entry, tmp_path):
    # optimizer=adam: no lr schedule, whose length would depend on max_epochs
    settings = [
        *CONDITIONAL,
        "model/ema=average",
        "model.ema.decay=0.9",
        "model.discriminator.condition=acgan",
        "optimizer=adam",
    ]
    extra = [*settings, "+callbacks.dump._target_=tests.helpers.DumpWeights"]
    for name in ("full", "resumed"):
        (tmp_path / name).mkdir()
    status, err = train_entry(*extra, f"+callbacks.dump.dirpath={tmp_path / 'full'}",
                              "trainer.max_epochs=2", run_dir=tmp_path / "a")  # fmt: skip
    assert status == 0, err
    status, err = train_entry(*settings, run_dir=tmp_path / "b")
    assert status == 0, err
    status, err = train_entry(
        *extra, f"+callbacks.dump.dirpath={tmp_path / 'resumed'}", "trainer.max_epochs=2",
        f"ckpt_path={tmp_path / 'b' / 'checkpoints' / 'last.ckpt'}", run_dir=tmp_path / "c",
    )  # fmt: skip
    assert status == 0, err
    full, resumed = (torch.load(tmp_path / n / "rank_0.pt") for n in ("full", "resumed"))
    assert full.keys() == resumed.keys() and any("classifier" in k for k in full)
    for name in full:
        assert torch.equal(full[name], resumed[name]), name


def test_a_checkpoint_with_other_classes_is_one_line(conditional_run, train_entry, tmp_path):
    ckpt = conditional_run / "checkpoints" / "last.ckpt"
    status, err = train_entry("logger=csv", f"ckpt_path={ckpt}", run_dir=tmp_path / "u")
    one_line(status, err, "model.conditional=False", "trained with model.conditional=True")


def test_a_folder_with_class_sub_folders_trains_conditionally_streaming(train_entry, tmp_path):
    root = write_folder(tmp_path / "pets")
    status, err = train_entry(
        *CONDITIONAL, "data=folder", f"data.root={root}", "data.image_size=16",
        "data.batch_size=4", "data.resident=false", "data.num_workers=0",
    )  # fmt: skip
    assert status == 0, err
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert checkpoint["class_names"] == ["a", "b"]
    assert checkpoint["state_dict"]["fixed_labels"].tolist() == [0] * 8 + [1] * 8


def test_num_classes_is_not_a_key(train_entry):
    status, err = train_entry(*CONDITIONAL, "model.num_classes=5")
    assert status != 0 and "model.num_classes" in err and "Traceback" not in err


@pytest.mark.slow  # W&B start-up
def test_wandb_shows_the_per_class_grid_with_the_class_names(train_cli, tmp_path):
    run_dir = train_cli("model.conditional=true", "logger=wandb")
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    (grid,) = (offline / "files" / "media" / "images").glob("samples_*.png")
    width, height = Image.open(grid).size  # one row per class, the class names in a margin
    assert height == 10 * 66 + 2 and 8 * 66 + 2 + 8 <= width <= 8 * 66 + 2 + 60
    (events,) = offline.glob("*.wandb")
    assert b"epoch 0; rows: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9" in events.read_bytes()
