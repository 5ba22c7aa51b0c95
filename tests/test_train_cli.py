"""`python -m src.train` end to end: the run-directory contract, W&B offline, sweeps."""

import csv
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from tests.conftest import ROOT, TINY, run_cli

METRICS = ("train/loss_d", "train/loss_g", "train/d_real", "train/d_fake")


def load_checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


def test_fast_run_writes_the_whole_run_directory_contract(train_cli):
    run_dir = train_cli("logger=csv")
    for name in ("checkpoints/last.ckpt", "plots/losses.png", "metrics.csv", ".hydra/config.yaml"):
        assert (run_dir / name).is_file(), name
    # 8x8 grid of 32x32 images shown at 64x64 (nearest), make_grid's 2-pixel padding
    assert Image.open(run_dir / "samples" / "epoch_000.png").size == (8 * 66 + 2, 8 * 66 + 2)
    real = Image.open(run_dir / "samples" / "real.png")  # real images to compare with
    assert real.size == (8 * 66 + 2, 8 * 66 + 2)
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4  # debug=fast: 4 batches, logged every step
    for name in METRICS:
        values = [float(r[name]) for r in rows]
        assert all(v == v for v in values), name  # logged every step, no NaN
    # shares of the batch D takes for real, at its loss's boundary (least squares: 0.5)
    assert all(0 <= float(r[name]) <= 1 for r in rows for name in ("train/d_real", "train/d_fake"))

    checkpoint = load_checkpoint(run_dir)
    assert checkpoint["callbacks"]["LossPlot"]["epoch_ends"] == [4]  # the plot's epoch ticks
    assert checkpoint["state_dict"]["fixed_noise"].shape == (64, 100)
    assert len(checkpoint["optimizer_states"]) == 2
    assert checkpoint["config"]["optimizer"]["generator"]["_target_"] == "torch.optim.Adam"
    assert checkpoint["optimizer_classes"] == {"generator": "Adam", "discriminator": "Adam"}


def test_the_loss_plot_counts_epochs_and_draws_the_validation_metrics_when_measured(tmp_path):
    """Batch j of the n in epoch e sits at e + (j+1)/n; val/fid, precision and recall get a
    second panel; a checkpoint from before epoch ends were kept spreads its batches evenly."""
    from types import SimpleNamespace

    from src.callbacks.loss_plot import LossPlot

    plot = LossPlot(str(tmp_path / "losses.png"))
    losses = {"train/loss_d": [1.0, 0.9, 0.8, 0.7, 0.6], "train/loss_g": [2.0, 2.1, 2.2, 2.3, 2.4]}
    plot.load_state_dict({"history": losses, "epoch_ends": [2, 5], "measured": {}})
    assert plot.epochs() == [0.5, 1.0, 1 + 1 / 3, 1 + 2 / 3, 2.0]
    plot._plot()
    assert Image.open(tmp_path / "losses.png").height == 450  # one panel: nothing measured
    measured = {"val/fid": [(1.0, 80.0), (2.0, 40.0)], "val/recall": [(2.0, 0.5)]}
    plot.load_state_dict({"history": losses, "epoch_ends": [2, 5], "measured": measured})
    plot._plot()
    assert Image.open(tmp_path / "losses.png").height == 700
    assert plot.state_dict()["measured"]["val/fid"] == [(1.0, 80.0), (2.0, 40.0)]
    plot.load_state_dict({"history": {k: v[:4] for k, v in losses.items()}})  # an old one
    plot.on_train_start(SimpleNamespace(current_epoch=2), None)
    assert plot.epoch_ends == [2, 4] and plot.epochs() == [0.5, 1.0, 1.5, 2.0]


def test_image_size_and_channels_flow_from_the_data_config(train_cli):
    run_dir = train_cli("logger=none", "data.image_size=16", "data.channels=3")
    config = load_checkpoint(run_dir)["config"]
    assert config["model"]["generator"]["image_size"] == 16
    assert config["model"]["discriminator"]["channels"] == 3
    # 16x16 images shown at 64x64; G itself makes 16x16 RGB
    assert Image.open(run_dir / "samples" / "epoch_000.png").size == (8 * 66 + 2, 8 * 66 + 2)
    from src.models.loading import load_generator

    generator, _ = load_generator(str(run_dir / "checkpoints" / "last.ckpt"))
    assert generator(generator.sample_latent(2)).shape == (2, 3, 16, 16)


