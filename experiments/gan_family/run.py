"""The GAN family on the digits: loss x D normalization in `make train`'s budget, several
seeds, scored on fidelity and diversity together (experiments/gan_family/RESULTS.md).

    python -m experiments.gan_family.run train --seeds 1            # every configuration
    python -m experiments.gan_family.run train --seeds 2 3 --only hinge/spectral bce/batch
    python -m experiments.gan_family.run train --seeds 1 2 3 \\
        --only "sngan-16 least_squares/spectral" "resnet-16 least_squares/spectral"
    python -m experiments.gan_family.run train --seeds 1 2 3 --only \\
        "ema-0.999 least_squares/spectral" "lecam-0.3 least_squares/spectral" \\
        "conditional least_squares/spectral"
    python -m experiments.gan_family.run score                      # table.md, fid_recall.png

`train` runs `python -m src.train` with the default settings plus each configuration's
overrides (80 epochs, Adam 4e-4 / 0.5 decayed over the second half, 20-component latent
mixture at spread 0.5, DiffAugment translation, one D step per G step), two runs side by
side with one thread each, into outputs/gan_family/<loss>_<norm>_s<seed>; finished runs are
skipped. In-training metrics are off (`trainer.limit_val_batches=0`): `score` measures
every run's last checkpoint the same way, with experiments/conditional/measure.py (1,000
samples; domain FID/KID, precision, recall, density, coverage against the held-out digits;
the digit classifier's recognisable share and the least/most frequent digit's share).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "outputs" / "gan_family"
HERE = Path(__file__).resolve().parent

# Every setting named, not left to the defaults (which this study changed: least squares +
# spectral norm since; the first runs had BCE + BatchNorm as the defaults).
NORMS = {"batch": ["model.discriminator.norm=batch"],
         "spectral": ["model.discriminator.norm=spectral"],
         "none": ["model.discriminator.norm=none"]}  # fmt: skip
LOSSES = {
    "bce": ["model/loss=bce"],  # the article's game, non-saturating G loss
    "hinge": ["model/loss=hinge"],
    "least_squares": ["model/loss=least_squares"],
    "relativistic": ["model/loss=relativistic"],
    # a critic needs its penalty; per-sample gradient norms rule out BatchNorm in D
    "wasserstein_gp": ["model/loss=wasserstein", "model/regularizers=[wgan_gp]",
                       "model.regularizers.wgan_gp.weight=10"],
}  # fmt: skip
CONFIGS = {
    f"{loss}/{norm}": LOSSES[loss] + NORMS[norm]
    for loss in LOSSES
    for norm in NORMS
    if not (loss == "wasserstein_gp" and norm == "batch")
}
# The other architectures with the best pair of the table (least squares + spectral-norm D,
# their configs' own D norm), at the width whose CPU step costs what DCGAN's default (width
# 32) does, so that 80 epochs fit the same budget (their published widths cost 9x (SNGAN,
# 64) and 40x (ResNet, 256/128) as much here). Their G keeps its N(0, I) prior.
ARCHITECTURES = {
    f"{arch}-16 least_squares/spectral": [f"model={arch}", "model.generator.ngf=16",
                                          "model.discriminator.ndf=16", "model/loss=least_squares"]
    for arch in ("sngan", "resnet")
}  # fmt: skip
CONFIGS |= ARCHITECTURES
# The default pair (least squares + spectral-norm D) with one more stabilizer each: an EMA of
# G's weights (sampled from; Yaz et al. 2019, StudioGAN's `ema`), LeCam (Tseng et al. 2021,
# weight 0.3, for limited data with DiffAugment), and class conditioning (projection D).
VARIANTS = {
    f"{variant} least_squares/spectral": LOSSES["least_squares"] + NORMS["spectral"] + [override]
    for variant, override in [("ema-0.999", "model/ema=average"),
                              ("lecam-0.3", "model/regularizers=[lecam]"),
                              ("conditional", "model.conditional=true")]
}  # fmt: skip
CONFIGS |= VARIANTS
COMMON = ["logger=csv", "trainer.limit_val_batches=0"]


def run_dir(config: str, seed: int) -> Path:
    return OUT / f"{name(config)}_s{seed}"


def name(config: str) -> str:
    return config.replace("/", "_").replace(" ", "_")


def train(configs: list[str], seeds: list[int], parallel: int) -> None:
    queue = [(c, s) for c in configs for s in seeds if not finished(run_dir(c, s))]
    running: list[tuple[subprocess.Popen, str, float]] = []
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    while queue or running:
        while queue and len(running) < parallel:
            config, seed = queue.pop(0)
            directory = run_dir(config, seed)
            args = [sys.executable, "-m", "src.train", *COMMON, f"seed={seed}",
                    f"hydra.run.dir={directory}", *CONFIGS[config]]  # fmt: skip
            log = open(OUT / f"{directory.name}.log", "w")  # noqa: SIM115
            print(" ".join(args[1:]), flush=True)
            running.append((subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=log),
                            directory.name, time.monotonic()))  # fmt: skip
        time.sleep(5)
        for job in [j for j in running if j[0].poll() is not None]:
            running.remove(job)
            print(f"{job[1]}: exit {job[0].returncode}, {time.monotonic() - job[2]:.0f} s",
                  flush=True)  # fmt: skip


def finished(directory: Path) -> bool:
    return (directory / "checkpoints" / "last.ckpt").exists() and (
        directory / "checkpoints" / "epoch_079.ckpt"
    ).exists()


COLUMNS = [("fid", "FID", 1), ("kid", "KID", 1), ("precision", "precision", 3),
           ("recall", "recall", 3), ("density", "density", 2), ("coverage", "coverage", 3),
           ("recognisable", "recognisable", 3), ("min_share", "min share", 3),
           ("max_share", "max share", 3)]  # fmt: skip


def score() -> None:
    import torch

    from experiments.conditional.measure import measure
    from experiments.digits_quality.digit_classifier import load_or_train
    from experiments.digits_quality.digit_classifier import score as classify
    from src.data.digits import Digits
    from src.metrics.domain import VERSION
    from src.metrics.evaluator import Evaluator

    torch.set_num_threads(2)
    cache = HERE / "results.jsonl"
    lines = cache.read_text().splitlines() if cache.exists() else []
    # rows scored by another version of the domain feature extractor are scored again
    results = [r for r in map(json.loads, lines) if r.get("extractor") == VERSION]
    cache.write_text("".join(json.dumps(r) + "\n" for r in results))
    done = {r["run"] for r in results}
    evaluator = Evaluator(Digits(image_size=32), num_real=1000)
    classifier = load_or_train()
    floor = evaluator.floor()
    judged = classify(classifier, evaluator.held_out)
    floor |= {k: v for k, v in judged.items() if k != "class_shares"}
    for config in CONFIGS:
        for directory in sorted(OUT.glob(f"{name(config)}_s*")):
            if directory.is_dir() and finished(directory) and directory.name not in done:
                metrics = measure(directory, evaluator, classifier)
                seed = int(directory.name.rsplit("_s", 1)[1])
                results.append({"run": directory.name, "config": config, "seed": seed,
                                "extractor": VERSION,
                                **{k: metrics[k] for k, _, _ in COLUMNS}})  # fmt: skip
                with cache.open("a") as f:
                    f.write(json.dumps(results[-1]) + "\n")
                print(results[-1], flush=True)
    write_table(results, floor)
    plot(results, floor)


def cell(values: list[float], digits: int) -> str:
    spread = f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):.{digits}f}{spread}"


def write_table(results: list[dict], floor: dict) -> None:
    floor_cells = [f"{floor[k]:.{d}f}" if k in floor else "-" for k, _, d in COLUMNS]
    lines = ["| loss / D norm | seeds | " + " | ".join(t for _, t, _ in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 2) + "|",
             "| real vs real (floor) | - | " + " | ".join(floor_cells) + " |"]  # fmt: skip
    for config in CONFIGS:
        rows = [r for r in results if r["config"] == config]
        if rows:
            seeds = ",".join(str(r["seed"]) for r in sorted(rows, key=lambda r: r["seed"]))
            cells = [cell([r[k] for r in rows], d) for k, _, d in COLUMNS]
            lines.append(f"| {config} | {seeds} | " + " | ".join(cells) + " |")
    (HERE / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def plot(results: list[dict], floor: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = {"batch": "o", "spectral": "s", "none": "^"}
    colours = dict(zip(LOSSES, plt.get_cmap("tab10").colors, strict=False))
    fig, ax = plt.subplots(figsize=(9.5, 5))
    prefixes = {"sngan-16": "D", "resnet-16": "P", "ema-0.999": "v", "lecam-0.3": "<",
                "conditional": "X"}  # fmt: skip
    for r in results:
        arch, _, pair = r["config"].rpartition(" ")
        loss, norm = pair.split("/")
        marker = prefixes.get(arch, markers[norm])
        ax.scatter(r["recall"], r["fid"], marker=marker, color=colours[loss], alpha=0.8)
    for loss, colour in colours.items():
        ax.scatter([], [], color=colour, label=loss)
    for norm, marker in markers.items():
        ax.scatter([], [], marker=marker, color="grey", label=f"DCGAN, D norm: {norm}")
    for arch, marker in prefixes.items():
        ax.scatter([], [], marker=marker, color="grey", label=f"{arch} (spectral D)")
    ax.scatter(floor["recall"], floor["fid"], marker="*", s=200, color="black",
               label="real vs real")  # fmt: skip
    ax.axhline(1.5 * floor["fid"], ls="--", color="grey", lw=0.8)
    ax.axvline(0.8, ls="--", color="grey", lw=0.8)
    ax.set(xlabel="recall (k-NN, domain features)", ylabel="domain FID (log)", yscale="log",
           title="Digits, 80 epochs, one point per run; dashed: the issue's targets")  # fmt: skip
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the points
    fig.tight_layout()
    fig.savefig(HERE / "fid_recall.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["train", "score"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--only", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.command == "train":
        train(args.only, args.seeds, args.parallel)
    else:
        score()


if __name__ == "__main__":
    main()
