"""Sample quality of a generator against its dataset, with the domain feature extractor."""

import logging
import os
from pathlib import Path

import torch

from src.data.base import ImageDataModule, to_float
from src.metrics.domain import DomainModel, load_or_train
from src.metrics.inception import InceptionFeatures, find_weights
from src.metrics.quality import (
    K_NEAREST,
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
    `evaluate(fake, labels)` (a conditional G's samples and the classes they were asked for)
    adds class_accuracy (the share the domain classifier assigns to the asked class),
    intra_fid (the mean of per-class FIDs), intra_precision / intra_recall (means of the
    per-class values) and the per-class fid / precision / recall (`fid_class_3`, ...).
    """

    def __init__(
        self,
        datamodule: ImageDataModule,
        num_real: int = 1000,
        epochs: int = 4,
        cache_dir: str | Path | None = None,
        inception_weights: str | None = None,
        use_inception: bool = False,
    ):
        datamodule.setup("fit")
        if datamodule.images is not None:  # resident: every image, with labels if any
            everything, labels = to_float(datamodule.images.cpu()), datamodule.targets()
        else:  # streaming data: a subset is enough to train and to compare
            everything, labels = datamodule.sample_images(20_000), None
        fingerprint = f"{type(datamodule).__name__}|{datamodule.fingerprint()}"
        self.model: DomainModel = load_or_train(
            everything, labels, fingerprint, Path(cache_dir or default_cache_dir()), epochs
        )
        order = torch.randperm(len(everything), generator=torch.Generator().manual_seed(0))
        self.real = everything[order[:num_real]]
        self.held_out = everything[order[num_real:]]  # real images outside the reference
        self.real_labels = self.held_out_labels = None
        if labels is not None:
            self.real_labels = labels[order[:num_real]]
            self.held_out_labels = labels[order[num_real:]]
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
        can expect at this sample size (None when every image is in the reference); with
        labels, the class metrics of the real images under their own labels too."""
        if len(self.held_out) < 2 * 5:
            return None
        return self.evaluate(self.held_out, self.held_out_labels)

    def evaluate(self, fake: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, float]:
        metrics = self.evaluate_features(*self.features(fake), labels)
        if self.inception is not None:
            fake_inception = self.inception(fake)
            metrics["fid_inception"] = frechet_distance(self.real_inception, fake_inception)
            metrics["kid_inception"] = kernel_inception_distance(
                self.real_inception, fake_inception
            )
        return metrics

    def evaluate_features(
        self, fake_features: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor | None = None
    ) -> dict[str, float]:
        """The domain metrics from already extracted features and class probabilities (as
        `features` returns them; e.g. gathered from several processes), and the class-
        conditional ones when `labels` (the classes the samples were asked for) are given."""
        metrics = {
            "fid_domain": frechet_distance(self.real_features, fake_features),
            "kid_domain": kernel_inception_distance(self.real_features, fake_features),
            **precision_recall_density_coverage(self.real_features, fake_features),
        }
        if self.model.labelled:
            metrics.update(class_metrics(probs))
            if labels is not None and self.real_labels is not None:
                metrics.update(self.conditional_metrics(fake_features, probs, labels))
        return metrics

    def conditional_metrics(
        self, fake_features: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor
    ) -> dict[str, float]:
        """Class-conditional accuracy and per-class FID / precision / recall (classes with at
        least 2 * k samples on both sides, k the nearest-neighbour count)."""
        labels = labels.cpu()
        metrics = {"class_accuracy": (probs.argmax(1) == labels).double().mean().item()}
        per_class: dict[str, list[float]] = {"fid": [], "precision": [], "recall": []}
        for c in range(probs.shape[1]):
            real, fake = self.real_features[self.real_labels == c], fake_features[labels == c]
            if min(len(real), len(fake)) < 2 * K_NEAREST:
                continue
            values = {"fid": frechet_distance(real, fake)}
            values |= precision_recall_density_coverage(real, fake)
            for name, series in per_class.items():
                series.append(values[name])
                metrics[f"{name}_class_{c}"] = values[name]
        if per_class["fid"]:
            for name, series in per_class.items():
                metrics[f"intra_{name}"] = sum(series) / len(series)
        return metrics