def test_wandb_offline_run_holds_the_config_metrics_and_sample_grids(train_cli, tmp_path):
    # No API key anywhere (HOME without .netrc): the run must go offline by itself.
    run_dir = train_cli(
        "logger=wandb", env={"WANDB_MODE": "", "WANDB_API_KEY": "", "HOME": str(tmp_path)}
    )
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    media = offline / "files" / "media" / "images"
    images = list(media.glob("samples_*.png"))
    assert len(images) == 1
    assert Image.open(images[0]).size == (530, 530)
    assert len(list(media.glob("real_*.png"))) == 1  # real training images, once
    # at the end: the last grid and the loss plot attached to the run
    assert len(list(media.glob("final/samples_*.png"))) == 1
    assert Image.open(next(media.glob("final/losses_*.png"))).size == (800, 450)
    # The event log `wandb sync` uploads: protobuf records with the metrics and the config.
    (events,) = offline.glob("*.wandb")
    log = events.read_bytes()
    for name in METRICS:
        assert log.count(name.encode()) >= 4, name  # one history record per logged step
    assert b"d_steps_per_g_step" in log and b"augmentation" in log
    assert (run_dir / "metrics.csv").is_file()  # the CSV logger runs alongside
    assert not (run_dir / "wandb" / "latest-run").exists()  # `wandb sync` would see it twice


@pytest.mark.slow  # a sweep: four jobs (default-suite budget)
def test_lr_momentum_grid_sweep_makes_one_run_dir_per_job(tmp_path):
    sweep_dir = tmp_path / "sweep"
    run_cli(
        "-m", "debug=fast", *TINY, "logger=csv", "trainer.limit_train_batches=2",
        "optimizer=adam", "optimizer.lr=1e-4,2e-4", "optimizer.momentum=0.5,0.9",
        f"hydra.sweep.dir={sweep_dir}",
    )  # fmt: skip
    jobs = sorted((p for p in sweep_dir.iterdir() if p.is_dir()), key=lambda p: int(p.name[0]))
    swept = ["lr=0.0001,optimizer.momentum=0.5", "lr=0.0001,optimizer.momentum=0.9",
             "lr=0.0002,optimizer.momentum=0.5", "lr=0.0002,optimizer.momentum=0.9"]  # fmt: skip
    # named by Hydra: the job number, then hydra.job.override_dirname (the job's overrides)
    for number, (job, values) in enumerate(zip(jobs, swept, strict=True)):
        assert job.name.startswith(f"{number}_") and f"optimizer.{values}" in job.name
    settings = set()
    for job in jobs:
        assert (job / "samples" / "epoch_000.png").is_file()
        # what each job's optimizers really used: lr and Adam's beta1 from the sweep axes
        for state in load_checkpoint(job)["optimizer_states"]:
            group = state["param_groups"][0]
            settings.add((group["lr"], group["betas"][0]))
    assert settings == {(1e-4, 0.5), (1e-4, 0.9), (2e-4, 0.5), (2e-4, 0.9)}

    # The local report: a job that died before logging anything is shown as failed.
    failed = sweep_dir / "4" / ".hydra"
    failed.mkdir(parents=True)
    (failed / "overrides.yaml").write_text("- optimizer.lr=0.0003\n- optimizer.momentum=0.5\n")
    result = run_cli(str(sweep_dir), module="src.report")
    assert "report.html" in result.stdout
    page = (sweep_dir / "report.html").read_text()
    assert page.count("<tr") == 1 + 5  # header + every job, the failed one included
    assert page.count("finished") == 4 and page.count("failed") == 1
    assert page.count("(best)") == 1 and page.count("data:image/png") == 4 + 1
    assert "<th>optimizer.lr</th><th>optimizer.momentum</th>" in page  # the swept keys
    assert Image.open(sweep_dir / "report.png").size[0] > 600


