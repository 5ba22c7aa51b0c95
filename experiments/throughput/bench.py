"""Training throughput: the PyTorch DCGAN example's loop vs our Lightning path, side by side.

    python -m experiments.throughput.bench                 # CPU (`make bench`), ~5 minutes
    python -m experiments.throughput.bench --device cuda   # the GPU table, one command

(a) `plain`: the PyTorch DCGAN example's procedure (github.com/pytorch/examples dcgan/main.py):
    D ends in Sigmoid + BCELoss, D on real then on fake.detach() (two backward calls), G
    through D with D's weights still requiring grad, Adam 2e-4 / 0.5, fresh noise each step,
    the example's three `.item()` calls per step; contiguous tensors, fp32.
(b) `ours`: the real Lightning Trainer with `GANModule` (D frozen in the G step, logits,
    fused Adam, channels_last, losses logged every 10 steps from device tensors) on the
    resident data path. On GPU also bf16-mixed and compiled variants.

Same networks (src.models.dcgan) for both. The `sngan` and `resnet` cases (GPU only by
default) time our path alone, there being no textbook loop for them, on `model=sngan` /
`model=resnet` as their YAML builds them, at CIFAR-10's 32x32x3 and SNGAN's batch 64. Each
round times `--warmup` + `--steps` steps of every variant in turn (interleaved, so machine
drift hits all alike); figures are medians over rounds of the steady-state images/s;
`ratio=` is the median of the per-round ratios ours/plain for the 64x64 case. Peak memory
comes from a separate short process per variant.
"""

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from src.models.dcgan import Discriminator, Generator

ROOT = Path(__file__).resolve().parents[2]

GFLOP_PER_IMAGE_64 = 2.29  # per training step at 64x64 with D frozen in the G step (issue 6)
CASES = {
    # name: (image_size, channels, ngf=ndf (None: the model config's), batch CPU, batch GPU)
    "dcgan64": (64, 3, 64, 64, 128),
    "digits": (32, 1, 32, 64, 64),
    "sngan": (32, 3, None, 64, 64),
    "resnet": (32, 3, None, 64, 64),
    "r3gan": (32, 3, None, 64, 64),  # the reference's CIFAR-10 networks (20.7M + 20.7M)
    # networks so small that compute is negligible: what a step costs besides the kernels
    "overhead": (16, 1, 4, 8, 8),
}
ARCHITECTURES = ("sngan", "resnet", "r3gan")  # conf/model/<name>.yaml; our path only


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PlainLoop:
    """The PyTorch DCGAN example's training iteration, verbatim in substance."""

    def __init__(self, size: int, channels: int, width: int, batch: int, device: torch.device):
        torch.manual_seed(0)
        self.device, self.batch = device, batch
        self.G = Generator(size, channels, 100, ngf=width, latent_components=0).to(device)
        discriminator = Discriminator(size, channels, ndf=width, norm="batch")
        self.D = nn.Sequential(discriminator, nn.Sigmoid()).to(device)
        self.criterion = nn.BCELoss()
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.data = torch.rand(batch, channels, size, size, device=device) * 2 - 1

    def step(self) -> None:
        real, b = self.data, self.batch
        self.D.zero_grad()
        label = torch.full((b,), 1.0, device=self.device)
        output = self.D(real).view(-1)
        err_d_real = self.criterion(output, label)
        err_d_real.backward()
        _ = output.mean().item()  # D_x
        noise = torch.randn(b, 100, device=self.device)
        fake = self.G(noise)
        label.fill_(0.0)
        output = self.D(fake.detach()).view(-1)
        err_d_fake = self.criterion(output, label)
        err_d_fake.backward()
        _ = output.mean().item()  # D_G_z1
        self.opt_d.step()
        self.G.zero_grad()
        label.fill_(1.0)
        output = self.D(fake).view(-1)
        err_g = self.criterion(output, label)
        err_g.backward()
        _ = output.mean().item()  # D_G_z2
        self.opt_g.step()

    def run(self, warmup: int, steps: int) -> float:
        """Images/s over `steps` steps after `warmup` steps."""
        if steps == 0:
            for _ in range(warmup):
                self.step()
            return 0.0
        for _ in range(warmup):
            self.step()
        sync(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        sync(self.device)
        return steps * self.batch / (time.perf_counter() - start)


class Ours:
    """GANModule through a real Trainer on the resident data path."""

    def __init__(
        self, size, channels, width, batch, device, precision="32-true", compile=False,
        channels_last=True, architecture=None, cuda_graph=False,
    ):  # fmt: skip
        from src.data.fake import FakeImages
        from src.data.module import ImageDataModule
        from src.models.augment import Augment
        from src.models.gan_module import GANModule
        from src.models.losses import BCE
        from src.models.optim import Optimizers

        torch.manual_seed(0)
        self.device, self.batch, self.precision = device, batch, precision
        adam = functools.partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999), fused=True)
        if architecture:
            generator, discriminator = networks_of(architecture, size, channels)
        else:
            generator = Generator(size, channels, 100, ngf=width, latent_components=0)
            discriminator = Discriminator(size, channels, ndf=width, norm="batch")
        optimizers = Optimizers(adam, adam, lr=2e-4, momentum=0.5)
        self.module = GANModule(
            generator, discriminator, optimizers.build(generator, discriminator), BCE(),
            augmentation=Augment(), compile=compile, channels_last=channels_last,
            cuda_graph=cuda_graph,
        )  # fmt: skip
        self.make_data = lambda n: ImageDataModule(FakeImages(
            num_images=n, image_size=size, channels=channels, batch_size=batch
        ))  # fmt: skip

    def run(self, warmup: int, steps: int, callbacks: list | None = None) -> float:
        from pytorch_lightning import Callback, Trainer
        from pytorch_lightning.loggers import CSVLogger

        from src.callbacks.health import Health

        marks: list[float] = []
        device = self.device

        class Clock(Callback):
            def on_train_batch_end(self, trainer, *args) -> None:
                if trainer.fit_loop.total_batch_idx in (warmup - 1, warmup + steps - 1):
                    sync(device)
                    marks.append(time.perf_counter())

        with tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(
                accelerator=device.type, devices=1, precision=self.precision, max_epochs=1,
                limit_train_batches=warmup + steps, limit_val_batches=0, logger=CSVLogger(tmp),
                log_every_n_steps=10, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False, callbacks=[Clock(), Health(), *(callbacks or [])],
                benchmark=device.type == "cuda",
            )  # fmt: skip
            trainer.fit(self.module, datamodule=self.make_data((warmup + steps) * self.batch))
        if steps == 0:
            return 0.0
        return steps * self.batch / (marks[1] - marks[0])


