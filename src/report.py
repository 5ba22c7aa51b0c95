"""A sweep's outcome at a glance: `python -m src.report <sweep dir> [--metric val/fid]`.

Writes `report.png` and `report.html` into the sweep directory (a Hydra multirun directory:
one run directory per job, each with `.hydra/overrides.yaml`): the chosen metric over the
swept keys (a heatmap for two keys, a line for one, a table for more), every job's smoothed
loss curves labelled by its overrides, and every job's last sample grid with its overrides
and metrics. Jobs that failed or are still running are listed as such. No network.
"""

import argparse
import base64
import csv
import html
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from src.cli import one_line_errors
from src.errors import ConfigError
from src.metrics.names import LOWER_IS_BETTER as METRICS_LOWER_IS_BETTER
from src.utils.checkpoint import atomic_write
from src.utils.hydra_callbacks import is_running

LOWER_IS_BETTER = (*METRICS_LOWER_IS_BETTER, "train/loss_g", "train/loss_d")


@dataclass
class Job:
    path: Path
    overrides: dict[str, str]
    status: str  # finished, failed (with the reason when known), running, damaged (why)
    rows: list[dict[str, str]] = field(default_factory=list)

    def series(self, name: str) -> list[float]:
        return [number for r in self.rows if (number := cell(r.get(name))) is not None]

    def epochs(self, name: str) -> list[float]:
        """Where each value of `series(name)` was logged, in epochs: the row's epoch plus the
        share of it done by its batch (batches per epoch from the rows: the largest
        (step + 1) / (epoch + 1), exact once an epoch's last batch was logged)."""
        logged = [r for r in self.rows if cell(r.get(name)) is not None]
        pairs = [(cell(r.get("epoch")) or 0.0, cell(r.get("step")) or 0.0) for r in logged]
        per_epoch = max(((s + 1) / (e + 1) for e, s in pairs), default=1.0)
        return [e + min(max((s + 1) / per_epoch - e, 0.0), 1.0) for e, s in pairs]

    def value(self, name: str) -> float | None:
        """The best value of `name` over the run (min or max by the metric's direction)."""
        values = [v for v in self.series(name) if math.isfinite(v)]
        if not values:
            return None
        return min(values) if name in LOWER_IS_BETTER else max(values)

    def grid(self) -> Path | None:
        grids = sorted((self.path / "samples").glob("epoch_*.png"))
        return grids[-1] if grids else None


def cell(value: object) -> float | None:
    """A metrics.csv cell as a number (None when empty or not a number)."""
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def load_jobs(sweep_dir: Path) -> list[Job]:
    """Every job of the sweep; one whose files cannot be read is listed as damaged, why."""
    jobs = []
    for overrides_file in sorted(sweep_dir.glob("*/.hydra/overrides.yaml")):
        run_dir, overrides, rows = overrides_file.parent.parent, {}, []
        try:
            listed = yaml.safe_load(overrides_file.read_text()) or []
            pairs = [str(o).split("=", 1) for o in listed] if isinstance(listed, list) else []
            overrides = {k.lstrip("+~"): v for k, v in (p for p in pairs if len(p) == 2)}
            if (run_dir / "metrics.csv").is_file():
                with open(run_dir / "metrics.csv", newline="") as file:
                    rows = list(csv.DictReader(file))
        except (OSError, UnicodeDecodeError, yaml.YAMLError, csv.Error) as error:
            reason = f"damaged: {type(error).__name__}"
            jobs.append(Job(run_dir, overrides, reason, []))
            continue
        finished = (run_dir / "checkpoints" / "last.ckpt").is_file() and rows
        status = "running" if is_running(run_dir) else "finished" if finished else "failed"
        if status == "failed" and (run_dir / "failed.txt").is_file():
            status = f"failed: {(run_dir / 'failed.txt').read_text(errors='replace').strip()}"
        jobs.append(Job(run_dir, overrides, status, rows))
    if not jobs:
        raise ConfigError("sweep_dir", str(sweep_dir), "no job directories (*/.hydra) in it")
    return jobs


