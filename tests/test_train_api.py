"""`src.train.main` returns the sweep objective (what Hydra sweepers minimise)."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from src.train import metric_value, train
from src.utils.errors import ConfigError
from tests.conftest import ROOT, TINY


def compose_train(tmp_path: Path, *overrides: str):
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["debug=fast", "logger=none", *TINY, *overrides],
                      return_hydra_config=True)  # fmt: skip
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
        cfg.hydra.runtime.output_dir = str(tmp_path)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # as in a real run: the job's config has no `hydra` node
    return cfg


def test_train_returns_the_optimized_metric(tmp_path):
    cfg = compose_train(tmp_path, "optimized_metric=train/loss_d")
    metrics = train(cfg)
    value = metric_value(metrics, cfg.optimized_metric)
    assert isinstance(value, float) and 0 < value < 10
    assert metric_value(metrics, None) is None
    with pytest.raises(ConfigError, match="optimized_metric='val/fid': not logged"):
        metric_value(metrics, "val/fid")
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