def test_a_sweep_runs_every_job_and_exits_non_zero_when_one_failed(tmp_path):
    """Job 0 is a config mistake: job 1 still runs, the failure is listed at the end, the
    sweep exits 2, and the report shows job 0 as failed with its reason."""
    sweep_dir = tmp_path / "sweep"
    result = run_cli(
        "-m", "debug=fast", *TINY, "logger=csv", "trainer.limit_train_batches=2",
        "data.image_size=48,32", f"hydra.sweep.dir={sweep_dir}", check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: job 0: config error: data.image_size=48" in result.stderr
    assert "error: 1 job(s) failed: 0" in result.stderr.strip().splitlines()[-1]
    (second,) = sweep_dir.glob("1_*data.image_size=32*")
    assert (second / "checkpoints" / "last.ckpt").is_file()
    run_cli(str(sweep_dir), module="src.report")
    page = (sweep_dir / "report.html").read_text()
    assert "failed: config error: data.image_size=48" in page and page.count("finished") == 1


def test_the_report_draws_around_damaged_jobs(tmp_path):
    """Random bytes for metrics.csv, cells that are no numbers, a broken overrides file: each
    job is listed (damaged, with why) and the others are drawn."""
    from src.report import report

    for job, (overrides, metrics) in enumerate([
        (b"- optimizer.lr=0.1\n", b"epoch,step,val/fid\n0,9,12.5\n"),
        (b"- optimizer.lr=0.2\n", bytes(range(256)) * 4),
        (b"- optimizer.lr=0.3\n", b"epoch,step,val/fid\n0,9,banana\n0,19,\n"),
        (b"- [unclosed\n", b"epoch,step,val/fid\n0,9,3.0\n"),
    ]):  # fmt: skip
        (tmp_path / str(job) / ".hydra").mkdir(parents=True)
        (tmp_path / str(job) / ".hydra" / "overrides.yaml").write_bytes(overrides)
        (tmp_path / str(job) / "metrics.csv").write_bytes(metrics)
    page = report(tmp_path).read_text()
    assert page.count("<tr") == 1 + 4 and page.count("damaged: ") == 2
    assert "12.5 (best)" in page and (tmp_path / "report.png").is_file()


def test_the_report_marks_the_best_job_plots_epochs_and_carries_its_images(tmp_path):
    from src.report import best, load_jobs, report

    grid = Image.new("L", (34, 34), 128)
    for lr, momentum, fid in [(1, 5, 30.0), (1, 9, 20.0), (2, 5, 10.0), (2, 9, 40.0)]:
        job = tmp_path / f"lr={lr},momentum={momentum}"
        (job / ".hydra").mkdir(parents=True)
        (job / "samples").mkdir()
        (job / ".hydra" / "overrides.yaml").write_text(f"- lr={lr}\n- momentum={momentum}\n")
        rows = "".join(f"{s // 20},{s},0.5,\n" for s in range(9, 40, 10)) + f"1,39,,{fid}\n"
        (job / "metrics.csv").write_text("epoch,step,train/loss_d,val/fid\n" + rows)
        grid.save(job / "samples" / "epoch_001.png")
    jobs = load_jobs(tmp_path)
    # 20 batches an epoch, logged every 10: at half and whole epochs, not at "logged step" 0..3
    assert jobs[0].epochs("train/loss_d") == [0.5, 1.0, 1.5, 2.0]
    assert best(jobs, "val/fid").path.name == "lr=2,momentum=5"
    page = report(tmp_path).read_text()
    (marked,) = [row for row in page.split("<tr")[1:] if "(best)" in row]
    assert "lr=2,momentum=5" in marked and "10 (best)" in marked
    assert 'src="samples/' not in page and "src='report.png'" not in page  # inline images
    assert page.count("data:image/png;base64,") == 4 + 1


def test_the_articles_sgd_setting_trains(train_cli):
    run_dir = train_cli("optimizer=sgd", "logger=csv")
    checkpoint = load_checkpoint(run_dir)
    assert checkpoint["optimizer_classes"] == {"generator": "SGD", "discriminator": "SGD"}
    for state in checkpoint["optimizer_states"]:  # both networks stepped with SGD's momentum
        assert state["param_groups"][0]["lr"] == 2e-4
        assert state["param_groups"][0]["momentum"] == 0.9
        assert all("momentum_buffer" in s for s in state["state"].values())


def test_fixed_noise_survives_a_resume_with_another_seed(train_cli, tmp_path):
    first = train_cli("logger=none", "seed=1", run_dir=tmp_path / "first")
    ckpt = first / "checkpoints" / "last.ckpt"
    resumed = train_cli(
        "logger=none", "seed=2", f"ckpt_path={ckpt}", "trainer.max_epochs=2",
        run_dir=tmp_path / "resumed",
    )  # fmt: skip
    noise = load_checkpoint(first)["state_dict"]["fixed_noise"]
    after = load_checkpoint(resumed)
    assert torch.equal(after["state_dict"]["fixed_noise"], noise)
    # It continued from epoch 1 rather than starting over.
    assert sorted(p.name for p in (resumed / "samples").iterdir()) == ["epoch_001.png", "real.png"]
    assert after["global_step"] == 2 * 4 * 2  # 2 epochs x 4 batches x (D step + G step)


def test_headline_multi_device_command_plans_four_gan_ddp_processes(tmp_path):
    """`python -m src.train model=dcgan trainer.devices=4`: data-parallel processes with our
    gan_ddp strategy (4 CPU processes on a machine without GPUs, however few its cores;
    nothing started here)."""
    from src.train import build_trainer, compose_config
    from src.utils.distributed import GANDDPStrategy

    cfg = compose_config(["model=dcgan", "trainer.devices=4", "hardware=cpu"], str(tmp_path))
    trainer = build_trainer(cfg.trainer, [], [])
    assert isinstance(trainer.strategy, GANDDPStrategy) and trainer.world_size == 4


def test_cluster_presets_compose(tmp_path):
    """hydra/launcher=slurm (submitit) and hardware=multinode resolve to a SLURM job of
    one task per GPU; nothing is submitted."""
    result = run_cli(
        "hydra/launcher=slurm", "hardware=multinode", "trainer.devices=4",
        f"hydra.run.dir={tmp_path}", "--cfg", "all", "--resolve",
    )  # fmt: skip
    config = yaml.safe_load(result.stdout)
    launcher = config["hydra"]["launcher"]
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert (launcher["nodes"], launcher["gpus_per_node"], launcher["tasks_per_node"]) == (2, 4, 4)
    assert config["trainer"]["strategy"] == "gan_ddp"


def test_bf16_mixed_precision_trains_on_cpu(train_cli):
    """The GPU fast path's precision, exercised where CI can: CPU autocast in bfloat16."""
    run_dir = train_cli("logger=csv", "trainer.precision=bf16-mixed")
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert all(float(r["train/loss_d"]) == float(r["train/loss_d"]) for r in rows)  # not NaN
    assert float(rows[-1]["train/nonfinite_steps"]) == 0


def test_a_linear_decay_schedule_reaches_zero_lr_at_the_end_of_training(train_cli):
    run_dir = train_cli(
        "logger=csv", "trainer.max_epochs=2", "trainer.limit_train_batches=4",
        "callbacks.model_checkpoint.save_top_k=-1", "optimizer=adam_decay",
        "optimizer.lr=2e-4",
    )  # fmt: skip
    lrs = {}
    for name in ("epoch_000", "last"):
        checkpoint = torch.load(run_dir / "checkpoints" / f"{name}.ckpt", weights_only=True)
        lrs[name] = [s["param_groups"][0]["lr"] for s in checkpoint["optimizer_states"]]
        assert len(checkpoint["lr_schedulers"]) == 2  # D's and G's, saved for resuming
    assert lrs["epoch_000"] == pytest.approx([2e-4, 2e-4])  # 4 of 8 batches: decay starts
    assert lrs["last"] == pytest.approx([0.0, 0.0])


@pytest.mark.slow  # a sweep
def test_each_job_of_a_sweep_gets_its_own_named_and_grouped_wandb_run(tmp_path):
    """2 x 2 jobs in one process: four offline W&B runs, one per job directory, each holding
    only its own job's history, named by its swept values, all in the sweep's group."""
    sweep_dir = tmp_path / "sweep_x"
    run_cli(
        "-m", "debug=fast", *TINY, "logger=wandb", "optimizer.lr=1e-4,2e-4",
        "optimizer.momentum=0.5,0.9", f"hydra.sweep.dir={sweep_dir}",
    )  # fmt: skip
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    names, ids = set(), set()
    for job in jobs:
        (run,) = (job / "wandb").glob("offline-run-*/run-*.wandb")  # exactly one run per job
        ids.add(run.stem)
        log = run.read_bytes()
        assert log.count(b"train/loss_d") >= 4  # its own 4 steps were logged into it
        assert b"sweep_x" in log  # the group: the sweep directory's name
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        swept = [
            o.split("=", 1) for o in overrides if o.startswith(("optimizer.lr=", "optimizer.m"))
        ]
        name = ",".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, value in swept)
        assert name.encode() in log  # named by its swept values; its folder by Hydra
        assert job.name.endswith(",".join(f"{key}={value}" for key, value in swept)) or all(
            f"{key}={value}" in job.name for key, value in swept)  # fmt: skip
        names.add(name)
    assert len(jobs) == len(ids) == len(names) == 4


