"""The standard FID backend: Inception-V3 (torch-fidelity's FID weights) when they are on disk.

Nothing is downloaded: the weights come from `inception_weights=PATH` or torch hub's cache
(`<torch hub dir>/checkpoints/weights-inception-2015-12-05-6726825d.pth`, where torch-fidelity
and torchmetrics put them). Images go in as uint8 RGB (grey repeated) and are resized to
299x299 without antialiasing, so the numbers are comparable with published FIDs.
"""

import logging
from pathlib import Path

import torch

from src.errors import ConfigError
from src.metrics.quality import Featurizer

log = logging.getLogger(__name__)
WEIGHTS_NAME = "weights-inception-2015-12-05-6726825d.pth"


def find_weights(configured: str | None, key: str = "inception_weights") -> Path | None:
    """The weights file to use, or None (with one log line) when there is none."""
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise ConfigError(
                key, configured, "no such file (torch-fidelity's FID Inception weights)"
            )
        return path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_NAME
    if cached.is_file():
        return cached
    log.info(
        "Inception FID skipped: no %s in %s and no inception_weights=PATH (nothing is "
        "downloaded); the domain metrics are reported", WEIGHTS_NAME, cached.parent,
    )  # fmt: skip
    return None


class InceptionFeatures(Featurizer):
    """2048-d pool features of Inception-V3 (FID variant) for images in [-1, 1]."""

    def __init__(self, weights: Path):
        from torchmetrics.image.fid import NoTrainInceptionV3

        super().__init__(2048)
        self.net = NoTrainInceptionV3(
            name="inception-v3-compat", features_list=["2048"],
            feature_extractor_weights_path=str(weights), antialias=False,
        )  # fmt: skip

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        out = []
        for chunk in images.split(100):
            uint8 = ((chunk.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
            if uint8.shape[1] == 1:
                uint8 = uint8.expand(-1, 3, -1, -1)
            out.append(self.net(uint8))
        return torch.cat(out)
