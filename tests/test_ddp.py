"""Data-parallel training with real processes on CPU (gloo): `trainer.devices=2`."""

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from src.models.dcgan import Discriminator, Generator
from src.models.losses import BCE
from src.utils.checkpoint import load_checkpoint
from src.utils.distributed import GANDDPStrategy
from tests.conftest import ROOT, TINY
from tests.conftest import run_cli as run_in_any_process

pytestmark = pytest.mark.slow
TWO_CPUS = ["hardware=cpu", "trainer.devices=2", "logger=csv"]


def run_cli(*args, **kwargs):
    """A fresh interpreter: Lightning's DDP launcher starts the other ranks from sys.argv."""
    return run_in_any_process(*args, fresh_process=True, **kwargs)


PACKED = ("model.pack=2", "model.discriminator.minibatch_std=4")  # groups within a rank's batch


@pytest.mark.parametrize(
    ("norm", "cuda_graph", "options"),
    [("batch", False, ()), ("spectral", False, ()), ("spectral", True, ()),
     ("spectral", False, PACKED)],
)  # fmt: skip
def test_two_processes_train_in_one_run_dir_with_identical_weights(
    tmp_path, norm, cuda_graph, options
):
    """With spectral norm the power-iteration vectors (buffers) stay identical too, an R1
    penalty's gradients (a double backward) are part of the one all-reduce, and LeCam's
    moving averages (buffers) and ADA's p are taken over the global batch; the same through
    model.cuda_graph's capture-ready step (its all-reduces inside, its step count kept), and
    with packing and the minibatch std."""
    run_dir = tmp_path / "run"
    result = run_cli(
        "debug=fast", *TINY, *TWO_CPUS, "trainer.limit_train_batches=6",
        f"model.cuda_graph={str(cuda_graph).lower()}",
        f"model.discriminator.norm={norm}", f"model.generator.norm={norm}", *options,
        *(["model/regularizers=[r1,lecam]", "model.regularizers.r1.weight=1",
           "model.augmentation.interval=2", "model.augmentation.speed_images=1000",
           "model.augmentation.p=0.5"]
          if norm == "spectral" else []),
        "+callbacks.dump._target_=tests.helpers.DumpWeights", f"+callbacks.dump.dirpath={tmp_path}",
        f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert "effective batch 16 x 2 device(s) = 32" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rank_0.pt", "rank_1.pt", "run"]
    assert len(list(run_dir.rglob("config.yaml"))) == 1  # one .hydra, no per-rank copies
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    rank0, rank1 = (torch.load(tmp_path / f"rank_{r}.pt") for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    assert any(name.endswith("._u") for name in rank0) == (norm == "spectral")
    assert ("regularizers.lecam.ema" in rank0) == (norm == "spectral")
    if norm == "spectral":  # ADA's p moved, by the ranks' mean r_t: equal on both
        assert float(rank0["augmentation.p"]) != 0.5
    for name in rank0:  # 6 D and 6 G updates later, still bitwise the same
        assert torch.equal(rank0[name], rank1[name]), name
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 12


def test_a_two_process_checkpoint_resumes_in_one_process(tmp_path):
    first = tmp_path / "ddp"
    run_cli("debug=fast", *TINY, *TWO_CPUS, f"hydra.run.dir={first}")
    resumed = tmp_path / "single"
    run_cli(
        "debug=fast", *TINY, "logger=csv", "trainer.max_epochs=2",
        f"ckpt_path={first}/checkpoints/last.ckpt", f"hydra.run.dir={resumed}",
    )  # fmt: skip
    checkpoint = load_checkpoint(resumed / "checkpoints" / "last.ckpt")
    assert (checkpoint["epoch"], checkpoint["global_step"]) == (1, 16)


def test_a_multirun_of_two_process_jobs_runs_each_job_once(tmp_path):
    sweep = tmp_path / "sweep"
    run_cli(
        "-m", "debug=fast", *TINY, *TWO_CPUS, "optimizer.lr=1e-4,2e-4",
        f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())  # hydra.job.override_dirname
    assert [job[:2] for job in jobs] == ["0_", "1_"]
    assert "optimizer.lr=0.0001" in jobs[0] and "optimizer.lr=0.0002" in jobs[1]
    for job in jobs:
        checkpoint = load_checkpoint(sweep / job / "checkpoints" / "last.ckpt")
        assert checkpoint["global_step"] == 8
    lrs = {load_checkpoint(sweep / j / "checkpoints" / "last.ckpt")["config"]["optimizer"]["lr"]
           for j in jobs}  # fmt: skip
    assert lrs == {1e-4, 2e-4}


# --- gradients: 2 processes on half batches == 1 process on the whole batch -------------

BATCH = 16


def networks() -> tuple[torch.nn.Module, torch.nn.Module]:
    """BatchNorm in inference mode (running statistics): each image's output no longer
    depends on its batch-mates, so 2 x 8 images must give the gradient of 1 x 16."""
    torch.manual_seed(0)
    return Generator(16, 1, latent_dim=8, ngf=4, latent_components=0).eval(), Discriminator(
        16, 1, ndf=4, norm="batch"
    ).eval()


def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    real = torch.rand(BATCH, 1, 16, 16, generator=generator) * 2 - 1
    return real, torch.randn(BATCH, 8, generator=generator)


def first_step_grads(G, D, real, z, sync: bool) -> dict[str, torch.Tensor]:
    """Gradients of one D update and of the following G update (D frozen), as in GANModule."""
    fake, loss, strategy = G(z), BCE(), GANDDPStrategy()
    d_loss = loss.discriminator(D(real), D(fake.detach()))
    d_loss.backward()
    if sync:
        strategy.all_reduce_gradients(D, torch.tensor(False))
    grads = {f"D.{n}": p.grad.clone() for n, p in D.named_parameters()}
    D.requires_grad_(False)
    loss.generator(D(fake)).backward()
    if sync:
        strategy.all_reduce_gradients(G, torch.tensor(False))
    grads.update({f"G.{n}": p.grad.clone() for n, p in G.named_parameters()})
    return grads


def rank_main(rank: int, world_size: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world_size)
    G, D = networks()
    real, z = inputs()
    shard = slice(rank * BATCH // world_size, (rank + 1) * BATCH // world_size)
    torch.save(first_step_grads(G, D, real[shard], z[shard], sync=True), f"{out}/{rank}.pt")
    dist.destroy_process_group()


def test_two_process_gradients_equal_one_process_over_the_whole_batch(tmp_path):
    """BatchNorm statistics aside: in training mode each process normalises its own half
    batch (per-device statistics, as DDP does by default; SyncBatchNorm, GPU only, would
    make them global), which differs from one process normalising all 16 by design. The
    comparison therefore runs BatchNorm on running statistics (see `networks`)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(rank_main, args=(2, f"tcp://127.0.0.1:{port}", str(tmp_path)), nprocs=2)
    G, D = networks()
    expected = first_step_grads(G, D, *inputs(), sync=False)
    for rank in (0, 1):
        got = torch.load(Path(tmp_path) / f"{rank}.pt")
        for name, grad in expected.items():
            torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=1e-6, msg=name)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-m", "slow", *sys.argv[1:]]))


def test_two_nodes_through_torchrun_the_readme_command_in_cpu_form(tmp_path):
    """README's torchrun command for `hardware=multinode trainer.num_nodes=2`, with two
    single-process "nodes" on this machine and the CPU in place of GPUs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run_dir = tmp_path / "run"
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--nproc-per-node",
                "1",
                "--node-rank",
                str(rank),
                "--master-addr",
                "127.0.0.1",
                "--master-port",
                str(port),
                "-m",
                "src.train",
                "hardware=multinode",
                "trainer.num_nodes=2",
                "trainer.devices=1",
                "trainer.accelerator=cpu",
                "debug=fast",
                *TINY,
                "logger=csv",
                f"hydra.run.dir={run_dir}",
                "ckpt_path=auto",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "WANDB_MODE": "offline"},
        )  # fmt: skip
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    assert "effective batch 16 x 2 device(s) = 32" in outputs[0]
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 8


# --- sample-quality metrics: 2 processes share the work and get the 1-process numbers ------


@pytest.mark.parametrize("conditional", [False, True])
def test_quality_metrics_of_two_processes_equal_the_single_process_evaluation(
    tmp_path, conditional
):
    """Each rank samples and featurises its slice of the reference positions (an odd count,
    so the slices differ in size) with rank 0's BatchNorm statistics; the metrics, which
    synchronise their states, equal what `src.evaluate` computes in one process from the
    saved checkpoint (a conditional model's class metrics too: every class asked for in the
    same order)."""
    run_dir, cache, n = tmp_path / "run", tmp_path / "cache", 201
    run_cli(
        "debug=fast", *TINY, *TWO_CPUS, "trainer.limit_train_batches=6",
        f"model.conditional={str(conditional).lower()}",
        "trainer.limit_val_batches=1.0", "trainer.check_val_every_n_epoch=1", f"data.val_size={n}",
        "model.metrics.domain_epochs=2", f"model.metrics.cache_dir={cache}",
        f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    with open(run_dir / "metrics.csv") as f:
        (logged,) = [r for r in csv.DictReader(f) if r["val/fid"]]
    report_path = tmp_path / "report.json"
    run_cli(
        f"ckpt_path={run_dir}/checkpoints/last.ckpt", f"n={n}", f"num_real={n}",
        "domain_epochs=2", f"cache_dir={cache}", f"out={report_path}", module="src.evaluate",
    )  # fmt: skip
    single = json.loads(report_path.read_text())["metrics"]
    compared = [(name, f"val/{name}") for name in single if f"val/{name}" in logged]
    wanted = {"fid", "kid", "precision", "recall", "density", "coverage", "class_coverage"}
    wanted |= (
        {"class_accuracy", "intra_fid", "intra_precision", "intra_recall"} if conditional else set()
    )
    assert wanted <= {name for name, _ in compared}
    for name, key in compared:
        assert float(logged[key]) == pytest.approx(single[name], rel=1e-5, abs=1e-9), key


def test_two_processes_train_a_conditional_model_on_disjoint_labelled_shards(tmp_path):
    """Each rank's batches carry their own images' labels, the ranks' shards are disjoint, and
    the conditional G and projection D (embeddings included) stay bitwise identical."""
    from src.data.base import to_float
    from src.data.digits import Digits

    run_cli(
        "debug=fast", *TINY, *TWO_CPUS, "model.conditional=true", "trainer.limit_train_batches=3",
        "+callbacks.dump._target_=tests.helpers.DumpWeights", f"+callbacks.dump.dirpath={tmp_path}",
        "+callbacks.batches._target_=tests.helpers.RecordBatches",
        f"+callbacks.batches.dirpath={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    rank0, rank1 = (torch.load(tmp_path / f"rank_{r}.pt") for r in (0, 1))
    assert any("embed" in name for name in rank0)
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    digits = Digits(labels=True)
    digits.setup("fit")
    every = to_float(digits.dataset.images).flatten(1)
    seen = []
    for rank in (0, 1):
        for images, labels in torch.load(tmp_path / f"batches_{rank}.pt"):
            for image, label in zip(images.flatten(1), labels, strict=True):
                index = int((every - image).abs().sum(1).argmin())
                assert torch.equal(every[index], image)
                assert digits.dataset.targets[index] == label
                seen.append(index)
    assert len(seen) == 2 * 3 * 16 and len(set(seen)) == len(seen)  # disjoint shards
