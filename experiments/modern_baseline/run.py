"""The modern baseline against today's default, on the digits' mode-coverage benchmark
(experiments/modern_baseline/RESULTS.md): stacked digits (1,000 modes), `make train`'s CPU
budget (~4,000 steps), several seeds, every run scored by `python -m src.evaluate`.

    python -m experiments.modern_baseline.run train --seeds 1 2 3 [--only default r3gan-32]
    python -m experiments.modern_baseline.run score            # table.md from the scores
    python -m experiments.modern_baseline.run train --benchmark digits --only default diffaugment \
        default-ada500 default-noaug default-ada-full
    python -m experiments.modern_baseline.run score --benchmark digits   # table_digits.md

`train` runs two configurations side by side with one thread each into
outputs/modern_baseline/<config>_s<seed> (finished runs are skipped); in-training metrics
are off, and `score` measures each last checkpoint the same way (10,000 samples against
10,000 real stacks; the floor: 10,000 held-out stacks): domain FID/KID on the channels' digit
features, precision, recall, density, coverage, modes and mode KL.
"""

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "outputs" / "modern_baseline"
HERE = Path(__file__).resolve().parent

# stacked digits (1,000 modes) in 2,400 steps; the digits themselves: `make train` (80 epochs)
BENCHMARKS = {
    "stacked": ["data=stacked_digits", "data.num_images=25600", "trainer.max_epochs=6"],
    "digits": [],
}
R3GAN_OPTIMIZER = [  # R3GAN's Adam: beta1 0, beta2 0.99 (its start), lr 2e-4, constant here
    "optimizer=adam", "optimizer.lr=2e-4", "optimizer.generator.betas=[0.0,0.99]",
    "optimizer.discriminator.betas=[0.0,0.99]",
]  # fmt: skip
CONFIGS = {
    # least squares, spectral-norm DCGAN D, Adam 4e-4 decayed, mixture prior, and (since
    # 2026-12-02) ADA: translation with p adaptive from 0 (target 0.6, 0 -> 1 in 100k images)
    "default": [],
    # the default until 2026-12-02: DiffAugment's translation on every image (p = 1)
    "diffaugment": ["model/augmentation=diffaugment"],
    # ADA at its published speed (p from 0 to 1 in 500k images; a digits run is 143k)
    "default-ada500": ["model.augmentation.speed_images=500000"],
    # the control: no augmentation at all
    "default-noaug": ["model/augmentation=none"],
    # ADA's pipeline as far as it is built here, p adaptive from 0
    "default-ada-full": ["model/augmentation/policies=[translation,xflip,rot90,color,cutout]"],
    "default-rpgan-r1r2": ["model/loss=rpgan", "model/regularizers=[r1,r2]",
                           "model.regularizers.r1.weight=0.05",
                           "model.regularizers.r2.weight=0.05"],
    # issue 37: D against mode collapse, on the default
    "default-mbstd": ["model.discriminator.minibatch_std=4"],  # StyleGAN2's group of 4
    "default-pack2": ["model.pack=2"],  # PacGAN2
    "default-pack4": ["model.pack=4"],  # PacGAN4
    # R3GAN's networks at its CPU width (conf/model/r3gan_cpu.yaml: 8 wide, 1 block a stage,
    # lazy R1/R2) with its Adam (beta1 0)
    "r3gan-cpu": ["model=r3gan_cpu", *R3GAN_OPTIMIZER],
    # R3GAN at a CPU width: every stage 32 wide (groups of 16), 2 blocks, gamma 0.05, EMA
    "r3gan-32": ["model=r3gan", "model.generator.ngf=32", "model.discriminator.ndf=32",
                 *R3GAN_OPTIMIZER],
}  # fmt: skip
METRICS = {
    "stacked": ("fid", "kid", "precision", "recall", "density", "coverage",
                "modes", "mode_kl"),
    "digits": ("fid", "kid", "precision", "recall", "density", "coverage",
               "recognisable", "rarest_digit"),
}  # fmt: skip
SAMPLES = {"stacked": ["n=10000", "num_real=10000"], "digits": ["n=1000"]}


def out(benchmark: str) -> Path:
    return OUT if benchmark == "stacked" else OUT / benchmark


def run_dir(config: str, seed: int, benchmark: str = "stacked") -> Path:
    return out(benchmark) / f"{config}_s{seed}"


