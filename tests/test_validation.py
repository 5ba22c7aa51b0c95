"""Mistakes on the command line: one line naming the key, the value and what is allowed."""

import pytest
import torch

from tests.conftest import TINY, run_entry


def bad_checkpoints(tmp_path):
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint\n")
    truncated = tmp_path / "truncated.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(100_000)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:50_000])
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    return {"text": text, "truncated": truncated, "foreign": foreign}


# (overrides, exit status, what the one line must say)
CASES = [
    (["optimizer.lr=0"], 2, "optimizer.lr=0: allowed: a number > 0"),
    (["optimizer.lr=-0.001"], 2, "optimizer.lr=-0.001: allowed: a number > 0"),
    (["optimizer.lr=fast"], 2, "optimizer.lr='fast': allowed: a number > 0"),
    (["optimizer.lr=null"], 2, "optimizer.lr=None: allowed: a number > 0"),
    (["optimizer.lr=${{optimizer.lr}}"], 2, "optimizer.lr: cannot be resolved"),
    (["optimizer.generator.lr=-1"], 2, "Adam refused it: Invalid learning rate: -1"),
    (["optimizer.discriminator.lr=0"], 2, "optimizer.discriminator.lr=0: allowed: a finite"),
    (["optimizer.momentum=1.0"], 2, "optimizer.momentum=1.0: allowed: a number in [0, 1)"),
    (["optimizer=sgd", "optimizer.momentum=-0.5"], 2, "optimizer.momentum=-0.5: allowed: a nu"),
    (["optimizer=sgd", "optimizer.generator.momentum=-0.5"], 2, "SGD refused it: Invalid momen"),
    (["+garbage.key=1"], 2, "garbage={'key': 1}: nothing reads this key"),
    (["+optimizer.lrate=1"], 2, "optimizer.lrate=1: not read by src.models.optim.Optimizers; did"),
    (["+model.loss.scale=2"], 2, "model.loss.scale=2: not read by src.models.losses.LeastSquares"),
    (["+data.batchsize=1"], 2, "data.batchsize=1: not read by src.data.digits.Digits; did you m"),
    (["+trainer.max_epoch=1"], 2, "trainer.max_epoch=1: not read by pytorch_lightning.Trainer"),
    (["data.num_workers=100000"], 2, "data.num_workers=100000: allowed: an integer in [0,"),
    (["optimizer.generator.betas=[0.5]"], 2, "optimizer.generator="),
    (["data.batch_size=0"], 2, "data.batch_size=0: allowed: an integer >= 1"),
    # a key of the chosen model's config, and a key inside a dict given for an existing key
    (
        ["model=r3gan", "model.regularizers.r1.schedul.end=3"],
        2,
        "model.regularizers.r1.schedul: no such key; did you mean model.regularizers.r1.schedule?",
    ),
    (
        ["model=r3gan", "model.ema.half_life={{start:0,ends:3}}"],
        2,
        "model.ema.half_life.ends: no such key; did you mean model.ema.half_life.end?",
    ),
    (
        ["model.regularizers.r1.weight=3"],
        2,
        "model.regularizers: not chosen; choose one of conf/model/regularizers/ with model/regul",
    ),
    (
        ["+optimizer.schedules.gamma={{_target_:src.models.schedules.Cosine,start:1,end:0}}"],
        2,
        "optimizer.schedules='gamma': allowed: lr, beta2",
    ),
    (["data.batch_size=100000"], 2, "data.batch_size=100000: allowed: <= 1797"),
    (["data.image_size=48"], 2, "data.image_size=48: allowed for model=dcgan: 16, 32, 64, 128"),
    (["data.image_size=512"], 2, "data.image_size=512: allowed for model=dcgan: 16, 32,"),
    (["data.channels=2"], 2, "data.channels=2: allowed: 1, 3"),
    (["trainer.devices=4096"], 2, "trainer.devices=4096: allowed on the CPU: 1.."),
    (["trainer.precision=8"], 2, "trainer.precision=8: Trainer refused it: Precision 8 is inval"),
    (["trainer.max_epochs=abc"], 2, "trainer.max_epochs='abc': allowed: an integer"),
    (["hardware=ddp"], 2, "trainer.accelerator='gpu': Trainer refused it: No supported gpu"),
    (["optimizer.scheduler.decay_start=1.5"], 2, "optimizer.scheduler.decay_start=1.5: allowed"),
    (["optimizer.scale_lr=cubic"], 2, "optimizer.scale_lr='cubic': allowed: none, linear, sqrt"),
    (["trainer.max_epochs=0"], 2, "trainer.max_epochs=0: allowed:"),
    (["model/ema=average", "model.ema.decay=1.5"], 2, r"model.ema.decay=1.5: allowed: a number"),
    (["model.d_steps_per_g_step=0"], 2, "model.d_steps_per_g_step=0: allowed: an integer >= 1"),
    (["model/augmentation/policies=[flip]"], 2, "model/augmentation/policies='flip': allowed: col"),
    (["model.augmentation.p=2"], 2, "model.augmentation.p=2: allowed: a number in [0, 1]"),
    (["model.generator.latent_components=-3"], 2, "model.generator.latent_components=-3: allowed"),
    (["model.generator.component_spread=0"], 2, "component_spread=0: allowed: a number > 0"),
    (["model/loss=bce", "model.loss.g_objective=wasserstein"], 2, "model.loss.g_objective='wass"),
    (["model/loss=softmax"], 2, "model/loss='softmax': allowed: bce, hinge, least_squares"),
    (["model.loss=hinge"], 2, "model.loss='hinge': allowed: a Loss; a built-in one is chosen with"),
    (["model/loss=hinge", "model.loss.g_objective=minimax"], 2, "model.loss.g_objective: no such"),
    (["model/regularizers=[r3]"], 2, "model/regularizers='r3': allowed: lecam, mode_seeking, r1"),
    (["model/regularizers=[r1]", "model.regularizers.r1.every=0"], 2, "model.regularizers.r1.eve"),
    (["model/regularizers=[lecam]", "model.regularizers.lecam.weight=-1"], 2, "lecam.weight=-1: a"),
    (["seed=abc"], 2, "seed='abc': allowed: an integer"),
    (["ckpt_path=/nonexistent/last.ckpt"], 2, "no such checkpoint file"),
    (["ckpt_path={text}"], 2, "unreadable or truncated checkpoint"),
    (["ckpt_path={truncated}"], 2, "unreadable or truncated checkpoint"),
    (["ckpt_path={foreign}"], 2, "not a convgan/Lightning checkpoint"),
    (["optimizer.lrr=0.1"], 2, "optimizer.lrr: no such key; did you mean optimizer.lr?"),
    (["trainer.max_epoch=3"], 2, "trainer.max_epoch: no such key; did you mean trainer.max_epochs"),
    (["model=dcgam"], 2, "model='dcgam': allowed: dcgan, r3gan, r3gan_cpu, resnet, sngan"),
    (["optimizer=adamw"], 2, "optimizer='adamw': allowed: adam, adam_decay, sgd"),
]