def test_hinge_loss_with_a_lazy_r1_penalty_through_the_cli(train_cli):
    run_dir = train_cli(
        "logger=csv", "model/loss=hinge", "model/regularizers=[r1,lecam]",
        "model.regularizers.r1.weight=1", "model.regularizers.r1.every=2",
        "model.discriminator.norm=spectral",
    )  # fmt: skip
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    penalties = [r["train/r1"] for r in rows]
    # computed on batches 2 and 4 only; a row between shows the last computed value
    assert penalties[0] == "" and penalties[2] == penalties[1] != penalties[3]
    assert all(float(p) > 0 for p in penalties[1:])
    checkpoint = load_checkpoint(run_dir)
    assert checkpoint["config"]["model"]["loss"]["_target_"] == "src.models.losses.Hinge"
    assert checkpoint["state_dict"]["regularizers.lecam.ema"].abs().sum() > 0


def test_r1_and_r2_at_once_are_configuration(train_cli):
    run_dir = train_cli(
        "logger=csv",
        "model/regularizers=[r1,r2]",
        "model.regularizers.r1.weight=0.1",
        "model.regularizers.r2.weight=0.1",
    )
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(float(r["train/r1"]) > 0 and float(r["train/r2"]) > 0 for r in rows)


@pytest.mark.parametrize("model", ["sngan", "resnet"])
def test_sngan_and_resnet_models_train_on_the_digits_and_generate(train_cli, tmp_path, model):
    run_dir = train_cli("logger=csv", f"model={model}", "model/loss=hinge")
    checkpoint = load_checkpoint(run_dir)
    assert checkpoint["config"]["model"]["generator"]["_target_"] == f"src.models.{model}.Generator"
    assert any(k.endswith("._u") for k in checkpoint["state_dict"])  # D's spectral norm
    out = tmp_path / "generated"
    run_cli(f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", "n=4", f"out={out}",
            module="src.generate")  # fmt: skip
    assert len(list(out.rglob("*.png"))) >= 4 + 2  # 4 samples, the grid, the interpolation