def networks_of(architecture: str, size: int, channels: int) -> tuple[nn.Module, nn.Module]:
    """G and D exactly as `python -m src.train model=<architecture>` builds them."""
    from hydra.utils import instantiate

    from src.train import compose_config

    overrides = [f"model={architecture}", f"data.image_size={size}", f"data.channels={channels}"]
    model = compose_config(overrides).model
    return instantiate(model.generator), instantiate(model.discriminator)


class FirstStep:
    """Callback for `src.train`: prints seconds from process start to the first batch's end."""

    def __new__(cls):
        from pytorch_lightning import Callback

        class _FirstStep(Callback):
            def on_train_batch_end(self, trainer, *args) -> None:
                if trainer.fit_loop.total_batch_idx == 0:
                    ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
                    boot = float(Path("/proc/uptime").read_text().split()[0])
                    started = ticks / os.sysconf("SC_CLK_TCK")
                    print(f"FIRST_STEP_AT={boot - started:.2f}", flush=True)

        return _FirstStep()


def startup_seconds(logger: str) -> float:
    """Process start -> end of the first training step of `python -m src.train` (warm cache)."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [sys.executable, "-m", "src.train", f"logger={logger}", "debug=fast",
                f"hydra.run.dir={tmp}", "+callbacks.first._target_=" + __name__.replace(
                    "__main__", "experiments.throughput.bench") + ".FirstStep"]  # fmt: skip
        for _ in range(2):  # the first run warms the disk cache; report the second
            out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True)
    return float(out.stdout.split("FIRST_STEP_AT=")[1].split()[0])


GRAPHED = {  # model.cuda_graph (on CPU: its capture-ready path, eagerly)
    "ours + cuda graph": {"cuda_graph": True},
    "ours bf16-mixed + cuda graph": {"precision": "bf16-mixed", "cuda_graph": True},
}
SCAN_BATCHES = (128, 256, 512, 1024, 2048)  # --scan: 64x64 DCGAN, graph-captured


def variants(device: torch.device, case: str = "") -> dict[str, dict]:
    if case == "overhead":
        return {"plain": {}, "ours": {}, "ours, capture-ready path": {"cuda_graph": True}}
    if case in ARCHITECTURES:
        precisions = {"ours": {}, "ours bf16-mixed": {"precision": "bf16-mixed"}, **GRAPHED}
        options = precisions if device.type == "cuda" else {"ours": {}}
        return {name: {**value, "architecture": case} for name, value in options.items()}
    if device.type == "cpu":  # + one ablation: our step without channels_last
        return {"plain": {}, "ours": {}, "ours, contiguous NCHW": {"channels_last": False}}
    return {
        "plain": {},
        **GRAPHED,
        "ours": {},
        "ours bf16-mixed": {"precision": "bf16-mixed"},
        "ours bf16-mixed + compile": {"precision": "bf16-mixed", "compile": True},
    }


def bf16_matmul_tflops(device: torch.device, n: int = 8192, repeats: int = 20) -> float:
    """The chip's bf16 rate as this software reaches it: a large square matmul, timed."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e12


