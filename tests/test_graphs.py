"""model.cuda_graph's capture-ready step: on CPU the path a GPU captures runs eagerly from the
same static buffers, with the lr, scheduled weights and the EMA decay as device tensors; it
must train bit for bit as the eager step does (losses, weights, EMA, ADA's p, global_step)."""

import logging
from functools import partial

import pytest
import torch
from pytorch_lightning import Callback

from src.models.augment import Augment
from src.models.dcgan import Discriminator
from src.models.ema import EMAGenerator
from src.models.graphs import StepGraphs, StepKind, capture_blocker
from src.models.regularizers import GradientPenalty
from src.models.schedules import Cosine
from tests.helpers import fit_batches, part, policies, tiny_module

BATCHES = 12


class Losses(Callback):
    def __init__(self):
        self.rows = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.rows.append({k: v.detach().clone() for k, v in outputs.items()
                          if isinstance(v, torch.Tensor)})  # fmt: skip


def trained(cuda_graph: bool, **kwargs):
    """A module with EMA, spectral norm, LeCam, a lazy R1, ADA and four schedules, trained for
    BATCHES batches; its per-batch outputs and its trainer."""
    torch.manual_seed(0)  # D's initial weights
    module = tiny_module(
        cuda_graph=cuda_graph,
        discriminator=Discriminator(16, 1, ndf=4, norm="spectral"),
        ema=partial(EMAGenerator, decay=0.99, half_life=Cosine(0.0, 100.0)),
        regularizers={
            "lecam": part("model/regularizers", "lecam"),
            "r1": GradientPenalty("real", 1.0, every=3, schedule=Cosine(1.0, 0.1)),
        },
        augmentation=Augment(policies("translation", "xflip"), p=0.2, target=0.6, interval=2,
                             speed_images=500),
        d_steps_per_g_step=kwargs.pop("d_steps_per_g_step", 1),
        schedules={"lr": Cosine(1.0, 0.3), "beta2": Cosine(0.99, 0.9)},
        **kwargs,
    )  # fmt: skip
    losses = Losses()
    trainer = fit_batches(module, BATCHES, callbacks=[losses])
    return module, losses.rows, trainer


@pytest.mark.parametrize("d_steps_per_g_step", [1, 2])
def test_the_capture_ready_step_trains_bitwise_as_the_eager_one(d_steps_per_g_step):
    eager, eager_rows, eager_trainer = trained(False, d_steps_per_g_step=d_steps_per_g_step)
    ready, ready_rows, ready_trainer = trained(True, d_steps_per_g_step=d_steps_per_g_step)
    assert ready.graphs is not None and eager.graphs is None
    # the variants met: the lazy R1 due or not x ADA's update (and G's turn) or not
    assert len(ready.graphs.variants) == 4
    assert [r.keys() for r in ready_rows] == [r.keys() for r in eager_rows]
    for ready_row, eager_row in zip(ready_rows, eager_rows, strict=True):
        for name, value in eager_row.items():
            assert torch.equal(ready_row[name], value), name
    assert "train/r1" in eager_rows[2] and "train/ada_rt" in eager_rows[1]
    ready_state, eager_state = ready.state_dict(), eager.state_dict()
    assert ready_state.keys() == eager_state.keys()
    for name, value in eager_state.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(ready_state[name], value), name
    assert float(eager.augmentation.p) != 0.2  # ADA moved p, equally in both
    # replayed graphs run no Lightning wrapper: the module counts the optimizer steps
    assert ready_trainer.global_step == eager_trainer.global_step
    assert eager_trainer.global_step == BATCHES + BATCHES // d_steps_per_g_step
    # what a graph reads is a device tensor the schedules fill
    assert isinstance(ready.optimizer.built[0].param_groups[0]["lr"], torch.Tensor)
    assert isinstance(ready.regularizers["r1"].weight, torch.Tensor)


def test_without_cuda_the_capture_ready_path_says_it_runs_eagerly(caplog):
    with caplog.at_level(logging.INFO, logger="src.models.graphs"):
        module = tiny_module(cuda_graph=True)
        fit_batches(module, 2)
    assert "model.cuda_graph: the step runs eagerly: no CUDA device" in caplog.text
    assert not module.graphs.capture


def test_what_cannot_be_captured_is_named():
    adam = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], fused=True)
    foreach = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], foreach=True)
    assert capture_blocker([adam, adam], "bf16-mixed") is None
    assert "Adam is not fused" in capture_blocker([adam, foreach], "32-true")
    assert "16-mixed" in capture_blocker([adam, adam], "16-mixed")
    assert "optimizer.schedules.beta2" in capture_blocker([adam, adam], "32-true", {"beta2": 1})
    graphs = StepGraphs(blocked="a reason")
    assert not graphs.capture


def test_each_variant_keeps_its_static_buffers():
    graphs = StepGraphs(blocked="no CUDA device")
    seen = []

    def step(inputs):
        seen.append(inputs["real"])
        return {"sum": inputs["real"].sum()}

    kind = StepKind(True, (None,), False, (2,))
    first = graphs(kind, step, {"real": torch.tensor([1.0, 2.0]), "labels": None})
    second = graphs(kind, step, {"real": torch.tensor([3.0, 4.0]), "labels": None})
    assert (float(first["sum"]), float(second["sum"])) == (3.0, 7.0)
    assert seen[0] is seen[1]  # one buffer, refilled
    other = StepKind(False, (None,), False, (2,))
    graphs(other, step, {"real": torch.tensor([5.0, 6.0]), "labels": None})
    assert seen[2] is not seen[0] and len(graphs.variants) == 2
    assert str(other) == "D step, no G step, batch 2"
