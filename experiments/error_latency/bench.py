"""How long a config mistake takes to be reported, beside `python -c "import torch"` in the
same run (experiments/error_latency/RESULTS.md): each command in a fresh interpreter, the
median of `--repeats` wall times, and the ratio to importing torch (target: <= 1.5).

    python -m experiments.error_latency.bench [--repeats 3]
"""

import argparse
import statistics
import subprocess
import sys
import time

MISTAKES = [
    "trainer.max_epoch=3", "optimizer.lrr=1e-3", "model=dcgam", "optimizer.lr=1e-3e",
    "optimizer.momentum=1.0", "optimizer.generator.lr=null", "data.batch_size=-4",
    "data.num_workers=100000 data.resident=false", "data.image_size=48",
    "trainer.precision=64-true", "trainer.max_epochs=0", "trainer.devices=4",
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
    torch_times = [wall([sys.executable, "-c", "import torch"])[0] for _ in range(args.repeats)]
    reference = statistics.median(torch_times)
    print(f"import torch: {reference:.2f} s")
    for mistake in MISTAKES:
        runs = [
            wall([sys.executable, "-m", "src.train", *mistake.split()]) for _ in range(args.repeats)
        ]
        seconds = statistics.median(r[0] for r in runs)
        _, status, line = runs[-1]
        print(
            f"{mistake:45s} {seconds:5.2f} s  ratio={seconds / reference:.2f}  exit {status}  "
            + line[:90]
        )


if __name__ == "__main__":
    main()