@pytest.mark.parametrize("conditional", [False, True])
def test_r3gan_trains_with_rpgan_r1_and_r2_and_generates(train_cli, tmp_path, conditional):
    run_dir = train_cli("logger=csv", "model=r3gan", f"model.conditional={conditional}")
    config = load_checkpoint(run_dir)["config"]["model"]
    assert config["generator"]["_target_"] == "src.models.r3gan.Generator"
    assert config["loss"]["_target_"].endswith("RelativisticPairing")
    assert list(config["regularizers"]) == ["r1", "r2"]
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(float(r["train/r1"]) > 0 and float(r["train/r2"]) > 0 for r in rows)
    out = tmp_path / "generated"
    label = ["label=1"] if conditional else []
    run_cli(f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", "n=4", f"out={out}", *label,
            module="src.generate")  # fmt: skip
    assert len(list((out / "images").glob("*.png"))) == 4


def test_the_wandb_sweep_file_builds_commands_that_src_train_accepts(tmp_path):
    """What `wandb agent` would run for a trial of conf/wandb_sweep.yaml: the command with
    ${args_no_hyphens} expanded to key=value pairs, composed as src.train would."""
    from src.metrics.names import LOWER_IS_BETTER
    from src.train import compose_config

    sweep = yaml.safe_load((ROOT / "conf" / "wandb_sweep.yaml").read_text())
    assert sweep["command"][2:5] == ["-m", "src.train", "${args_no_hyphens}"]
    assert sweep["metric"]["name"] in LOWER_IS_BETTER  # a metric training logs, minimised
    trial = {}
    for key, spec in sweep["parameters"].items():
        trial[key] = spec["values"][-1] if "values" in spec else spec["min"]
    args = [f"{key}={value}" for key, value in trial.items()]  # ${args_no_hyphens}
    cfg = compose_config(["debug=fast", *args], str(tmp_path / "api"))
    assert cfg.optimizer.lr == trial["optimizer.lr"]
    assert cfg.optimizer.momentum == trial["optimizer.momentum"]
    assert trial["model/loss"] == "hinge" and cfg.model.loss._target_.endswith(".Hinge")


