"""Sample-quality metrics as torchmetrics `Metric`s that featurise images and synchronise
themselves under DDP: FID and KID (torchmetrics, with a feature extractor as `feature=`),
precision/recall (Kynkaanniemi et al. 2019) with density/coverage (Naeem et al. 2020), both
with k = 5 nearest neighbours, and class metrics from the extractor's classifier. Real-image
states survive `reset()`, so the reference set is featurised once.
"""

import warnings
import weakref
from typing import Any

import torch
from torch import nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance
from torchmetrics.utilities import dim_zero_cat

K_NEAREST = 5


class Featurizer(nn.Module):
    """A frozen extractor as torchmetrics' `feature=`: float64 features of images in [-1, 1].

    The last input's features are kept (by tensor identity and version), so the metrics of a
    collection updated with one batch share one forward pass.
    """

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features
        self._last: tuple[Any, int, torch.Tensor] | None = None

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        last = self._last
        if last is None or last[0]() is not images or last[1] != images._version:
            with torch.autocast(images.device.type, enabled=False):  # full precision always
                features = self.extract(images.float()).double()
            self._last = (weakref.ref(images), images._version, features)
        return self._last[2]

    def train(self, mode: bool = True) -> "Featurizer":
        return super().train(False)  # a fixed extractor: BatchNorm in inference mode always


class PassThrough(Featurizer):
    """Features that were already extracted."""

    def extract(self, features: torch.Tensor) -> torch.Tensor:
        return features