def optuna_history(jobs: list[Job], metric: str, sweep_dir: Path) -> dict | None:
    """For an Optuna sweep (optimization_results.yaml beside the jobs): the metric of each
    trial in the order they ran, the best value so far, and the best parameters found."""
    results_file = sweep_dir / "optimization_results.yaml"
    if not results_file.is_file():
        return None
    results = yaml.safe_load(results_file.read_text()) or {}
    ordered = sorted(jobs, key=lambda j: int(j.path.name) if j.path.name.isdigit() else 1 << 30)
    values = [j.value(metric) for j in ordered]
    best, best_so_far = math.inf, []
    for value in values:
        best = min(best, value) if value is not None else best
        best_so_far.append(best if math.isfinite(best) else None)
    searched = list(results.get("best_params") or {})
    return {"values": values, "best_so_far": best_so_far, "best_params": results.get("best_params"),
            "best_value": results.get("best_value"),
            "importances": importances(jobs, metric, searched)}  # fmt: skip


def importances(jobs: list[Job], metric: str, keys: list[str]) -> dict[str, float] | None:
    """Optuna's parameter importances of `metric` over the finished trials (an in-memory
    study rebuilt from the jobs' overrides and values); None with fewer than two finished
    trials or nothing that varies. Mean decrease in impurity of a random forest: the fANOVA
    evaluator of optuna 2.10 (what hydra-optuna-sweeper pins) fails with current numpy."""
    import optuna
    from optuna.distributions import CategoricalDistribution

    # optuna 2.x (what hydra-optuna-sweeper pins) calls it UniformDistribution
    FloatDistribution = getattr(  # noqa: N806
        optuna.distributions,
        "FloatDistribution",
        getattr(optuna.distributions, "UniformDistribution", None),
    )

    done = [j for j in jobs if j.value(metric) is not None and all(k in j.overrides for k in keys)]
    distributions = {}
    for key in keys:
        values = [as_number(j.overrides[key]) for j in done]
        if len(set(map(str, values))) < 2:
            continue
        numeric = all(isinstance(v, float) for v in values)
        distributions[key] = (
            FloatDistribution(min(values), max(values))
            if numeric
            else CategoricalDistribution(sorted(set(map(str, values))))
        )
    if len(done) < 2 or not distributions:
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize")
    with warnings.catch_warnings():  # add_trial and create_trial are "experimental" in 2.x
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for job in done:
            params = {
                k: as_number(job.overrides[k]) if isinstance(d, FloatDistribution) else
                str(as_number(job.overrides[k]))
                for k, d in distributions.items()
            }  # fmt: skip
            study.add_trial(optuna.trial.create_trial(
                params=params, distributions=distributions, value=job.value(metric)
            ))  # fmt: skip
    evaluator = optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=0)
    return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))


def swept_keys(jobs: list[Job]) -> list[str]:
    """Keys whose values differ between the jobs that set them."""
    keys = sorted({k for job in jobs for k in job.overrides})
    return [k for k in keys if len({j.overrides[k] for j in jobs if k in j.overrides}) > 1]


def label(job: Job, keys: list[str]) -> str:
    """`lr=0.000387,momentum=0.9`: the job's swept values, numbers to 3 significant digits."""

    def short(value: str | None) -> str:
        number = as_number(value)
        return f"{number:.3g}" if isinstance(number, float) else str(value)

    pairs = [f"{k.rsplit('.', 1)[-1]}={short(job.overrides.get(k))}" for k in keys]
    return ",".join(pairs) or job.path.name


def best(jobs: list[Job], metric: str) -> Job | None:
    """The job with the best value of `metric` (None when no job logged it)."""
    done = [j for j in jobs if j.value(metric) is not None]
    pick = min if metric in LOWER_IS_BETTER else max
    return pick(done, key=lambda j: j.value(metric)) if done else None


def smooth(values: list[float], weight: float = 0.8) -> list[float]:
    out, last = [], None
    for v in values:
        last = v if last is None else weight * last + (1 - weight) * v
        out.append(last)
    return out


