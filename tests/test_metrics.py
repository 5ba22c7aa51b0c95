"""Sample-quality metrics against closed forms and sanity orderings; generate/evaluate CLIs."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from src.data.digits import Digits
from src.metrics.evaluator import Evaluator
from src.metrics.quality import (
    frechet_distance,
    kernel_inception_distance,
    precision_recall_density_coverage,
)
from tests.conftest import TINY, run_cli
from tests.test_reliability import Payload


@pytest.mark.parametrize(("shift", "scale"), [(0.0, 1.0), (0.5, 1.0), (0.0, 2.0), (1.0, 0.5)])
def test_fid_of_gaussians_matches_the_closed_form(shift, scale):
    """real ~ N(0, I_d), fake ~ N(shift * 1, scale^2 I_d): FID = d shift^2 + d (1 - scale)^2."""
    d, n = 8, 50_000
    rng = torch.Generator().manual_seed(0)
    real = torch.randn(n, d, generator=rng, dtype=torch.float64)
    fake = torch.randn(n, d, generator=rng, dtype=torch.float64) * scale + shift
    expected = d * shift**2 + d * (1 - scale) ** 2
    assert frechet_distance(real, fake) == pytest.approx(expected, abs=0.05 * d)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    rng = torch.Generator().manual_seed(0)
    a, b = (torch.randn(2000, 8, generator=rng, dtype=torch.float64) for _ in range(2))
    same, shifted = kernel_inception_distance(a, b), kernel_inception_distance(a, b + 1)
    assert abs(same) < 0.05 * shifted and shifted > 0


def test_precision_recall_are_one_for_identical_sets_and_zero_for_disjoint_ones():
    rng = torch.Generator().manual_seed(0)
    real = torch.randn(500, 4, generator=rng)
    same = precision_recall_density_coverage(real, real.clone())
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    far = precision_recall_density_coverage(real, real + 100)
    assert far["precision"] == far["recall"] == far["density"] == far["coverage"] == 0.0


@pytest.fixture(scope="module")
def domain_cache(tmp_path_factory) -> Path:
    """A cache holding the digits domain model (the default recipe), trained once for this
    module; the CLI tests point at it instead of training their own."""
    cache = tmp_path_factory.mktemp("domain")
    Evaluator(Digits(), num_real=1000, cache=cache)
    return cache


@pytest.fixture(scope="module")
def evaluator(domain_cache):
    return Evaluator(Digits(), num_real=1000, cache=domain_cache)


def test_domain_fid_orders_real_noisy_and_noise(evaluator):
    # the default recipe's held-out accuracy on the digits (0.98 over 3 seeds, metric_cost)
    assert evaluator.model.test_accuracy > 0.96 and evaluator.model.labelled
    held_out = evaluator.held_out
    real_vs_real = evaluator.evaluate(held_out)["fid"]
    noisy = []
    rng = torch.Generator().manual_seed(0)
    for sigma in (0.1, 0.3, 0.6):
        images = (held_out + sigma * torch.randn(held_out.shape, generator=rng)).clamp(-1, 1)
        noisy.append(evaluator.evaluate(images)["fid"])
    noise = evaluator.evaluate(torch.rand(len(held_out), 1, 32, 32) * 2 - 1)["fid"]
    assert real_vs_real < noisy[0] < noisy[1] < noisy[2] < noise
    assert noise > 10 * real_vs_real


def test_generate_and_evaluate_a_checkpoint_through_the_cli(train_cli, tmp_path, domain_cache):
    run_dir = train_cli("logger=csv")
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    out = tmp_path / "gen"
    run_cli(f"ckpt_path={ckpt}", "n=20", f"out={out}", module="src.generate")
    assert len(list((out / "images").glob("*.png"))) == 20
    assert Image.open(out / "images" / "000000.png").size == (32, 32)  # one image per file
    # 20 images, 8 a row, each shown at 64x64; the files themselves at the data's 32x32
    assert Image.open(out / "grid.png").size == (8 * 66 + 2, 3 * 66 + 2)
    assert Image.open(out / "interpolation.png").size == (10 * 66 + 2, 4 * 66 + 2)
    assert Image.open(next((out / "images").glob("*.png"))).size == (32, 32)

    report_path = tmp_path / "metrics.json"
    result = run_cli(
        f"ckpt_path={ckpt}", "n=200", "num_real=500", "domain_epochs=2",
        f"cache_dir={domain_cache}", f"out={report_path}", module="src.evaluate",
    )  # fmt: skip
    assert "fid" in result.stdout and "real vs real" in result.stdout
    report = json.loads(report_path.read_text())
    for name in ("fid", "kid", "precision", "recall", "class_coverage"):
        assert name in report["metrics"] and name in report["real_vs_real"]
    # a 4-batch run is far from the data: its FID is well above the real-vs-real floor
    assert report["metrics"]["fid"] > 2 * report["real_vs_real"]["fid"]


@pytest.mark.parametrize("module", ["src.generate", "src.evaluate"])
def test_generate_and_evaluate_refuse_a_bad_checkpoint_in_one_line(tmp_path, module):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"PK\x03\x04 not really a checkpoint")
    marker, evil = tmp_path / "pwned", tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": Payload(marker)}, evil)
    for path, says in ((bad, "unreadable"), (evil, "refused")):
        result = run_cli(f"ckpt_path={path}", module=module, check=False)
        assert result.returncode == 2
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: config error: ckpt_path=") and says in line
    assert not marker.exists()


QUALITY_FAST = [
    "trainer.limit_val_batches=1.0", "trainer.check_val_every_n_epoch=1", "data.val_size=200",
    "model.metrics.domain_epochs=2",
]  # fmt: skip


def test_validation_metrics_are_logged_and_monitored_during_training(train_cli, domain_cache):
    run_dir = train_cli(
        "logger=wandb", *QUALITY_FAST, f"model.metrics.cache_dir={domain_cache}",
        "callbacks.model_checkpoint.monitor=val/fid", "optimized_metric=val/fid",
    )  # fmt: skip
    with open(run_dir / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["val/fid"]]
    assert len(rows) == 1  # one evaluation: the last (and only) epoch
    for name in ("val/fid", "val/kid", "val/precision", "val/recall"):
        assert float(rows[0][name]) == float(rows[0][name])  # a number, not NaN
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    callback_state = next(v for k, v in checkpoint["callbacks"].items() if "ModelCheckpoint" in k)
    assert callback_state["monitor"] == "val/fid"
    # what measuring cost, in the run's log
    cost = re.search(r"Quality metrics took ([\d.]+) s: .* ([\d.]+) s, 1 evaluations ([\d.]+) s",
                     (run_dir / "train.log").read_text())  # fmt: skip
    assert cost and float(cost[1]) == pytest.approx(float(cost[2]) + float(cost[3]), abs=0.11)
    assert float(callback_state["best_model_score"]) == pytest.approx(float(rows[0]["val/fid"]))
    (events,) = (run_dir / "wandb").glob("offline-run-*/*.wandb")  # W&B got them too
    assert all(name.encode() in events.read_bytes() for name in ("val/fid", "val/recall"))


def test_unlabelled_data_gets_the_domain_metrics_without_class_metrics(train_cli, tmp_path):
    """No labels: the extractor learns rotations instead, and the class metrics are left out."""
    run_dir = train_cli(
        "logger=csv", "data=fake", "data.num_images=300", "data.image_size=16",
        "data.channels=1", *QUALITY_FAST, "model.metrics.domain_epochs=1",
        f"model.metrics.cache_dir={tmp_path / 'cache'}",
    )  # fmt: skip
    with open(run_dir / "metrics.csv") as f:
        (row,) = [r for r in csv.DictReader(f) if r.get("val/fid")]
    assert float(row["val/fid"]) > 0 and 0 <= float(row["val/recall"]) <= 1
    assert "val/class_coverage" not in row


@pytest.mark.slow  # a sweep
def test_optuna_search_runs_three_tiny_trials_and_reports_the_best_fid(tmp_path):
    sweep = tmp_path / "sweep"
    run_cli(
        "hparams_search=optuna", "hydra.sweeper.n_trials=3",
        "hydra.sweeper.sampler.n_startup_trials=2",
        "debug=fast", "data.batch_size=16", "logger=csv", *QUALITY_FAST,
        f"model.metrics.cache_dir={tmp_path}/cache", f"hydra.sweep.dir={sweep}",
        "callbacks.progress_bar.refresh_rate=0",
    )  # fmt: skip
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(results["best_params"]) == {
        "optimizer.lr", "optimizer.momentum", "model.d_steps_per_g_step",
        "model.generator.ngf", "model.discriminator.ndf",
    }  # fmt: skip
    trials = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    # each trial's folder: its number, then its sampled values (two trials may share them)
    assert [t.split("_lr=")[0] for t in trials] == ["0", "1", "2"], trials
    fids = []
    for trial in trials:
        with open(sweep / trial / "metrics.csv") as f:
            fids += [float(r["val/fid"]) for r in csv.DictReader(f) if r["val/fid"]]
    assert results["best_value"] == pytest.approx(min(fids))
    # the local report shows the optimization history and the best parameters
    run_cli(str(sweep), module="src.report")
    page = (sweep / "report.html").read_text()
    assert f"Optuna: best val/fid {results['best_value']}" in page
    assert page.count("finished") == 3
    assert "Parameter importances (Optuna" in page


def test_fid_equals_pytorch_fids_reference_implementation():
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = torch.Generator().manual_seed(3)
    real = torch.randn(3000, 16, generator=rng, dtype=torch.float64)
    mix = torch.randn(16, 16, generator=rng, dtype=torch.float64) / 4
    fake = torch.randn(3000, 16, generator=rng, dtype=torch.float64) @ (torch.eye(16) + mix) + 0.3
    stats = [(x.mean(0).numpy(), torch.cov(x.T).numpy()) for x in (real, fake)]
    expected = calculate_frechet_distance(*stats[0], *stats[1])
    assert frechet_distance(real, fake) == pytest.approx(expected, rel=1e-5)


def write_inception_weights(path) -> None:
    """A weights file in torch-fidelity's format, written here (random values: no network).

    The architecture is built with loading switched off, its state_dict saved; the code
    under test then loads that file the normal way.
    """
    import torch_fidelity.feature_extractor_inceptionv3 as fidelity

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fidelity, "load_state_dict_from_url", lambda *a, **k: None)
        patch.setattr(fidelity.FeatureExtractorInceptionV3, "load_state_dict", lambda *a: None)
        net = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.save(net.state_dict(), path)


def test_inception_backend_loads_weights_from_disk_and_is_skipped_without_them(
    tmp_path, evaluator, caplog, monkeypatch
):
    from src.metrics.inception import InceptionFeatures, find_weights

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with caplog.at_level("INFO"):
        assert find_weights(None) is None
    assert "Inception FID skipped" in caplog.text
    weights = tmp_path / "inception.pth"
    write_inception_weights(weights)
    features = InceptionFeatures(find_weights(str(weights), unverified=True))
    real = features(evaluator.real[:12])  # grey digits, repeated to RGB, resized to 299
    assert real.shape == (12, 2048) and real.dtype == torch.float64
    assert torch.isfinite(real).all()


def test_training_the_domain_model_leaves_the_training_rng_alone():
    """A run must not depend on whether the extractor was cached: training it (the uncached
    case) may not move the global RNG that G's noise and the augmentations draw from."""
    from src.metrics.domain import train_domain_model

    images = torch.rand(40, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    state = torch.random.get_rng_state()
    train_domain_model(images, None, epochs=1)
    assert torch.equal(torch.random.get_rng_state(), state)


@pytest.mark.filterwarnings("error::UserWarning")  # e.g. an empty legend
def test_the_sweep_report_ranks_optuna_parameters_by_importance(tmp_path):
    """A finished Optuna sweep on disk (jobs' overrides, metrics.csv, optimization_results):
    val/fid follows the lr and ignores the width, so lr ranks first."""
    from src.report import report

    rng = np.random.default_rng(0)
    for trial in range(10):
        lr, width = float(rng.uniform(1e-4, 1e-3)), int(rng.choice([16, 32]))
        job = tmp_path / str(trial)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(
            yaml.safe_dump([f"optimizer.lr={lr}", f"model.generator.ngf={width}"])
        )
        (job / "metrics.csv").write_text(f"epoch,step,val/fid\n0,10,{1e5 * lr:.4f}\n")
    (tmp_path / "optimization_results.yaml").write_text(
        yaml.safe_dump(
            {"best_params": {"optimizer.lr": 1e-4, "model.generator.ngf": 16}, "best_value": 10.0}
        )  # fmt: skip
    )
    page = report(tmp_path).read_text()
    assert "Parameter importances (Optuna, mean decrease in impurity): optimizer.lr" in page
    assert (tmp_path / "report.png").is_file()


class RunsCode:
    """A pickle that would call os.system when unpickled in full."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_inception_weights_are_data_checked_before_any_work(tmp_path):
    """A file is hashed against torch-fidelity's FID weights (another only by opting in), read
    weights-only (a pickle that would run code does not), and must hold Inception-V3's tensors;
    each problem is one line naming inception_weights."""
    from src.errors import ConfigError
    from src.metrics.inception import WEIGHTS_SHA256, InceptionFeatures, find_weights

    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pth"
    torch.save({"x": RunsCode(marker)}, evil)
    text = tmp_path / "notes.pth"
    text.write_text("not weights\n")
    small = tmp_path / "small.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, small)
    with pytest.raises(ConfigError, match=r"inception_weights=.*no such file"):
        find_weights(str(tmp_path / "missing.pth"))
    with pytest.raises(ConfigError, match=r"its SHA-256 \w+\.\.\. is not that of torch-fidelity"):
        find_weights(str(small))
    for path, message in [(evil, "not readable as weights"), (text, "not readable as weights"),
                          (small, "not Inception-V3 FID weights")]:  # fmt: skip
        weights = find_weights(str(path), unverified=True)
        assert not weights.verified and weights.provenance()["loaded"] == "weights_only"
        with pytest.raises(ConfigError, match=message):
            InceptionFeatures(weights)
    assert not marker.exists()  # the pickle's code never ran
    assert len(WEIGHTS_SHA256) == 64 and WEIGHTS_SHA256.startswith("6726825d")


# --- reference statistics (issue 38) and independent implementations --------------------------
@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("stats") / "run"
    run_cli("debug=fast", *TINY, "logger=csv", f"hydra.run.dir={run_dir}")
    return run_dir / "checkpoints" / "last.ckpt"


def evaluate_json(ckpt: Path, out: Path, cache: Path, *extra: str, check: bool = True):
    result = run_cli(f"ckpt_path={ckpt}", "n=200", "num_real=500", f"cache_dir={cache}",
                     f"out={out}", *extra, module="src.evaluate", check=check)  # fmt: skip
    return json.loads(out.read_text()) if check else result


def test_saved_statistics_give_the_direct_comparison_and_a_pytorch_fid_file_is_read(
    tiny_ckpt, tmp_path, domain_cache
):
    stats = tmp_path / "digits_32px.npz"
    direct = evaluate_json(tiny_ckpt, tmp_path / "a.json", domain_cache, f"save_stats={stats}")
    saved = np.load(stats, allow_pickle=False)
    provenance = json.loads(str(saved["provenance"]))
    assert saved["mu"].shape == (128,) and saved["sigma"].shape == (128, 128)
    assert provenance["count"] == 500 and provenance["resolution"] == 32
    assert provenance["extractor"]["name"] == "domain-cnn-v2"
    assert provenance["extractor"] == direct["extractor"]
    from_file = evaluate_json(tiny_ckpt, tmp_path / "b.json", domain_cache, f"ref_stats={stats}")
    for name in ("fid", "kid", "precision", "recall", "density", "coverage"):
        assert from_file["metrics"][name] == pytest.approx(direct["metrics"][name], abs=1e-6)
    assert from_file["reference"]["provenance"] == provenance
    # written by another tool: pytorch-fid's layout (mu, sigma), numpy's estimates
    features = saved["features"]
    elsewhere = tmp_path / "elsewhere.npz"
    np.savez(elsewhere, mu=features.mean(0), sigma=np.cov(features, rowvar=False))
    theirs = evaluate_json(tiny_ckpt, tmp_path / "c.json", domain_cache, f"ref_stats={elsewhere}")
    assert theirs["metrics"]["fid"] == pytest.approx(direct["metrics"]["fid"], abs=1e-6)
    assert "kid" not in theirs["metrics"] and theirs["reference"]["provenance"] is None


@pytest.mark.parametrize(
    ("arrays", "fragment"),
    [({"mu": np.zeros(2048), "sigma": np.eye(2048)}, "has 128 features"),
     pytest.param({"m": np.zeros(3)}, "has no mu and sigma", marks=pytest.mark.slow),
     pytest.param(None, "not a .npz", marks=pytest.mark.slow)],
)  # fmt: skip
def test_statistics_of_another_extractor_or_no_statistics_are_refused_in_one_line(
    tiny_ckpt, tmp_path, domain_cache, arrays, fragment
):
    path = tmp_path / "ref.npz"
    if arrays is None:
        path.write_bytes(b"not an npz")
    else:
        np.savez(path, **arrays)
    result = evaluate_json(tiny_ckpt, tmp_path / "x.json", domain_cache, f"ref_stats={path}",
                           check=False)  # fmt: skip
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error: ")]
    assert result.returncode == 2 and line.startswith("error: config error: ref_stats=")
    assert fragment in line


def random_features(n: int, d: int, seed: int, rank: int | None = None) -> torch.Tensor:
    rng = torch.Generator().manual_seed(seed)
    if rank is None:
        return torch.randn(n, d, generator=rng, dtype=torch.float64)
    basis = torch.randn(rank, d, generator=rng, dtype=torch.float64)  # a nearly singular cov.
    noise = 1e-6 * torch.randn(n, d, generator=rng, dtype=torch.float64)
    return torch.randn(n, rank, generator=rng, dtype=torch.float64) @ basis + noise


@pytest.mark.parametrize("rank", [None, 3])
def test_frechet_distance_equals_pytorch_fids_also_near_singular_covariances(rank):
    from pytorch_fid.fid_score import calculate_frechet_distance

    real, fake = random_features(400, 16, 0, rank), random_features(400, 16, 1, rank) + 0.3
    stats = [(x.mean(0).numpy(), np.cov(x.numpy(), rowvar=False)) for x in (real, fake)]
    theirs = calculate_frechet_distance(*stats[0], *stats[1])
    assert frechet_distance(real, fake) == pytest.approx(theirs, rel=1e-5, abs=1e-6)


def test_precision_recall_density_coverage_equal_the_prdc_package():
    from prdc import compute_prdc

    real, fake = random_features(300, 8, 2), random_features(300, 8, 3) * 1.3 + 0.2
    ours = precision_recall_density_coverage(real, fake, k=5)
    theirs = compute_prdc(real.numpy(), fake.numpy(), nearest_k=5)
    for name in ("precision", "recall", "density", "coverage"):
        assert float(ours[name]) == pytest.approx(theirs[name], abs=1e-8), name


def test_kid_equals_torch_fidelitys_on_one_full_subset():
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, kid_features_to_metric

    real, fake = random_features(500, 8, 4), random_features(500, 8, 5) + 0.1
    theirs = kid_features_to_metric(real, fake, kid_subsets=1, kid_subset_size=500,
                                    verbose=False)[KEY_METRIC_KID_MEAN]  # fmt: skip
    assert kernel_inception_distance(real, fake) == pytest.approx(theirs, rel=1e-6, abs=1e-9)


SNAPSHOTS = ["debug=fast", *TINY, "logger=csv", "callbacks.snapshots.every_n_epochs=1"]


def test_a_run_with_three_snapshots_gives_three_rows_and_a_plot(tmp_path, domain_cache):
    run_dir = tmp_path / "run"
    run_cli(*SNAPSHOTS, "trainer.max_epochs=3", f"hydra.run.dir={run_dir}")
    assert sorted(p.name for p in (run_dir / "snapshots").iterdir()) == [
        "epoch_001.ckpt", "epoch_002.ckpt", "epoch_003.ckpt"]  # fmt: skip
    score = ("n=100", "num_real=300", f"cache_dir={domain_cache}", f"run_dir={run_dir}")
    run_cli(*score, module="src.evaluate")
    table = run_dir / "metrics_over_time.csv"
    rows = list(csv.DictReader(table.open()))
    assert [(r["snapshot"], r["epoch"]) for r in rows] == [
        ("epoch_001.ckpt", "1"), ("epoch_002.ckpt", "2"), ("epoch_003.ckpt", "3")]  # fmt: skip
    assert [int(r["images_seen"]) for r in rows] == [64, 128, 192]  # 4 batches of 16 an epoch
    assert all(float(r["fid"]) > 0 and 0 <= float(r["recall"]) <= 1 for r in rows)
    assert Image.open(run_dir / "plots" / "metrics_over_time.png").size[0] > 300
    before = table.read_text()
    again = run_cli(*score, module="src.evaluate")  # each snapshot is scored once
    assert table.read_text() == before and "epoch_001" not in again.stdout


@pytest.mark.slow  # training and its evaluation in two processes side by side
def test_follow_scores_each_new_snapshot_and_stops_when_the_run_ends(tmp_path, domain_cache):
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    run_dir = tmp_path / "run"
    training = subprocess.Popen(
        [sys.executable, "-m", "src.train", *SNAPSHOTS, "trainer.max_epochs=4",
         "trainer.limit_train_batches=20", f"hydra.run.dir={run_dir}"], cwd=ROOT,
    )  # fmt: skip
    while not (run_dir / ".lock").exists() and training.poll() is None:
        time.sleep(0.1)
    following = subprocess.run(
        [sys.executable, "-m", "src.evaluate", "n=100", "num_real=300",
         f"cache_dir={domain_cache}", f"run_dir={run_dir}", "follow=true"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert training.wait(timeout=60) == 0
    assert following.returncode == 0, following.stderr[-2000:]
    rows = list(csv.DictReader((run_dir / "metrics_over_time.csv").open()))
    assert [r["snapshot"] for r in rows] == [f"epoch_00{i}.ckpt" for i in (1, 2, 3, 4)]


PROTOCOL = ("protocol={reported_fid:17.81,source:'a paper',samples:20,num_real:60,"
            "reference:'the train split',extractor:inception,resize:bilinear}")  # fmt: skip


def test_protocol_paper_needs_the_presets_protocol_and_inception_weights(
    tiny_ckpt, tmp_path, domain_cache, monkeypatch
):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no weights there
    result = evaluate_json(tiny_ckpt, tmp_path / "x.json", domain_cache, "protocol=paper",
                           check=False)  # fmt: skip
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error: ")]
    assert result.returncode == 2 and "protocol='paper'" in line and "names no protocol" in line
    run_dir = tmp_path / "run"
    run_cli("debug=fast", *TINY, "logger=csv", PROTOCOL, f"hydra.run.dir={run_dir}")
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    result = evaluate_json(ckpt, tmp_path / "y.json", domain_cache, "protocol=paper",
                           check=False)  # fmt: skip
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error: ")]
    assert result.returncode == 2 and "inception_weights" in line and "a paper" in line


@pytest.mark.slow  # Inception-V3 on a CPU
def test_protocol_paper_applies_the_presets_samples_and_reference(tmp_path, domain_cache):
    run_dir = tmp_path / "run"
    run_cli("debug=fast", *TINY, "logger=csv", PROTOCOL, f"hydra.run.dir={run_dir}")
    weights = tmp_path / "inception.pth"
    write_inception_weights(weights)
    report = evaluate_json(run_dir / "checkpoints" / "last.ckpt", tmp_path / "p.json",
                           domain_cache, "protocol=paper", f"inception_weights={weights}",
                           "inception_unverified=true")  # fmt: skip
    assert report["n"] == 20 and report["reference"] == {"images": 60}
    assert report["protocol"]["reported_fid"] == 17.81 and "fid_inception" in report["metrics"]
    assert report["inception_weights"]["loaded"] == "weights_only"