def train(configs: list[str], seeds: list[int], benchmark: str) -> None:
    jobs = [(c, s) for s in seeds for c in configs
            if not (run_dir(c, s, benchmark) / "done").exists()]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    for i in range(0, len(jobs), 2):  # two at a time, one thread each
        with contextlib.ExitStack() as logs:
            running = []
            for config, seed in jobs[i : i + 2]:
                command = [sys.executable, "-m", "src.train", *BENCHMARKS[benchmark],
                           *CONFIGS[config],
                           f"seed={seed}", "logger=csv", "trainer.limit_val_batches=0",
                           f"hydra.run.dir={run_dir(config, seed, benchmark)}"]  # fmt: skip
                log = logs.enter_context(open(out(benchmark) / f"{config}_s{seed}.log", "w"))
                process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
                running.append((config, seed, process))
            for config, seed, process in running:
                if process.wait() == 0:
                    (run_dir(config, seed, benchmark) / "done").touch()
                print(f"{config} seed {seed}: exit {process.returncode}", flush=True)


def score(benchmark: str) -> None:
    rows: dict[str, list[dict]] = {}
    floor = None
    metrics = METRICS[benchmark]
    for done in sorted(out(benchmark).glob("*_s*/done")):
        folder = done.parent
        scores = folder / "scores.json"
        if not scores.exists():
            ckpt = folder / "checkpoints" / "last.ckpt"
            command = [sys.executable, "-m", "src.evaluate", f"ckpt_path={ckpt}",
                       *SAMPLES[benchmark], f"out={scores}"]  # fmt: skip
            subprocess.run(command, cwd=ROOT, check=True)
        report = json.loads(scores.read_text())
        if benchmark == "digits":  # the independent digit classifier: recognisable, balance
            report = recognisable(folder, report)
        config = folder.name.rsplit("_s", 1)[0]
        rows.setdefault(config, []).append(report["metrics"])
        floor = report["real_vs_real"]
    lines = ["| config | seeds | " + " | ".join(metrics) + " |",
             "|---|---|" + "---|" * len(metrics)]  # fmt: skip
    for config, runs in rows.items():
        cells = []
        for name in metrics:
            values = [r[name] for r in runs]
            spread = f" ± {statistics.stdev(values):.3g}" if len(values) > 1 else ""
            cells.append(f"{statistics.mean(values):.3g}{spread}")
        lines.append(f"| {config} | {len(runs)} | " + " | ".join(cells) + " |")
    if floor:
        lines.append("| real vs real | | " + " | ".join(f"{floor[m]:.3g}" for m in metrics) + " |")
    (HERE / ("table.md" if benchmark == "stacked" else f"table_{benchmark}.md")).write_text(
        "\n".join(lines) + "\n"
    )
    plot(rows, floor, benchmark)
    print("\n".join(lines))


def plot(rows: dict[str, list[dict]], floor: dict | None, benchmark: str) -> None:
    """fid_<benchmark>.png: domain FID against recall, each seed a dot and each config's mean
    a cross, the real-vs-real floor a star: fidelity and diversity on one picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4.5))
    for config, runs in sorted(rows.items()):
        recall, fid = [r["recall"] for r in runs], [r["fid"] for r in runs]
        (dots,) = axes.plot(recall, fid, "o", alpha=0.5)
        axes.plot(statistics.mean(recall), statistics.mean(fid), "x", markersize=12,
                  color=dots.get_color(), label=f"{config} ({len(runs)} seeds)")  # fmt: skip
    if floor:
        axes.plot(floor["recall"], floor["fid"], "*", markersize=14, color="black",
                  label="real vs real")  # fmt: skip
    axes.set(xlabel="recall (diversity, higher is better)", yscale="log",
             ylabel="domain FID (fidelity, lower is better)", title=f"{benchmark}")  # fmt: skip
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(HERE / f"fid_recall_{benchmark}.png", dpi=100)
    plt.close(figure)


def recognisable(folder: Path, report: dict) -> dict:
    """The share of 1,000 samples the digit classifier reads with confidence >= 0.9, and the
    share of the rarest digit (0.1 when balanced), beside the held-out real digits'."""
    digits = folder / "digits.json"
    if not digits.exists():
        command = [sys.executable, "-m", "experiments.digits_quality.score_run", str(folder),
                   "--real"]  # fmt: skip
        out = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
        digits.write_text(out.stdout)
    lines = [json.loads(line) for line in digits.read_text().splitlines() if line.strip()]
    real, run = (next(x for x in lines if (x["source"] == "held-out real digits") == r)
                 for r in (True, False))  # fmt: skip
    for key, result in (("metrics", run), ("real_vs_real", real)):
        shares = result["class_shares"]
        shares = shares.values() if isinstance(shares, dict) else shares
        report[key] |= {"recognisable": result["recognisable"], "rarest_digit": min(shares)}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["train", "score"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--only", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--benchmark", default="stacked", choices=list(BENCHMARKS))
    args = parser.parse_args()
    out(args.benchmark).mkdir(parents=True, exist_ok=True)
    if args.step == "train":
        train(args.only, args.seeds, args.benchmark)
    else:
        score(args.benchmark)


if __name__ == "__main__":
    main()