def batch_scan(device: torch.device, rounds: int) -> None:
    """64x64 DCGAN, graph-captured fp32 and bf16-mixed, from batch 128 to 2048: images/s,
    TFLOP/s, its share of the measured bf16 matmul rate, peak GPU memory."""
    rate = bf16_matmul_tflops(device)
    print(f"\nbatch scan, 64x64 DCGAN; bf16 matmul rate measured here: {rate:.0f} TFLOP/s")
    size, channels, width, _, _ = CASES["dcgan64"]
    for batch in SCAN_BATCHES:
        for name, options in GRAPHED.items():
            torch.cuda.reset_peak_memory_stats(device)
            runner = Ours(size, channels, width, batch, device, **options)
            speed = statistics.median(runner.run(10, 30) for _ in range(rounds))
            tflops = speed * GFLOP_PER_IMAGE_64 / 1e3
            memory = torch.cuda.max_memory_allocated(device) / 2**20
            print(f"  batch {batch:5d} {name:30s} {speed:10.0f} images/s {tflops:6.1f} TFLOP/s "
                  f"({100 * tflops / rate:4.1f}% of bf16 matmul), peak {memory:,.0f} MiB",
                  flush=True)  # fmt: skip


def build(name: str, case: str, device: torch.device, options: dict):
    size, channels, width, cpu_batch, gpu_batch = CASES[case]
    batch = gpu_batch if device.type == "cuda" else cpu_batch
    cls = PlainLoop if name == "plain" else Ours
    return cls(size, channels, width, batch, device, **options), batch