class KID(KernelInceptionDistance):
    """KID's mean over seeded random subsets (repeated evaluations agree) of at most
    `max_subset_size` samples, and no more than there are."""

    def __init__(
        self, feature: nn.Module, subsets: int = 10, max_subset_size: int = 1000, **kw: Any
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "will save all extracted features": intended
            super().__init__(feature=feature, subsets=subsets, **kw)
        self.max_subset_size = max_subset_size

    def compute(self) -> torch.Tensor:
        counts = (len(dim_zero_cat(s)) for s in (self.real_features, self.fake_features))
        self.subset_size = min(self.max_subset_size, *counts)
        with torch.random.fork_rng(devices=[]):  # the training RNG is left untouched
            torch.manual_seed(0)
            mean, _ = super().compute()
        return mean


class Features(Metric):
    """Keeps the features of real (across resets) and generated images; subclasses compute."""

    full_state_update = False

    def __init__(self, feature: nn.Module, **kwargs: Any):
        super().__init__(**kwargs)
        self.feature = feature
        self.add_state("real_features", [], dist_reduce_fx="cat")
        self.add_state("fake_features", [], dist_reduce_fx="cat")

    def update(self, imgs: torch.Tensor, real: bool) -> None:
        (self.real_features if real else self.fake_features).append(self.feature(imgs))

    def reset(self) -> None:
        real = list(self.real_features)  # Metric.reset clears list states in place
        super().reset()
        self.real_features = real


class PrecisionRecall(Features):
    """Fidelity (precision, density) and diversity (recall, coverage) in feature space."""

    def compute(self) -> dict[str, torch.Tensor]:
        real, fake = dim_zero_cat(self.real_features), dim_zero_cat(self.fake_features)
        return precision_recall_density_coverage(real, fake)


class ClassShares(Metric):
    """Of generated images, by the extractor's classifier (`feature.classify`): class coverage
    (share of classes with at least half their uniform share), domain_confident (share with a
    top probability >= 0.9) and is_domain, the Inception-Score analogue."""

    full_state_update = False

    def __init__(self, feature: nn.Module, **kwargs: Any):
        super().__init__(**kwargs)
        self.feature = feature
        self.add_state("probs", [], dist_reduce_fx="cat")

    def update(self, imgs: torch.Tensor, real: bool) -> None:
        if not real:
            self.probs.append(self.feature.classify(imgs))

    def compute(self) -> dict[str, torch.Tensor]:
        return class_metrics(dim_zero_cat(self.probs))


class ClassConditional(Features):
    """A conditional G against the class it was asked for: class_accuracy, intra-class FID,
    precision and recall (their means, and per class as `fid_class_3`, ...), over classes with
    at least 2 k samples on both sides."""

    def __init__(self, feature: nn.Module, **kwargs: Any):
        super().__init__(feature, **kwargs)
        self.add_state("real_labels", [], dist_reduce_fx="cat")
        self.add_state("fake_labels", [], dist_reduce_fx="cat")
        self.add_state("probs", [], dist_reduce_fx="cat")

    def update(self, imgs: torch.Tensor, real: bool, labels: torch.Tensor | None = None) -> None:
        if labels is None:  # samples not asked for a class: nothing to score here
            return
        super().update(imgs, real)
        (self.real_labels if real else self.fake_labels).append(labels)
        if not real:
            self.probs.append(self.feature.classify(imgs))

    def reset(self) -> None:
        labels = list(self.real_labels)
        super().reset()
        self.real_labels = labels

    def compute(self) -> dict[str, torch.Tensor]:
        if not len(self.fake_labels):
            return {}
        real, fake = dim_zero_cat(self.real_features).cpu(), dim_zero_cat(self.fake_features).cpu()
        real_labels = dim_zero_cat(self.real_labels).cpu()
        labels, probs = dim_zero_cat(self.fake_labels).cpu(), dim_zero_cat(self.probs).cpu()
        metrics = {"class_accuracy": (probs.argmax(1) == labels).double().mean()}
        per_class: dict[str, list[float]] = {"fid": [], "precision": [], "recall": []}
        for c in range(probs.shape[1]):
            real_c, fake_c = real[real_labels == c], fake[labels == c]
            if min(len(real_c), len(fake_c)) < 2 * K_NEAREST:
                continue
            values = {"fid": frechet_distance(real_c, fake_c)}
            values |= precision_recall_density_coverage(real_c, fake_c)
            for name, series in per_class.items():
                series.append(float(values[name]))
                metrics[f"{name}_class_{c}"] = torch.tensor(float(values[name]))
        for name, series in per_class.items():
            if series:
                metrics[f"intra_{name}"] = torch.tensor(sum(series) / len(series))
        return metrics


class ModeCoverage(Metric):
    """Of generated images with known modes (stacked digits, `feature.classify` giving the
    joint class of their channels): `modes`, how many of the `feature`'s classes appear, and
    `mode_kl`, the KL divergence of their distribution from the uniform one."""

    full_state_update = False

    def __init__(self, feature: nn.Module, possible: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.feature, self.possible = feature, possible
        self.add_state("modes", [], dist_reduce_fx="cat")

    def update(self, imgs: torch.Tensor, real: bool) -> None:
        if not real:
            self.modes.append(self.feature.classify(imgs).argmax(1))

    def compute(self) -> dict[str, torch.Tensor]:
        counts = torch.bincount(dim_zero_cat(self.modes), minlength=self.possible).double()
        shares = counts[counts > 0] / counts.sum()
        kl = (shares * (shares * self.possible).log()).sum()
        return {"modes": (counts > 0).sum().double(), "mode_kl": kl}


def quality_metrics(feature: nn.Module, classes: bool, conditional: bool) -> MetricCollection:
    """The metrics of images on `feature` (a Featurizer with `classify` when `classes`): each
    value is logged under its own name (`val/fid`, `val/recall`, ...)."""
    metrics: dict[str, Metric] = {
        "fid": FrechetInceptionDistance(feature=feature, reset_real_features=False),
        "kid": KID(feature, reset_real_features=False),
        "prdc": PrecisionRecall(feature),
    }
    if classes:
        metrics["classes"] = ClassShares(feature)
        if conditional:
            metrics["conditional"] = ClassConditional(feature)
    return MetricCollection(metrics, compute_groups=False)


def flatten(values: dict[str, Any]) -> dict[str, float]:
    """A MetricCollection's results as one flat dict of floats (dict results merged in)."""
    flat: dict[str, float] = {}
    for name, value in values.items():
        if isinstance(value, dict):
            flat |= {k: float(v) for k, v in value.items()}
        else:
            flat[name] = float(value)
    return flat


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID between two (N, d) feature sets: |mu_r - mu_f|^2 + Tr(S_r + S_f - 2 (S_r S_f)^1/2)."""
    fid = FrechetInceptionDistance(feature=PassThrough(real.shape[1]), sync_on_compute=False)
    fid.update(real, real=True)
    fid.update(fake, real=False)
    return float(fid.compute())


def kernel_inception_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """KID (Binkowski et al. 2018) between two feature sets, as `KID` computes it."""
    kid = KID(PassThrough(real.shape[1]), sync_on_compute=False)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    return float(kid.compute())


def kth_neighbour_radii(features: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest neighbour in the same set (self excluded)."""
    distances = torch.cdist(features, features)
    return distances.kthvalue(k + 1, dim=1).values  # k + 1: the point itself is at distance 0


def precision_recall_density_coverage(
    real: torch.Tensor, fake: torch.Tensor, k: int = K_NEAREST
) -> dict[str, torch.Tensor]:
    """Fidelity (precision, density) and diversity (recall, coverage) of `fake` vs `real`."""
    real, fake = real.double(), fake.double()
    real_radii, fake_radii = kth_neighbour_radii(real, k), kth_neighbour_radii(fake, k)
    distances = torch.cdist(fake, real)  # (fake, real)
    inside_real = distances <= real_radii.unsqueeze(0)
    inside_fake = distances <= fake_radii.unsqueeze(1)
    return {
        "precision": inside_real.any(dim=1).double().mean(),
        "recall": inside_fake.any(dim=0).double().mean(),
        "density": inside_real.double().sum() / (k * len(fake)),
        "coverage": (distances.min(dim=0).values <= real_radii).double().mean(),
    }


def class_metrics(probs: torch.Tensor) -> dict[str, torch.Tensor]:
    num_classes = probs.shape[1]
    shares = torch.bincount(probs.argmax(1), minlength=num_classes).double() / len(probs)
    marginal = probs.mean(0, keepdim=True)
    kl = (probs * (probs.clamp_min(1e-12).log() - marginal.clamp_min(1e-12).log())).sum(1)
    return {
        "class_coverage": (shares >= 0.5 / num_classes).double().mean(),
        "domain_confident": (probs.max(1).values >= 0.9).double().mean(),
        "is_domain": kl.mean().exp(),
    }
