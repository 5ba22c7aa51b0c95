"""Which way the validation metrics improve, for summaries (W&B's best value, the sweep
report); without torch, so `src.report` reads it cheaply. Every metric is logged under its own
name (`val/<name>`) whether or not it is listed here."""

LOWER_IS_BETTER = ("val/fid", "val/kid", "val/intra_fid", "val/mode_kl")
HIGHER_IS_BETTER = (
    "val/precision", "val/recall", "val/density", "val/coverage", "val/class_coverage",
    "val/class_accuracy", "val/intra_precision", "val/intra_recall", "val/modes",
)  # fmt: skip
