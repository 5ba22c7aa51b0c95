"""The metric names the validation loop logs, and which of them improve downwards; without
torch, so `src.report` reads them cheaply."""

# what the validation loop logs, and under which names
LOGGED = {
    "fid_domain": "val/fid", "kid_domain": "val/kid", "precision": "val/precision",
    "recall": "val/recall", "density": "val/density", "coverage": "val/coverage",
    "class_coverage": "val/class_coverage", "class_accuracy": "val/class_accuracy",
    "intra_fid": "val/intra_fid", "intra_precision": "val/intra_precision",
    "intra_recall": "val/intra_recall", "modes": "val/modes", "mode_kl": "val/mode_kl",
}  # fmt: skip
LOWER_IS_BETTER = ("val/fid", "val/kid", "val/intra_fid", "val/mode_kl")
