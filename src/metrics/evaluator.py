"""Sample quality of a generator against its dataset, with the domain feature extractor."""

import logging
import os
from pathlib import Path

import torch

from src.data.base import ImageDataModule, to_float
from src.metrics.domain import DomainModel, load_or_train
from src.metrics.inception import InceptionFeatures, find_weights
from src.metrics.quality import (
    class_metrics,
    frechet_distance,
    kernel_inception_distance,
    precision_recall_density_coverage,
)

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "convgan"


class Evaluator:
    """Holds the domain model and the real images' features (computed once).

    `evaluate(fake)` returns fid_domain, kid_domain, precision, recall, density, coverage and,
    when the dataset has labels, class_coverage, domain_confident and is_domain.
    """

    def __init__(
        self,
        datamodule: ImageDataModule,
        num_real: int = 1000,
        epochs: int = 15,
        cache_dir: str | Path | None = None,
        inception_weights: str | None = None,
        use_inception: bool = False,
    ):
        datamodule.setup("fit")
        if datamodule.images is not None:  # resident: every image, with labels if any
            everything, labels = to_float(datamodule.images.cpu()), datamodule.labels()
        else:  # streaming data: a subset is enough to train and to compare
            everything, labels = datamodule.sample_images(20_000), None
        fingerprint = f"{type(datamodule).__name__}|{datamodule.fingerprint()}"
        self.model: DomainModel = load_or_train(
            everything, labels, fingerprint, Path(cache_dir or default_cache_dir()), epochs
        )
        order = torch.randperm(len(everything), generator=torch.Generator().manual_seed(0))
        self.real = everything[order[:num_real]]
        self.held_out = everything[order[num_real:]]  # real images outside the reference
        self.real_features, _ = self.features(self.real)
        # Inception-V3 only where asked for (src.evaluate): ~1 s per 10 images on a CPU.
        weights = find_weights(inception_weights) if use_inception else None
        self.inception = InceptionFeatures(weights) if weights else None
        self.real_inception = self.inception(self.real) if self.inception else None

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(float64 features, class probabilities) of float images in [-1, 1]."""
        net = self.model.net
        feats, probs = [], []
        for batch in images.cpu().float().split(500):
            f = net.features(batch)
            feats.append(f.double())
            probs.append(net.head(f).softmax(1))
        return torch.cat(feats), torch.cat(probs)

    def floor(self) -> dict[str, float] | None:
        """The same metrics for real images outside the reference set: the best a generator
        can expect at this sample size (None when every image is in the reference)."""
        return self.evaluate(self.held_out) if len(self.held_out) >= 2 * 5 else None

    def evaluate(self, fake: torch.Tensor) -> dict[str, float]:
        metrics = self.evaluate_features(*self.features(fake))
        if self.inception is not None:
            fake_inception = self.inception(fake)
            metrics["fid_inception"] = frechet_distance(self.real_inception, fake_inception)
            metrics["kid_inception"] = kernel_inception_distance(
                self.real_inception, fake_inception
            )
        return metrics

    def evaluate_features(
        self, fake_features: torch.Tensor, probs: torch.Tensor
    ) -> dict[str, float]:
        """The domain metrics from already extracted features and class probabilities (as
        `features` returns them; e.g. gathered from several processes)."""
        metrics = {
            "fid_domain": frechet_distance(self.real_features, fake_features),
            "kid_domain": kernel_inception_distance(self.real_features, fake_features),
            **precision_recall_density_coverage(self.real_features, fake_features),
        }
        if self.model.labelled:
            metrics.update(class_metrics(probs))
        return metrics