@pytest.mark.slow  # trains the domain model for the quality metrics
def test_wandb_offline_run_defines_val_metrics_against_epoch_with_best_values(train_cli, tmp_path):
    """What `wandb sync` uploads: val/fid plotted against the epoch with its minimum in the
    run summary, val/recall with its maximum."""
    from tests.helpers import wandb_records

    run_dir = train_cli(
        "logger=wandb", "trainer.max_epochs=2", "trainer.limit_val_batches=1.0",
        "trainer.check_val_every_n_epoch=1", "data.val_size=100", "model.metrics.domain_epochs=1",
        f"model.metrics.cache_dir={tmp_path / 'cache'}",
    )  # fmt: skip
    (events,) = (run_dir / "wandb").glob("offline-run-*/*.wandb")
    records = wandb_records(events)
    metrics = {r.metric.name: r.metric for r in records if r.WhichOneof("record_type") == "metric"}
    assert metrics["val/fid"].step_metric == "epoch" and metrics["val/fid"].summary.min
    assert metrics["val/recall"].summary.max and not metrics["val/recall"].summary.min
    history = [
        {item.key or "/".join(item.nested_key): item.value_json for item in r.history.item}
        for r in records if r.WhichOneof("record_type") == "history"
    ]  # fmt: skip
    fids = [float(h["val/fid"]) for h in history if "val/fid" in h]
    assert len(fids) == 2 and all(h["epoch"] in ("0", "1") for h in history if "val/fid" in h)


@pytest.mark.slow  # a fresh interpreter whose stdout is a pipe, as under SLURM or nohup
def test_a_run_piped_to_a_file_prints_a_line_per_epoch(tmp_path):
    result = run_cli(
        "debug=fast", *TINY[:-2], "trainer.max_epochs=2", "logger=csv",
        f"hydra.run.dir={tmp_path / 'run'}", fresh_process=True,
    )  # fmt: skip
    lines = (result.stdout + result.stderr).splitlines()
    assert max(len(line) for line in lines) <= 300
    assert [line.split(":")[0] for line in lines if line.startswith("epoch ")] == [
        "epoch 1/2", "epoch 2/2"
    ]  # fmt: skip