def as_number(text: str | None) -> float | str | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def draw(jobs: list[Job], keys: list[str], metric: str, out: Path, history: dict | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    # the metric and the losses on top, then the jobs' last sample grids, up to 6 a row
    winner, columns = best(jobs, metric), max(4, min(6, len(jobs)))
    rows = math.ceil(len(jobs) / columns)
    figure = plt.figure(figsize=(3.2 * columns, 3.6 * (rows + 1.2)))
    grid = figure.add_gridspec(rows + 1, columns, height_ratios=[1.2] + [1] * rows)
    summary = figure.add_subplot(grid[0, : columns // 2])
    if len(keys) == 2:
        xs = sorted({j.overrides[keys[0]] for j in jobs if keys[0] in j.overrides}, key=as_number)
        ys = sorted({j.overrides[keys[1]] for j in jobs if keys[1] in j.overrides}, key=as_number)
        table = [[math.nan] * len(xs) for _ in ys]
        for job in jobs:
            value = job.value(metric)
            if keys[0] not in job.overrides or keys[1] not in job.overrides:
                continue
            x, y = xs.index(job.overrides[keys[0]]), ys.index(job.overrides[keys[1]])
            table[y][x] = math.nan if value is None else value
        image = summary.imshow(table, cmap="viridis_r" if metric in LOWER_IS_BETTER else "viridis")
        summary.set_xticks(range(len(xs)), xs)
        summary.set_yticks(range(len(ys)), ys)
        summary.set_xlabel(keys[0])
        summary.set_ylabel(keys[1])
        for y, row in enumerate(table):
            for x, value in enumerate(row):
                missing = math.isnan(value)  # a failed (or not yet logged) job: no colour
                text = "no value" if missing else f"{value:.3g}"
                colour = "black" if missing else "white"
                summary.text(x, y, text, ha="center", va="center", color=colour)
        if winner is not None:  # the best cell framed and labelled
            x, y = xs.index(winner.overrides[keys[0]]), ys.index(winner.overrides[keys[1]])
            frame = plt.Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, color="red", lw=3)
            summary.add_patch(frame)
            summary.text(x, y + 0.3, "best", ha="center", va="center", color="red")
        figure.colorbar(image, ax=summary, label=metric)
    elif len(keys) == 1:
        done = sorted((j for j in jobs if j.value(metric) is not None and keys[0] in j.overrides),
                      key=lambda j: as_number(j.overrides[keys[0]]))  # fmt: skip
        summary.plot([as_number(j.overrides[keys[0]]) for j in done],
                     [j.value(metric) for j in done], marker="o")  # fmt: skip
        if winner is not None and keys[0] in winner.overrides:
            summary.plot([as_number(winner.overrides[keys[0]])], [winner.value(metric)], "*",
                         color="red", markersize=16, label="best")  # fmt: skip
            summary.legend(fontsize=9, loc="best")
        summary.set_xlabel(keys[0])
        summary.set_ylabel(metric)
    else:
        summary.axis("off")
        lines = [f"{'best ' if j is winner else ''}{label(j, keys)}: {j.value(metric)} "
                 f"({j.status})" for j in jobs]  # fmt: skip
        summary.text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=8)
    summary.set_title(f"best {metric} per job")
    if history is not None:  # an Optuna search: the trials in order, the best so far
        summary.clear()
        trials = range(len(history["values"]))
        summary.plot(trials, [math.nan if v is None else v for v in history["values"]], "o",
                     label="trial")  # fmt: skip
        summary.plot(trials, [math.nan if v is None else v for v in history["best_so_far"]], "-",
                     label="best so far")  # fmt: skip
        summary.set_xlabel("trial")
        summary.set_ylabel(metric)
        summary.legend(fontsize=9, loc="best")
        title = "optimization history"
        if history.get("importances"):
            ranked = ", ".join(
                f"{k.rsplit('.', 1)[-1]} {v:.2f}" for k, v in history["importances"].items()
            )
            title += f"\nimportance: {ranked}"
        summary.set_title(title, fontsize=8)
    curves = figure.add_subplot(grid[0, columns // 2 :])
    colours = plt.get_cmap("tab10" if len(jobs) <= 10 else "tab20").colors
    for job, colour in zip(jobs, colours * (len(jobs) // len(colours) + 1), strict=False):
        for name, style in (("train/loss_d", "-"), ("train/loss_g", "--")):  # a job: one colour
            values = job.series(name)
            if values:
                curves.plot(job.epochs(name), smooth(values), style, color=colour,
                            label=label(job, keys) if name == "train/loss_d" else None)  # fmt: skip
    curves.set_xlabel("epoch")
    curves.set_title("smoothed losses (solid: D, dashed: G; a colour per job)")
    if curves.lines:  # jobs that logged nothing (failed at start) draw no curve
        curves.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    for i, job in enumerate(jobs):
        axis = figure.add_subplot(grid[1 + i // columns, i % columns])
        axis.axis("off")
        value = job.value(metric)
        score = "" if value is None else f", {metric} {value:.3g}"
        mark = "best: " if job is winner else ""
        axis.set_title(f"{mark}{label(job, keys)}\n{job.status[:40]}{score}", fontsize=8,
                       color="red" if job is winner else "black")  # fmt: skip
        if job.grid() is not None:
            try:
                axis.imshow(Image.open(job.grid()), cmap="gray")
            except OSError:  # a damaged PNG: the job's title says the rest
                axis.text(0.5, 0.5, "unreadable sample grid", ha="center", fontsize=7)
    figure.tight_layout()
    atomic_write(out, lambda file: figure.savefig(file, format="png", dpi=80))
    plt.close(figure)


def write_html(
    jobs: list[Job], keys: list[str], metric: str, sweep_dir: Path, history: dict | None
) -> None:
    rows, winner = [], best(jobs, metric)
    for job in jobs:
        grid = job.grid()
        image = f'<img src="{inline(grid)}" width="160">' if grid else ""
        value = job.value(metric)
        swept = [html.escape(str(job.overrides.get(k))) for k in keys]
        score = "" if value is None else f"{value:.4g}" + (" (best)" if job is winner else "")
        cells = [html.escape(job.path.name), *swept, html.escape(job.status), score, image]
        style = " style='background:#fdd'" if job is winner else ""
        rows.append(f"<tr{style}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(
        f"<th>{html.escape(h)}</th>" for h in ["job", *keys, "status", metric, "samples"]
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(sweep_dir.name)}"
        f"</title></head><body><h1>Sweep {html.escape(sweep_dir.name)}</h1>"
        f"<p>{len(jobs)} jobs; {metric}: best value over each run.</p>"
        + (
            ""
            if history is None
            else f"<p>Optuna: best {metric} {history['best_value']} with "
            f"{html.escape(str(history['best_params']))}</p>"
            + (
                "<p>Parameter importances (Optuna, mean decrease in impurity): "
                + ", ".join(f"{html.escape(k)} {v:.3f}" for k, v in history["importances"].items())
                + "</p>"
                if history.get("importances")
                else ""
            )
        )
        + f"<img src='{inline(sweep_dir / 'report.png')}'>"
        + f"<table border='1'><tr>{head}</tr>{''.join(rows)}</table>"
        "</body></html>"
    )
    atomic_write(sweep_dir / "report.html", lambda file: file.write(page.encode()))


def inline(image: Path) -> str:
    """An image as a data URI: the page shows it wherever it is opened or copied to."""
    try:
        return "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode()
    except OSError:  # unreadable: the browser shows its alt text
        return ""


def report(sweep_dir: Path, metric: str | None = None) -> Path:
    if not sweep_dir.is_dir():
        raise ConfigError("sweep_dir", str(sweep_dir), "no such directory")
    jobs = load_jobs(sweep_dir)
    logged = {k for job in jobs for row in job.rows for k, v in row.items() if v}
    metric = metric or ("val/fid" if "val/fid" in logged else "train/loss_g")
    if metric not in logged and any(job.rows for job in jobs):
        raise ConfigError("--metric", metric, f"not logged; logged: {', '.join(sorted(logged))}")
    keys = swept_keys(jobs)
    history = optuna_history(jobs, metric, sweep_dir)
    draw(jobs, keys, metric, sweep_dir / "report.png", history)
    write_html(jobs, keys, metric, sweep_dir, history)
    return sweep_dir / "report.html"


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m src.report", description=__doc__)
    parser.add_argument("sweep_dir", type=Path, help="a multirun directory (one dir per job)")
    parser.add_argument(
        "--metric", default=None, help="default: val/fid if logged, else train/loss_g"
    )
    args = parser.parse_args(argv)
    print(f"Report: {report(args.sweep_dir, args.metric)}")


if __name__ == "__main__":
    main()
