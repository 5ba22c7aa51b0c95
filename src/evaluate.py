"""Sample quality of a checkpoint: `python -m src.evaluate ckpt_path=... [n=1000] [out=...]`.

Generates `n` images, compares them with the run's dataset through the domain feature
extractor (src/metrics/domain.py) and prints fid, kid (domain features), precision, recall,
density, coverage and, for labelled data, class_coverage, domain_confident and is_domain,
next to the real-vs-real floor; for a conditional model also class_accuracy, intra_fid and
the per-class fid / precision / recall. Writes them as JSON to `out` (default:
`<checkpoint>.metrics.json`).
"""

import json
from pathlib import Path

import hydra
import torch
import torchmetrics
from omegaconf import DictConfig

from src.cli import entry, one_line_errors
from src.config import EvaluateConfig, check_keys
from src.errors import ConfigError, integer
from src.generate import generate
from src.metrics.evaluator import Evaluator
from src.metrics.inception import find_weights
from src.metrics.over_time import score_run
from src.models.loading import load_generator, stored_data
from src.utils.checkpoint import atomic_write
from src.utils.outputs import shown, stopped_by_signals, writable_dir, writing


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate.yaml")
@one_line_errors
def main(cfg: DictConfig) -> dict:
    check_keys(cfg, EvaluateConfig)
    integer("n", cfg.n, 10, 1_000_000)
    integer("num_real", cfg.num_real, 10, 10_000_000)
    integer("seed", cfg.seed, 0, 2**63 - 1)
    integer("domain_epochs", cfg.domain_epochs, 1, 1000)
    if cfg.run_dir:  # the metrics over a run, one row per snapshot
        if cfg.ckpt_path:
            raise ConfigError("ckpt_path", cfg.ckpt_path, "give ckpt_path or run_dir, not both")
        with stopped_by_signals("the rows scored so far are in metrics_over_time.csv"):
            rows = score_run(cfg)
        print(f"{len(rows)} snapshot(s) in {shown(Path(cfg.run_dir) / 'metrics_over_time.csv')}")
        return {"rows": rows}
    if not cfg.ckpt_path:
        raise ConfigError("ckpt_path", None, "a checkpoint to evaluate (or run_dir=<run>)")
    out = Path(cfg.out).expanduser() if cfg.out else Path(f"{cfg.ckpt_path}.metrics.json")
    writable_dir("out", out.parent)  # before minutes of work, not after
    if out.is_dir():
        raise ConfigError("out", str(out), "is a directory; give the JSON file's path")
    if cfg.ref_stats and not Path(cfg.ref_stats).expanduser().is_file():
        raise ConfigError("ref_stats", cfg.ref_stats, "no such file")
    if cfg.save_stats:
        writable_dir("save_stats", Path(cfg.save_stats).expanduser().parent)
    with writing("out"), stopped_by_signals(f"nothing was written to {out}"):
        report = evaluate(cfg, out)
    metrics, floor = report["metrics"], report["real_vs_real"] or {}
    for name, value in metrics.items():
        if "_class_" not in name:
            reference = f"   (real vs real {floor[name]:.4f})" if name in floor else ""
            print(f"{name:16s} {value:10.4f}{reference}")
    if per_class := sorted({int(n.rsplit("_", 1)[1]) for n in metrics if "_class_" in n}):
        print("class      fid  precision  recall   (real vs real: fid, precision, recall)")
        for c in per_class:
            ours = [metrics[f"{m}_class_{c}"] for m in ("fid", "precision", "recall")]
            real = [
                floor.get(f"{m}_class_{c}", float("nan")) for m in ("fid", "precision", "recall")
            ]
            print(f"{c:5d} {ours[0]:12.2f} {ours[1]:10.3f} {ours[2]:7.3f}   "
                  f"({real[0]:.2f}, {real[1]:.3f}, {real[2]:.3f})")  # fmt: skip
    print(f"written to {out}")
    return report


def evaluate(cfg: DictConfig, out: Path) -> dict:
    """The metrics of the checkpoint's samples beside the real-vs-real floor, written to `out`."""
    inception = find_weights(cfg.inception_weights, cfg.inception_unverified)
    generator, config = load_generator(str(Path(cfg.ckpt_path).expanduser()), trust=cfg.trust)
    data = stored_data(config, cfg.trust, cfg.data_root, cfg.cache_dir)
    classes = data.class_names() if generator.num_classes else None
    if classes is not None and len(classes) != generator.num_classes:
        raise ConfigError(
            "data_root", data.hparams.root, f"{len(classes)} classes there; the checkpoint's "
            f"model makes {generator.num_classes} ({', '.join(generator.class_names or [])})",
        )  # fmt: skip
    protocol = paper_protocol(cfg.protocol, config, inception)
    n, num_real = (protocol["samples"], protocol["num_real"]) if protocol else (cfg.n, cfg.num_real)
    ref_stats = Path(cfg.ref_stats).expanduser() if cfg.ref_stats else None
    evaluator = Evaluator(
        data, num_real=num_real, epochs=cfg.domain_epochs, cache=cfg.cache_dir,
        inception=inception, ref_stats=ref_stats,
    )  # fmt: skip
    if cfg.save_stats:
        with writing("save_stats"):
            evaluator.save_stats(Path(cfg.save_stats).expanduser(), num_real)
    # a conditional model: every class equally often, scored against the class asked for
    labels = torch.arange(n) % generator.num_classes if generator.num_classes else None
    metrics = evaluator.evaluate(generate(generator, n, cfg.seed, labels), labels)
    report = {
        "checkpoint": str(cfg.ckpt_path),
        "n": n,
        "protocol": protocol,
        "metrics": metrics,
        "real_vs_real": evaluator.floor(n),
        "domain_model_test_accuracy": evaluator.model.test_accuracy,
        "note": "domain-CNN features, not Inception: not comparable with published FIDs",
        "inception_weights": inception.provenance() if inception else None,
        "extractor": evaluator.extractor,
        "reference": {"stats": str(ref_stats), "provenance": evaluator.reference["provenance"]}
        if evaluator.reference
        else {"images": num_real},
        "versions": {"torch": torch.__version__, "torchmetrics": torchmetrics.__version__},
    }
    text = json.dumps(report, indent=2) + "\n"
    atomic_write(out, lambda file: file.write(text.encode()))
    return report


def paper_protocol(asked: str | None, config: dict, inception: object) -> dict | None:
    """protocol=paper: the checkpoint preset's own measurement (its `protocol` node: samples,
    reference images, extractor, resize, the published FID); null: this command's n/num_real."""
    if asked is None:
        return None
    if asked != "paper":
        raise ConfigError("protocol", asked, "allowed: paper, null")
    protocol = config.get("protocol")
    if not isinstance(protocol, dict):
        raise ConfigError("protocol", asked, "the checkpoint's run names no protocol (the "
                          "presets that cite a published FID do: conf/experiment/)")  # fmt: skip
    if inception is None:
        raise ConfigError(
            "inception_weights", None, f"protocol=paper measures Inception-V3 FID as "
            f"{protocol.get('source')} did: give torch-fidelity's FID weights",
        )  # fmt: skip
    integer("protocol.samples", protocol.get("samples"), 10, 1_000_000)
    integer("protocol.num_real", protocol.get("num_real"), 10, 10_000_000)
    return protocol


if __name__ == "__main__":
    entry(main)