@pytest.mark.parametrize(("overrides", "status", "message"), CASES, ids=lambda c: str(c)[:40])
def test_a_bad_invocation_exits_with_one_clear_line(tmp_path, overrides, status, message):
    files = bad_checkpoints(tmp_path)
    overrides = [o.format(**files) for o in overrides]
    returncode, stderr = run_entry(
        "src.train", *TINY, "logger=csv", *overrides, f"hydra.run.dir={tmp_path}/run"
    )
    assert returncode == status, stderr[-2000:]
    assert message in stderr
    assert "Traceback" not in stderr
    if status == 2:  # ours: exactly one line on stderr
        (line,) = stderr.strip().splitlines()
        assert line.startswith("error: ")
    assert not (tmp_path / "run" / "checkpoints").exists()  # failed before training


EARLY = [  # what G's and D's constructors, torch's optimizers and the data keys refuse
    "data.image_size=48", "optimizer.generator.lr=null", "data.batch_size=-4",
]  # fmt: skip


@pytest.mark.parametrize(
    "mistake", [m if m == EARLY[0] else pytest.param(m, marks=pytest.mark.slow) for m in EARLY]
)
def test_config_mistakes_are_reported_before_lightning_is_imported(mistake, tmp_path):
    """What G's, D's and the optimizers' constructors refuse, the data keys and the CPU-process
    bound are found in the time it takes to import torch (experiments/error_latency)."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    probe = (
        "import runpy, sys\n"
        f"sys.argv = ['src.train', *{mistake.split()!r}, 'hydra.run.dir={tmp_path}']\n"
        "try:\n    runpy.run_module('src.train', run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    print('EXIT', exit.code, 'pytorch_lightning' in sys.modules, flush=True)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert "EXIT 2 False" in result.stdout, result.stderr[-2000:]
    key = mistake.split()[-1].split("=")[0].replace(".lr", "")  # optimizer.lr's own check
    assert f"config error: {key}" in result.stderr, result.stderr[-500:]