def test_debug_overfit_trains_on_the_same_batches_every_epoch(tmp_path):
    run_cli(
        "debug=overfit", *TINY, "logger=csv", "trainer.max_epochs=3",
        "+callbacks.batches._target_=tests.helpers.RecordBatches",
        f"+callbacks.batches.dirpath={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    batches = torch.load(tmp_path / "batches_0.pt")
    assert len(batches) == 3 * 3  # 3 batches, 3 epochs
    for epoch in (1, 2):
        for i in range(3):
            assert torch.equal(batches[3 * epoch + i][0], batches[i][0])
    assert not torch.equal(batches[0][0], batches[1][0])


@pytest.mark.slow  # three short runs and make
@pytest.mark.parametrize("mode", ["profile", "limit", "resnet", "smoke"])
def test_the_debug_modes_and_make_smoke_work_quickly(tmp_path, mode):
    import time

    start = time.perf_counter()
    if mode == "smoke":
        result = subprocess.run(["make", "-s", "smoke", f"ARGS=hydra.run.dir={tmp_path / 'run'}"],
                                cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
    else:
        overrides = {"profile": ["debug=profile"], "limit": ["debug=limit"],
                     "resnet": ["debug=fast", "model=resnet"]}[mode]  # fmt: skip
        run_cli(*overrides, "logger=csv", f"hydra.run.dir={tmp_path / 'run'}", fresh_process=True)
    assert time.perf_counter() - start <= 30
    if mode == "profile":
        assert "FIT Profiler Report" in (tmp_path / "run" / "fit-profile.txt").read_text()
    if mode == "limit":
        with open(tmp_path / "run" / "metrics.csv") as f:
            assert [r for r in csv.DictReader(f) if r.get("val/fid")]
        plot = load_checkpoint(tmp_path / "run")["callbacks"]["LossPlot"]
        assert plot["epoch_ends"] == [5, 10, 15]  # 3 epochs of 5 batches
        assert [epoch for epoch, _ in plot["measured"]["val/fid"]] == [3.0]
        assert Image.open(tmp_path / "run" / "plots" / "losses.png").height == 700  # 2 panels


def test_console_is_quiet_and_a_short_decaying_run_says_so(tmp_path, caplog):
    # Whole epochs of the digits (not a smoke run), W&B offline: what a user sees.
    short = ("model.generator.ngf=8", "model.discriminator.ndf=8", "trainer.max_epochs=2")
    result = run_cli(*short, "trainer.limit_val_batches=0", f"hydra.run.dir={tmp_path / 'a'}")
    console = result.stdout + result.stderr
    for noise in ("Tip:", "anonymous setting", "FLOPs", "lr_scheduler.step()"):
        assert noise not in console, noise
    (note,) = [line for line in console.splitlines() if "Note: trainer.max" in line]
    assert "trainer.max_epochs=2" in note and "from epoch 1 to 0" in note
    assert "parameters: G" in console and "Run directory:" in console
    from types import SimpleNamespace

    from src.callbacks.progress import ShortRunNote

    schedule = SimpleNamespace(decay_start=0.5)
    # no schedule, a smoke run's part of each epoch, 40 epochs of the digits, a larger dataset
    for schedules, limit, epochs, batches in ((None, 1.0, 2, 28), ([schedule], 4, 2, 28),
                                              ([schedule], 1.0, 40, 28),
                                              ([schedule], 1.0, 2, 400)):  # fmt: skip
        trainer = SimpleNamespace(max_epochs=epochs, num_training_batches=batches,
                                  limit_train_batches=limit)  # fmt: skip
        caplog.clear()
        with caplog.at_level("INFO"):
            module = SimpleNamespace(lr_schedulers=lambda s=schedules: s)
            ShortRunNote().on_train_start(trainer, module)
        assert "Note:" not in caplog.text, (schedules, limit, epochs, batches)


def test_sweep_jobs_that_share_their_values_keep_apart(tmp_path):
    sweep_dir = tmp_path / "sweep"
    run_cli(
        "-m", "debug=fast", *TINY, "logger=none", "trainer.limit_train_batches=1",
        "seed=1,1", f"hydra.sweep.dir={sweep_dir}",
    )  # fmt: skip
    jobs = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir())
    assert [job[:2] for job in jobs] == ["0_", "1_"] and all("seed=1" in job for job in jobs)


def test_hydra_writes_the_run_files_and_names_sweep_jobs_by_their_overrides():
    """`--cfg hydra`: Hydra's own `.hydra/` output and a sweep subdir built on
    hydra.job.override_dirname (its separators and excluded keys configured)."""
    result = run_cli("--cfg", "hydra")
    config = yaml.safe_load(result.stdout)["hydra"]
    assert config["output_subdir"] == ".hydra"
    assert "${hydra.job.override_dirname}" in config["sweep"]["subdir"]
    dirname = config["job"]["config"]["override_dirname"]
    assert (dirname["kv_sep"], dirname["item_sep"]) == ("=", ",")
    assert {"ckpt_path", "data.root", "logger"} <= set(dirname["exclude_keys"])
    callbacks = {c["_target_"] for c in config["callbacks"].values()}
    assert callbacks == {"src.utils.hydra_callbacks.RunDirectory",
                         "src.utils.hydra_callbacks.SweepStatus"}  # fmt: skip
