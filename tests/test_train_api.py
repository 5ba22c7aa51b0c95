"""`src.train.main` returns the sweep objective (what Hydra sweepers minimise)."""

from pathlib import Path

import pytest

from src.errors import ConfigError
from src.train import compose_config, metric_value, train
from tests.conftest import TINY


def compose_train(tmp_path: Path, *overrides: str):
    return compose_config(["debug=fast", "logger=none", *TINY, *overrides], str(tmp_path))


def test_train_returns_the_optimized_metric(tmp_path):
    cfg = compose_train(tmp_path, "optimized_metric=train/loss_d")
    metrics = train(cfg)
    value = metric_value(metrics, cfg.optimized_metric)
    assert isinstance(value, float) and 0 < value < 10
    assert metric_value(metrics, None) is None
    with pytest.raises(ConfigError, match="optimized_metric='val/fid': not logged"):
        metric_value(metrics, "val/fid")
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