def peak_memory(case: str, name: str, device: str) -> dict:
    """Peak RSS (and GPU memory) of a fresh process running 3 steps of one variant."""
    out = subprocess.run(
        [sys.executable, "-m", "experiments.throughput.bench", "--memory-of", case, name,
         "--device", device],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def proc_status_mib(field: str) -> float:
    """VmRSS (resident now) or VmHWM (peak resident) of this process, in MiB."""
    status = Path("/proc/self/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith(field))
    return int(line.split()[1]) / 1024


class CountOps:
    """Counts the aten operations dispatched while active (on a GPU each one is a kernel
    launch); entered and left by hand around the timed batches."""

    def __init__(self):
        from torch.utils._python_dispatch import TorchDispatchMode

        counts = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                counts.ops += 1
                return func(*args, **(kwargs or {}))

        self.ops, self.mode = 0, Mode()


def ops_per_step(runner, warmup: int, steps: int) -> float:
    """Dispatched aten ops per training step, over `steps` steps after `warmup`."""
    counter = CountOps()
    if isinstance(runner, PlainLoop):
        runner.run(warmup, 0)
        with counter.mode:
            for _ in range(steps):
                runner.step()
        return counter.ops / steps
    from pytorch_lightning import Callback

    class Window(Callback):  # from the start of batch `warmup` to the start of the next after
        def on_train_batch_start(self, trainer, *args) -> None:
            batch = trainer.fit_loop.total_batch_idx
            if batch == warmup:
                counter.mode.__enter__()
            elif batch == warmup + steps:
                counter.mode.__exit__(None, None, None)

    runner.run(warmup, steps + 1, callbacks=[Window()])
    return counter.ops / steps


def memory_of(case: str, name: str, device: torch.device) -> None:
    runner, _ = build(name, case, device, variants(device, case)[name])
    runner.run(1, 0)  # imports, first allocations
    before = proc_status_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak: measure training only
    runner.run(1, 3)
    peak = {"rss_mib": proc_status_mib("VmHWM"), "rss_before_training_mib": before}
    if device.type == "cuda":
        peak["gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    print(json.dumps(peak))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cases", nargs="+", help="default: all on GPU; dcgan64 digits on CPU")
    parser.add_argument("--memory-of", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--scan", action="store_true", help="GPU: the 64x64 batch scan only")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.memory_of:
        return memory_of(*args.memory_of, device)

    import logging
    import warnings

    for name in ("pytorch_lightning", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    name_of = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name_of}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.scan:
        return batch_scan(device, args.rounds)
    steps = {"cpu": {"dcgan64": (2, 6), "digits": (5, 40), "sngan": (2, 6), "resnet": (2, 4),
                     "r3gan": (1, 2), "overhead": (20, 200)},
             "cuda": {"dcgan64": (20, 100), "digits": (20, 200), "sngan": (20, 100),
                      "resnet": (20, 100), "r3gan": (10, 50),
                      "overhead": (20, 200)}}[device.type]  # fmt: skip
    overhead_line = None
    ratio_line = None
    cases = args.cases or [c for c in CASES if device.type == "cuda" or c not in ARCHITECTURES]
    for case in cases:
        warmup, n = steps[case]
        runners = {}
        for name, options in variants(device, case).items():
            runners[name], batch = build(name, case, device, options)
        rates: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(args.rounds):
            for name, runner in runners.items():
                rates[name].append(runner.run(warmup, n))
        print(f"\n{case}: batch {batch}, {n} timed steps after {warmup} warm-up, "
              f"{args.rounds} rounds")  # fmt: skip
        if case == "overhead":  # per step: time and dispatched operations
            ops = {name: ops_per_step(runner, warmup, 50) for name, runner in runners.items()}
            seconds = {name: batch / statistics.median(values) for name, values in rates.items()}
            for name in runners:
                print(
                    f"  {name:28s} {1e3 * seconds[name]:7.2f} ms/step, "
                    f"{ops[name]:6.0f} aten ops dispatched per step"
                )
            paired = [p / o for o, p in zip(rates["ours"], rates["plain"], strict=True)]
            overhead_line = (f"overhead_ratio={statistics.median(paired):.3f} (ours/plain time "
                             f"per step; ops per step ours {ops['ours']:.0f}, plain "
                             f"{ops['plain']:.0f})")  # fmt: skip
            continue
        for name, values in rates.items():
            memory = peak_memory(case, name, args.device)
            line = f"  {name:28s} {statistics.median(values):9.1f} images/s"
            line += "".join(f", peak {k} {v:,.0f}" for k, v in memory.items())
            if device.type == "cuda" and case == "dcgan64":
                line += f", {statistics.median(values) * GFLOP_PER_IMAGE_64 / 1e3:.1f} TFLOP/s"
            print(line, flush=True)
        base = "plain" if "plain" in rates else "ours"
        for name in rates:
            if name != base:
                paired = [o / p for o, p in zip(rates[name], rates[base], strict=True)]
                print(f"  {name} / {base}: {statistics.median(paired):.3f}")
                if case == "dcgan64" and name == "ours":
                    ratio_line = f"ratio={statistics.median(paired):.3f}"
    for logger in ("csv", "wandb") if args.cases is None else ():  # with the whole table
        print(f"startup to the first step done, logger={logger}: {startup_seconds(logger):.1f} s")
    if overhead_line:
        print(overhead_line)
    if ratio_line:
        print(ratio_line)


if __name__ == "__main__":
    main()
