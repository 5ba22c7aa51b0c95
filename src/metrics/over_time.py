"""A run's metrics over time (`python -m src.evaluate run_dir=<run> [follow=true]`): every
snapshot in `<run>/snapshots/` (callbacks.snapshots.every_n_epochs) scored once by the same
`Evaluator` (one extractor and reference for the whole curve), a row each in
`<run>/metrics_over_time.csv` (snapshots already there are skipped), and
`<run>/plots/metrics_over_time.png`: FID and recall against the images seen, the real-vs-real
floor dashed. `follow=true` keeps scoring new snapshots while the run's process holds its
lock, and stops when the run has ended."""

import csv
import io
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from src.errors import ConfigError
from src.generate import generate
from src.metrics.evaluator import Evaluator
from src.models.loading import load_generator, stored_data
from src.utils.checkpoint import atomic_write, load_checkpoint
from src.utils.hydra_callbacks import is_running

COLUMNS = ("snapshot", "epoch", "step", "images_seen")
POLL_SECONDS = 2.0


def scored(table: Path) -> list[dict[str, str]]:
    if not table.is_file():
        return []
    with open(table, newline="") as file:
        return list(csv.DictReader(file))


def write_table(table: Path, rows: list[dict[str, Any]]) -> None:
    names = list(COLUMNS) + sorted({k for row in rows for k in row} - set(COLUMNS))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=names)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(table, lambda file: file.write(text.getvalue().encode()))


def plot(rows: list[dict[str, Any]], floor: dict[str, float] | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = [float(r["images_seen"]) for r in rows]
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for axis, name in zip(axes, ("fid", "recall"), strict=True):
        axis.plot(images, [float(r.get(name, "nan")) for r in rows], "o-", label=name)
        if floor and name in floor:
            axis.axhline(floor[name], color="grey", ls="--", label="real vs real")
        axis.set_xlabel("images seen")
        axis.set_title(name)
        axis.legend(loc="best", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=80))
    plt.close(figure)


def score_run(cfg: DictConfig) -> list[dict[str, Any]]:
    run_dir = Path(cfg.run_dir).expanduser()
    snapshots = run_dir / "snapshots"
    if not run_dir.is_dir():
        raise ConfigError("run_dir", str(run_dir), "no such run directory")
    if not snapshots.is_dir() and not (cfg.follow and is_running(run_dir)):
        raise ConfigError("run_dir", str(run_dir), "no snapshots/ there: train with "
                          "callbacks.snapshots.every_n_epochs=<k>")  # fmt: skip
    table, evaluator, floor = run_dir / "metrics_over_time.csv", None, None
    rows = scored(table)
    while True:
        running = cfg.follow and is_running(run_dir)  # read before listing: none is missed
        done = {row["snapshot"] for row in rows}
        for path in sorted(snapshots.glob("epoch_*.ckpt")) if snapshots.is_dir() else []:
            if path.name in done:
                continue
            generator, config = load_generator(str(path), key="run_dir", trust=cfg.trust)
            if evaluator is None:
                data = stored_data(config, cfg.trust, cfg.data_root, cfg.cache_dir)
                evaluator = Evaluator(data, num_real=cfg.num_real, epochs=cfg.domain_epochs,
                                      cache=cfg.cache_dir)  # fmt: skip
                floor = evaluator.floor(cfg.n)
            labels = torch.arange(cfg.n) % generator.num_classes if generator.num_classes else None
            metrics = evaluator.evaluate(generate(generator, cfg.n, cfg.seed, labels), labels)
            checkpoint = load_checkpoint(path, key="run_dir")
            seen = checkpoint["state_dict"].get("_extra_state", torch.tensor(0))
            rows.append({"snapshot": path.name, "epoch": checkpoint.get("epoch", -1) + 1,
                         "step": checkpoint.get("global_step", 0), "images_seen": int(seen),
                         **{k: v for k, v in metrics.items() if "_class_" not in k}})  # fmt: skip
            rows.sort(key=lambda row: float(row["images_seen"]))
            write_table(table, rows)
            print(
                f"{path.name}: "
                + ", ".join(f"{k} {metrics[k]:.4g}" for k in ("fid", "recall") if k in metrics),
                flush=True,
            )
        if rows and evaluator is not None:
            plot(rows, floor, run_dir / "plots" / "metrics_over_time.png")
        if not running:
            return rows
        time.sleep(POLL_SECONDS)
