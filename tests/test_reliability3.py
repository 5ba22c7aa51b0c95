"""Issue 39, reliability round three: each root cause by the kind of input it stands for.
Files are data, schedules checked by their owners, the tools' signals and concurrency, what
is written (atomically, naming the key that chose where), Hydra's syntax errors, `~`, bit
depths, labels, step limits, resumes that changed a part, what a checkpoint's config may make
us do, caches, other data, a process of the run dying, keys nobody reads."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from src.utils.checkpoint import CHECKSUM_KEY, load_checkpoint, payload_checksum
from tests import fixtures
from tests.conftest import ROOT, TINY, run_entry


def one_line(status: int, stderr: str, expected: int, *fragments: str) -> str:
    assert status == expected, stderr[-2000:]
    lines = [line for line in stderr.strip().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("r3") / "run"
    status, err = run_entry("src.train", "debug=fast", *TINY, "logger=csv",
                            f"hydra.run.dir={run_dir}")  # fmt: skip
    assert status == 0, err
    return run_dir / "checkpoints" / "last.ckpt"


def rewrite(path: Path, edit, out: Path) -> Path:
    """A checkpoint edited, its checksum recomputed so that only our other checks can stop it
    (deep enough recursion here to write a deeply nested one)."""
    checkpoint = torch.load(path, weights_only=True)
    edit(checkpoint)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)
    try:
        checkpoint[CHECKSUM_KEY] = payload_checksum(checkpoint)
        torch.save(checkpoint, out)
    finally:
        sys.setrecursionlimit(limit)
    return out


# --- 2 and 6: a schedule's values, Hydra's syntax and interpolations: one line, exit 2 --------
COSINE = "{_target_:src.models.schedules.Cosine,start:%s,end:%s}"
TRAIN_CASES = [
    ([f"+optimizer.schedules.beta2={COSINE % (1.5, 0.99)}"],
     "optimizer.schedules.beta2.start=1.5: allowed: a number in [0, 1)"),
    ([f"+optimizer.schedules.lr={COSINE % (1, -0.5)}"], "optimizer.schedules.lr.end=-0.5"),
    (["model=r3gan", "model.regularizers.r1.schedule.start=-1"],
     "model.regularizers.r1.schedule.start=-1: allowed: a number >= 0"),
    ([f"model.augmentation.schedule={COSINE % (0, 2)}", "model.augmentation.target=null"],
     "model.augmentation.schedule.end=2: allowed: a number in [0, 1]"),
    (["model=r3gan", "model.ema.half_life.start=-5"], "model.ema.half_life.start=-5"),
    (["+model.regularizers.r1={_target_:src.models.regularizers.GradientPenalty,side:real,"
      "weight:1,schedule:{start:1}}"], "model.regularizers.r1.schedule={'start': 1}: allowed"),
    (["optimizer.lr=[1e-4"], "optimizer.lr=[1e-4: not an override Hydra can parse"),
    (["data.root=~/pets"], "data.root=~/pets: not an override Hydra can parse"),
    (["hydra.run.dir=${oc.env:CONVGAN_UNSET_VARIABLE}/x"], "hydra.run.dir: cannot be resolved"),
    (["data=folder", "data.root=.", "data.extensions=[png]"],
     "data.extensions=['png']: allowed: file suffixes with their dot, e.g. .png"),
    (["model/regularizers=[mode_seeking]", "data.batch_size=1"],
     "data.batch_size=1: with model.regularizers.mode_seeking: it compares pairs"),
    (["trainer.max_epochs=-1", "optimizer=adam_decay"], "trainer.max_epochs=-1: an lr decay"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "fragment"), TRAIN_CASES, ids=lambda c: str(c)[:40])
def test_train_refuses_in_one_line(tmp_path, overrides, fragment):
    run_dir = tmp_path / "run"
    status, err = run_entry("src.train", "debug=fast", *TINY, "logger=csv",
                            f"hydra.run.dir={run_dir}", *overrides)  # fmt: skip
    one_line(status, err, 2, fragment)
    assert not (run_dir / "checkpoints").exists()


# --- 3, 4, 5: the tools stop cleanly, one at a time per out=, write atomically ----------------
def start(module: str, *args: str, **limits) -> subprocess.Popen:
    def limited() -> None:
        import resource

        if "fsize" in limits:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits["fsize"],) * 2)

    env = {**os.environ, "WANDB_MODE": "offline"}
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                            stderr=subprocess.PIPE, text=True, preexec_fn=limited)  # fmt: skip


def wait_for(predicate, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.slow  # real processes, signalled
@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signalled_generate_says_so_in_one_line_and_leaves_nothing(ckpt, tmp_path, sig, status):
    out = tmp_path / "g"
    process = start("src.generate", f"ckpt_path={ckpt}", "n=200000", f"out={out}")
    wait_for(lambda: any(len(list(p.glob("*.png"))) > 50 for p in out.glob(".images.*")))
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    line = one_line(process.returncode, stderr, status, f"stopped by {signal.Signals(sig).name}")
    assert str(out) in line
    assert not list(out.glob(".images.*")) and not (out / "images").exists()


@pytest.mark.slow
def test_a_signalled_evaluate_says_so_in_one_line(ckpt, tmp_path):
    log = tmp_path / "stdout.txt"
    with open(log, "w") as stdout:
        process = subprocess.Popen(
            [sys.executable, "-m", "src.evaluate", f"ckpt_path={ckpt}",
             f"cache_dir={tmp_path / 'cache'}", f"out={tmp_path / 'm.json'}", "domain_epochs=200"],
            cwd=ROOT, stdout=stdout, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    # signalled while it works (the domain model trains), not while Python imports
    wait_for(lambda: "Training the domain feature extractor" in log.read_text(), 240)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    one_line(process.returncode, stderr, 143, "stopped by SIGTERM", "nothing was written")
    assert not (tmp_path / "m.json").exists()


@pytest.mark.slow
def test_a_second_generate_into_one_out_is_refused_and_the_first_finishes(ckpt, tmp_path):
    out = tmp_path / "g"
    first = start("src.generate", f"ckpt_path={ckpt}", "n=40000", f"out={out}")
    wait_for(lambda: any(p.glob("*.png") for p in out.glob(".images.*")))
    second = subprocess.run(
        [sys.executable, "-m", "src.generate", f"ckpt_path={ckpt}", "n=10", f"out={out}"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    one_line(second.returncode, second.stderr, 2, f"out='{out}'", "in use by another run")
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-2000:]
    assert len(list((out / "images").glob("*.png"))) == 40000


@pytest.mark.slow
def test_a_full_disk_leaves_no_half_written_metrics_and_names_out(ckpt, tmp_path):
    cache = tmp_path / "cache"
    done = subprocess.run(
        [sys.executable, "-m", "src.evaluate", f"ckpt_path={ckpt}", "n=20", "num_real=20",
         f"cache_dir={cache}", f"out={tmp_path / 'first.json'}"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]  # the domain model is cached now
    out = tmp_path / "m.json"
    out.write_text("earlier\n")
    process = start("src.evaluate", f"ckpt_path={ckpt}", "n=20", "num_real=20",
                    f"cache_dir={cache}", f"out={out}", fsize=200)  # fmt: skip
    _, stderr = process.communicate(timeout=300)
    one_line(process.returncode, stderr, 2, "file-system error", "choose another out")
    assert out.read_text() == "earlier\n" and not list(tmp_path.glob(".m.json.*"))


# --- 7: `~` as a shell expands it --------------------------------------------------------------
def test_a_typed_home_is_expanded_in_data_run_and_output_paths(tmp_path, monkeypatch, ckpt):
    monkeypatch.setenv("HOME", str(tmp_path))
    fixtures.write_folder(tmp_path / "pictures", n=12)
    status, err = run_entry(
        "src.train", "debug=fast", *TINY, "logger=csv", "data=folder", "data.root='~/pictures'",
        "data.image_size=32", "data.batch_size=4", "hydra.run.dir='~/runs/a'",
    )  # fmt: skip
    assert status == 0, err[-2000:]
    assert (tmp_path / "runs" / "a" / "checkpoints" / "last.ckpt").is_file()
    assert not (ROOT / "~").exists()
    status, err = run_entry("src.generate", f"ckpt_path={ckpt}", "n=2", "out='~/samples'")
    assert status == 0 and (tmp_path / "samples" / "grid.png").is_file(), err


# --- 9: labels outside the classes ---------------------------------------------------------------
def test_labels_outside_the_classes_are_refused_naming_their_file(tmp_path):
    root = fixtures.write_mnist(tmp_path / "data", labels=True)
    labels = root / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    fixtures.write_idx_labels(labels, (np.arange(96) % 10 + 3).astype(np.uint8))
    status, err = run_entry(
        "src.train", "debug=fast", *TINY, "logger=csv", "data=mnist", f"data.root={root}",
        "model.conditional=true", f"hydra.run.dir={tmp_path}/run",
    )  # fmt: skip
    one_line(status, err, 2, str(labels), "labels 3..12 outside the 10 classes 0..9")


# --- 10: the lr schedule follows the limit Lightning stops at --------------------------------
def test_a_step_limit_with_endless_epochs_spans_the_lr_decay_over_its_steps(tmp_path):
    """4 batches an epoch, 16 steps (8 batches: a D and a G step each): the default lr decay
    holds for 4 batches and falls to 0 at batch 8, not at the end of the first epoch."""
    run_dir = tmp_path / "run"
    status, err = run_entry(
        "src.train", "debug=fast", *TINY, "logger=csv", "trainer.max_epochs=-1",
        "trainer.max_steps=16", "callbacks.model_checkpoint.save_top_k=-1",
        f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert status == 0, err
    first = load_checkpoint(run_dir / "checkpoints" / "epoch_000.ckpt")
    last = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert first["lr_schedulers"][0]["_last_lr"][0] == pytest.approx(4e-4)
    assert last["lr_schedulers"][0]["_last_lr"][0] == pytest.approx(0.0)
    assert last["global_step"] == 16


# --- 11: a resume that changed a part names its key ------------------------------------------
@pytest.mark.parametrize(
    ("changed", "fragment"),
    [(["model/augmentation=none"], "model.augmentation: differs from the checkpoint's"),
     (["model/regularizers=[lecam]"], "model.regularizers.lecam: differs"),
     (["trainer.max_epochs=0"], "trainer.max_epochs=0: allowed: an integer >= 1")],
)  # fmt: skip
def test_a_resume_that_changed_a_part_names_the_key(ckpt, tmp_path, changed, fragment):
    status, err = run_entry("src.train", "debug=fast", *TINY, "logger=csv", *changed,
                            f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path}/run")  # fmt: skip
    one_line(status, err, 2, fragment)


# --- 12: what a checkpoint's stored config may make us do ------------------------------------
def deep(levels: int) -> dict:
    node: dict = {}
    for _ in range(levels):
        node = {"x": node}
    return node


EDITS = {
    "cache_dir": (lambda c: c["config"]["data"].update(cache_dir="{outside}"), None),
    "huge fake data": (
        lambda c: c["config"].update(data={**c["config"]["data"], "_target_":
                                           "src.data.fake.FakeImages", "num_images": 10**15}),
        "data.num_images=1000000000000000: allowed: an integer in [1,",
    ),
    "nested 5,000 deep": (lambda c: c["config"]["model"]["generator"].update(extra=deep(5000)),
                          "damaged"),
    "a 20 MB string": (lambda c: c["config"]["model"]["generator"].update(norm="x" * 20_000_000),
                       "characters)"),
    "short class names": (lambda c: c.update(class_names=["0", "1"]), "ckpt_path="),
}  # fmt: skip


@pytest.mark.parametrize("edit", EDITS)
def test_a_stored_config_chooses_no_paths_or_sizes_and_damage_is_one_line(ckpt, tmp_path, edit):
    outside = tmp_path / "outside"
    change, fragment = EDITS[edit]

    def apply(checkpoint):
        change(checkpoint)
        data = checkpoint["config"]["data"]
        if data.get("cache_dir") == "{outside}":
            data["cache_dir"] = str(outside)

    edited = rewrite(ckpt, apply, tmp_path / "edited.ckpt")
    status, err = run_entry(
        "src.evaluate", f"ckpt_path={edited}", "n=20", "num_real=20",
        f"cache_dir={tmp_path / 'cache'}", f"out={tmp_path / 'm.json'}",
    )  # fmt: skip
    if fragment is None:
        assert status == 0, err[-2000:]
    else:
        line = one_line(status, err, 2, fragment)
        assert len(line) < 400
    assert not outside.exists()


# --- 13: caches --------------------------------------------------------------------------------
def test_a_truncated_domain_model_cache_is_rebuilt(ckpt, tmp_path):
    cache = tmp_path / "cache"
    args = ["src.evaluate", f"ckpt_path={ckpt}", "n=20", "num_real=20", f"cache_dir={cache}",
            f"out={tmp_path / 'm.json'}"]  # fmt: skip
    assert run_entry(*args)[0] == 0
    (cached,) = cache.glob("domain_cnn_*.pt")
    cached.write_bytes(cached.read_bytes()[:1000])
    status, err = run_entry(*args)
    assert status == 0, err[-2000:]
    assert torch.load(cached, weights_only=True)["state_dict"]  # whole again


def test_torch_and_matplotlib_caches_go_to_convgans_cache_not_the_repository(tmp_path):
    probe = (
        "import os, src; print(os.environ['TORCHINDUCTOR_CACHE_DIR'], os.environ['MPLCONFIGDIR'])"
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("TORCHINDUCTOR_CACHE_DIR", "MPLCONFIGDIR")
    }
    env["XDG_CACHE_HOME"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True,
                            text=True, check=True)  # fmt: skip
    for folder in result.stdout.split():
        assert Path(folder).is_relative_to(tmp_path / "convgan"), folder


# --- 14: scored against other data -----------------------------------------------------------
def test_a_conditional_checkpoint_scored_against_data_with_other_classes_is_refused(tmp_path):
    two = tmp_path / "two"
    for index, name in enumerate(["cat", "dog"] * 6):
        (two / name).mkdir(parents=True, exist_ok=True)
        fixtures.write_folder(two / name / str(index), n=2)
    three = tmp_path / "three"
    for index, name in enumerate(["a", "b", "c"] * 4):
        (three / name).mkdir(parents=True, exist_ok=True)
        fixtures.write_folder(three / name / str(index), n=2)
    run_dir = tmp_path / "run"
    status, err = run_entry(
        "src.train", "debug=fast", *TINY, "logger=csv", "data=folder", f"data.root={two}",
        "data.image_size=32", "data.batch_size=4", "model.conditional=true",
        f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert status == 0, err[-2000:]
    status, err = run_entry("src.evaluate", f"ckpt_path={run_dir}/checkpoints/last.ckpt",
                            f"data_root={three}", "n=20", "num_real=20")  # fmt: skip
    one_line(status, err, 2, "data_root=", "3 classes there", "makes 2 (cat, dog)")


# --- 15: a process of the run dies -------------------------------------------------------------
@pytest.mark.slow  # two processes, one killed
def test_a_dead_peer_ends_the_run_as_an_environment_fault_with_the_resume_hint(tmp_path):
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "src.train", "debug=fast", *TINY, "logger=csv", "hardware=cpu",
         "trainer.devices=2", "trainer.limit_train_batches=20", "trainer.max_epochs=3",
         "+callbacks.kill._target_=tests.helpers.KillAt", "+callbacks.kill.batch=25",
         "+callbacks.kill.rank=1", f"hydra.run.dir={run_dir}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    line = one_line(result.returncode, result.stderr, 4, "environment error: another process",
                    "continue with ckpt_path=auto hydra.run.dir=")  # fmt: skip
    shown = line.rsplit("hydra.run.dir=", 1)[1]  # relative to the working directory, or ~
    assert (ROOT / Path(shown).expanduser()).resolve() == run_dir.resolve()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


def test_too_few_images_for_the_processes_names_the_devices():
    from src.data.sampling import EpochSampler
    from src.errors import ConfigError

    with pytest.raises(ConfigError, match=r"trainer.devices=2: allowed: <= 1: the data has 1"):
        EpochSampler(1, batch_size=1, seed=0, rank=0, world_size=2)


# --- 17: every entry point refuses keys it never reads ---------------------------------------
@pytest.mark.parametrize("module", ["src.generate", "src.evaluate"])
def test_every_entry_point_refuses_an_added_key_it_never_reads(ckpt, tmp_path, module):
    status, err = run_entry(module, f"ckpt_path={ckpt}", "+sead=3", f"out={tmp_path / 'o'}")
    one_line(status, err, 2, "sead=3: nothing reads this key; did you mean seed?")
    assert not (tmp_path / "o").exists()


def test_the_inception_provenance_is_in_the_metrics_json(ckpt, tmp_path):
    out = tmp_path / "m.json"
    status, err = run_entry("src.evaluate", f"ckpt_path={ckpt}", "n=20", "num_real=20",
                            f"cache_dir={tmp_path / 'cache'}", f"out={out}")  # fmt: skip
    assert status == 0, err
    assert json.loads(out.read_text())["inception_weights"] is None  # none here: said so
