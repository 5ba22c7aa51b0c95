"""How long a config mistake takes to be reported, beside `python -c "import torch"` and
`import pytorch_lightning` in the same run (experiments/error_latency/RESULTS.md): each
command in a fresh interpreter, the median of `--repeats` wall times. Targets: a data, model or
optimizer mistake within 1.5x importing torch; a Trainer-key mistake (Lightning's own checks,
after its import) within importing Lightning + 1 s.

    python -m experiments.error_latency.bench [--repeats 3]
"""

import argparse
import statistics
import subprocess
import sys
import time

MISTAKES = [  # found by Hydra, the data, G, D or the optimizers' constructors
    "trainer.max_epoch=3", "optimizer.lrr=1e-3", "model=dcgam", "model/loss=softmax",
    "optimizer.lr=1e-3e", "optimizer.momentum=1.0", "optimizer.generator.lr=null",
    "data.batch_size=-4", "data.num_workers=100000 data.resident=false", "data.image_size=48",
    "model.generator.ngf=0", "trainer.precision=64-true", "trainer.max_epochs=0",
    "trainer.devices=4096",
]  # fmt: skip
TRAINER = [  # found by Lightning's Trainer, built after its import
    "trainer.precision=8", "trainer.devices=1.5", "hardware=gpu",
]  # fmt: skip


def wall(arguments: list[str]) -> tuple[float, int, str]:
    start = time.perf_counter()
    result = subprocess.run(arguments, capture_output=True, text=True)
    last = (result.stderr.strip().splitlines() or [""])[-1]
    return time.perf_counter() - start, result.returncode, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    imports = {}
    for module in ("torch", "pytorch_lightning"):
        times = [wall([sys.executable, "-c", f"import {module}"])[0] for _ in range(args.repeats)]
        imports[module] = statistics.median(times)
        print(f"import {module}: {imports[module]:.2f} s")
    for mistake in MISTAKES + TRAINER:
        runs = [
            wall([sys.executable, "-m", "src.train", *mistake.split()]) for _ in range(args.repeats)
        ]
        seconds = statistics.median(r[0] for r in runs)
        _, status, line = runs[-1]
        if mistake in TRAINER:
            measure = f"Lightning+{seconds - imports['pytorch_lightning']:+.2f} s"
        else:
            measure = f"ratio={seconds / imports['torch']:.2f}"
        print(f"{mistake:45s} {seconds:5.2f} s  {measure}  exit {status}  " + line[:90])


if __name__ == "__main__":
    main()
