"""Sharded streaming (issue 36): `python -m src.prepare` writes any dataset as litdata shards
with a manifest; `data=streaming` trains on them (labels, class names, metrics' reference
images), across 2 processes, from a local folder or a real S3-compatible server (moto, started
on 127.0.0.1 by the test)."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import torch

from src.utils.checkpoint import load_checkpoint
from tests import fixtures
from tests.conftest import TINY, run_cli

STREAM = ["data=streaming", "data.image_size=16", "data.channels=3", "data.num_workers=0",
          "data.batch_size=8", "logger=csv"]  # fmt: skip


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """A nested folder of 40 real PNG/JPEG/WebP/BMP files (two classes) plus a corrupt one,
    prepared at 16 px RGB."""
    base = tmp_path_factory.mktemp("prepare")
    root = fixtures.write_folder(base / "images", n=40)
    out = base / "shards"
    result = run_cli("data=folder", f"data.root={root}", "data.image_size=16", f"out={out}",
                     "workers=2", module="src.prepare")  # fmt: skip
    return out, result


def test_prepare_writes_shards_a_manifest_and_names_what_it_skipped(shards):
    out, result = shards
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "convgan-shards/1"
    assert (manifest["image_size"], manifest["channels"]) == (16, 3)
    assert manifest["images"] == 40 and manifest["classes"] == ["a", "b"]
    assert manifest["class_counts"] == [20, 20]
    assert manifest["skipped"] == {
        "count": 1,
        "first": [str(out.parent / "images" / "a" / "broken.png")],
    }
    assert manifest["source"]["_target_"] == "src.data.folder.Folder"
    assert torch.load(out / "labels.pt", weights_only=True).tolist().count(0) == 20
    assert list(out.glob("chunk-*.bin")) and (out / "index.json").is_file()
    said = result.stdout + result.stderr
    assert "Skipped 1 unreadable image(s):" in said and "broken.png" in said
    assert "Prepared 40 images in" in said and "data=streaming" in said


def test_prepare_refuses_to_overwrite_and_streaming_refuses_a_folder_without_shards(
    shards, tmp_path
):
    out, _ = shards
    again = run_cli(f"out={out}", module="src.prepare", check=False)
    assert again.returncode == 2 and "overwrite=true" in again.stderr
    bare = run_cli("debug=fast", *TINY, *STREAM, f"data.root={tmp_path}",
                   f"hydra.run.dir={tmp_path}/run", check=False)  # fmt: skip
    assert bare.returncode == 2
    (line,) = [x for x in bare.stderr.splitlines() if x.startswith("error: ")]
    assert "data.root=" in line and "src.prepare" in line


def test_a_conditional_model_trains_on_the_shards_with_their_labels_and_class_names(
    shards, tmp_path
):
    out, _ = shards
    run_dir = tmp_path / "run"
    run_cli("debug=fast", *TINY, *STREAM, f"data.root={out}", "model.conditional=true",
            "model/augmentation=ada", f"hydra.run.dir={run_dir}")  # fmt: skip
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert checkpoint["class_names"] == ["a", "b"] and checkpoint["global_step"] > 0
    state = checkpoint["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]
    assert state["dataset"]["input_dir_path"] == str(out)  # litdata's position, checkpointed


@pytest.mark.slow  # the validation metrics (a domain model) on a streamed reference subset
def test_validation_metrics_read_their_reference_images_from_the_shards(shards, tmp_path):
    out, _ = shards
    run_dir = tmp_path / "run"
    run_cli("debug=fast", *STREAM, "model.generator.ngf=8", "model.discriminator.ndf=8",
            f"data.root={out}", "data.val_size=16", "trainer.limit_val_batches=null",
            "trainer.check_val_every_n_epoch=1",
            f"hydra.run.dir={run_dir}")  # fmt: skip
    header = (run_dir / "metrics.csv").read_text().splitlines()[0]
    assert "val/fid" in header


@pytest.mark.slow  # two real processes (gloo) through the real CLI
def test_two_processes_stream_disjoint_shards_of_a_real_folder(shards, tmp_path):
    out, _ = shards
    run_dir = tmp_path / "run"
    result = run_cli(*TINY, *STREAM, f"data.root={out}", "hardware=cpu", "trainer.devices=2",
                     "trainer.max_epochs=2", f"hydra.run.dir={run_dir}",
                     fresh_process=True)  # fmt: skip
    assert "x 2 device(s)" in result.stdout
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    # 40 images, 2 ranks of batch 8: 2 batches a rank an epoch (litdata drops the rest)
    assert checkpoint["global_step"] == 2 * 2 * 2
    assert checkpoint["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["dataset"][
        "world_size"] == 2  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_server(tmp_path):
    """moto's S3-compatible server in its own process on 127.0.0.1, a bucket made with boto3."""
    import boto3

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": url}  # fmt: skip
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        client = boto3.client("s3", endpoint_url=url)
        for _ in range(100):
            try:
                client.create_bucket(Bucket="convgan")
                break
            except Exception:
                time.sleep(0.1)
        yield url, env, client
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow  # a real S3-compatible server, prepare uploading, 2 processes streaming
def test_prepare_to_s3_and_two_processes_train_from_it(s3_server, tmp_path):
    url, env, client = s3_server
    root = fixtures.write_folder(tmp_path / "images", n=24)
    run_cli("data=folder", f"data.root={root}", "data.image_size=16",
            "out=s3://convgan/pets", "workers=1", f"+storage_options.endpoint_url={url}",
            module="src.prepare", env=env, fresh_process=True)  # fmt: skip
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="convgan")["Contents"]}
    assert {"pets/index.json", "pets/manifest.json", "pets/labels.pt"} <= keys
    assert any(k.startswith("pets/chunk-") for k in keys)
    run_dir = tmp_path / "run"
    run_cli(*TINY, *STREAM, "data.root=s3://convgan/pets",
            f"+data.storage_options.endpoint_url={url}", "hardware=cpu", "trainer.devices=2",
            "trainer.max_epochs=1", f"hydra.run.dir={run_dir}", env=env,
            fresh_process=True)  # fmt: skip
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] > 0
    assert list((run_dir / "shard_cache").rglob("*.bin"))  # the chunks cached inside the run
