"""The training step as CUDA graphs (`model.cuda_graph`): the whole D step and G step, forward,
backward, optimizer steps and the EMA update, recorded once and replayed with one launch.

On a GPU a small GAN step is a few milliseconds of work behind hundreds of kernel launches,
Lightning's hooks and the Python that issues them (experiments/throughput/RESULTS.md); a
graph replays the recorded kernels without any of that (torch.cuda.graph, "whole-network
capture"). A replay repeats the captured kernels exactly, so what the step does may not depend
on the host: the batch is copied into static buffers, latents, labels and augmentations are
drawn on the device (torch's graph-safe RNG), the lr, scheduled penalty weights and p and the
EMA decay are device tensors that schedules fill, and nothing reads a tensor on the host. Every
Python branch of the step is part of its key (`StepKind`: a G turn or not, which lazy penalties
are due, an ADA update or not, the batch shape), so each variant is its own graph, captured
when first met after `WARMUP_RUNS` eager runs (cuDNN's algorithm search, optimizer state).

Without CUDA (or with capture off) the same path runs eagerly from the same static buffers: the
path a GPU captures is the one CPU tests check (tests/test_graphs.py).
"""

import logging
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from src.models.health import skips_on_device

log = logging.getLogger(__name__)

WARMUP_RUNS = 3  # eager runs of each variant before its capture (torch's whole-network example)
Inputs = dict[str, torch.Tensor | None]
Step = Callable[[Inputs], dict[str, torch.Tensor]]


class StepKind(NamedTuple):
    """What decides the step's Python branches on one batch: the key of its graph."""

    g_turn: bool
    due: tuple[Hashable, ...]  # each regularizer's `variant` on this batch (lazy: due or not)
    ada_update: bool
    shape: tuple[int, ...]

    def __str__(self) -> str:
        parts = ["D step", "G step" if self.g_turn else "no G step", f"batch {self.shape[0]}"]
        if any(d is True for d in self.due):
            parts.append("a lazy penalty")
        if self.ada_update:
            parts.append("an ADA update")
        return ", ".join(parts)


@dataclass
class Variant:
    inputs: Inputs  # static buffers: each batch is copied in
    runs: int = 0
    graph: "torch.cuda.CUDAGraph | None" = None
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)  # the graph's static outputs
    eager: str | None = None  # why it runs eagerly, when it cannot be captured

    def load(self, inputs: Inputs) -> None:
        for name, value in inputs.items():
            if value is not None:
                self.inputs[name].copy_(value)


class StepGraphs:
    """Runs the step of each `StepKind` from static buffers: replayed as a CUDA graph once
    captured, or eagerly when `blocked` says why nothing can be captured in this run (no CUDA,
    an optimizer or precision that reads the host), said once."""

    def __init__(self, blocked: str | None = None):
        self.capture = blocked is None
        self.variants: dict[StepKind, Variant] = {}
        self.side_stream: torch.cuda.Stream | None = None
        if blocked:
            log.info("model.cuda_graph: the step runs eagerly: %s", blocked)

    def __call__(self, kind: StepKind, step: Step, inputs: Inputs) -> dict[str, torch.Tensor]:
        variant = self.variants.get(kind)
        if variant is None:  # buffers allocated outside any graph's private memory pool
            buffers = {k: None if v is None else v.clone() for k, v in inputs.items()}
            variant = self.variants[kind] = Variant(buffers)
        else:
            variant.load(inputs)
        variant.runs += 1
        if variant.graph is not None:
            variant.graph.replay()
            return dict(variant.outputs)
        if not self.capture or variant.eager:
            return step(variant.inputs)
        if variant.runs <= WARMUP_RUNS:
            return self.on_side_stream(step, variant.inputs)
        return self.captured(kind, variant, step)

    def on_side_stream(self, step: Step, inputs: Inputs) -> dict[str, torch.Tensor]:
        """An eager warm-up run on a side stream, as torch's capture recipe asks."""
        if self.side_stream is None:
            self.side_stream = torch.cuda.Stream()
        self.side_stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side_stream):
            outputs = step(inputs)
        torch.cuda.current_stream().wait_stream(self.side_stream)
        return outputs

    def captured(self, kind: StepKind, variant: Variant, step: Step) -> dict[str, torch.Tensor]:
        """Captures this variant's step (its kernels are recorded, not run), then replays it
        for the current batch; a variant that cannot be captured runs eagerly from now on."""
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                outputs = step(variant.inputs)
        except RuntimeError as error:  # an operation capture refuses (a host read, a copy)
            variant.eager = str(error).strip().splitlines()[0][:200]
            log.info("model.cuda_graph: the step (%s) runs eagerly: capturing it failed: %s",
                     kind, variant.eager)  # fmt: skip
            torch.cuda.synchronize()
            return step(variant.inputs)
        variant.graph, variant.outputs = graph, outputs
        log.info("model.cuda_graph: captured the step (%s)", kind)
        graph.replay()
        return dict(outputs)


def device_scalar(value: float, device: torch.device) -> torch.Tensor:
    """A hyper-parameter as a 0-dim device tensor a graph reads (float64 on the CPU, where
    fused optimizers read it as a double, so values equal the Python float's bit for bit)."""
    dtype = torch.float64 if device.type == "cpu" else torch.float32
    return torch.tensor(float(value), dtype=dtype, device=device)


def set_value(holder: dict, key: str, value: float) -> None:
    """holder[key] = value, written into the tensor when it is one (a graph reads that tensor)."""
    if isinstance(holder[key], torch.Tensor):
        holder[key].fill_(value)
    else:
        holder[key] = value


def capture_ready(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """The lr of each group as a device tensor (schedules fill it; a float would be baked into
    the graph) and `capturable` where the optimizer has it (Adam's capture check)."""
    for group in optimizer.param_groups:
        if not isinstance(group["lr"], torch.Tensor):
            group["lr"] = device_scalar(group["lr"], device)
        if "capturable" in group:
            group["capturable"] = True


def capture_blocker(
    optimizers: list[torch.optim.Optimizer], precision: str, scheduled: Iterable[str] = ()
) -> str | None:
    """Why this run's step cannot be captured, or None: a non-fused optimizer reads the skip
    flag of the divergence guard on the host, fused Adam takes beta2 as a host number (so a
    scheduled beta2 would be frozen at its captured value), and 16-mixed's loss scaler reads
    its inf check."""
    if "beta2" in scheduled:
        return "optimizer.schedules.beta2: fused Adam reads beta2 as a host number"
    for optimizer in optimizers:
        if not skips_on_device(optimizer):
            return (f"{type(optimizer).__name__} is not fused (fused optimizers skip a "
                    "non-finite step on the device): set fused: true")  # fmt: skip
    if precision.startswith("16"):
        return f"trainer.precision={precision}: its loss scaler reads the device; use bf16-mixed"
    return None
