"""FID, KID, precision/recall and density/coverage on features; class metrics on predictions.

FID and KID go through torchmetrics (float64 statistics) fed with features computed once
(a pass-through "extractor"), so the same code serves the domain CNN and Inception-V3.
Precision/recall: Kynkaanniemi et al. 2019; density/coverage: Naeem et al. 2020; both with
k = 5 nearest neighbours (Naeem et al.'s recommendation), Euclidean in feature space.

The inputs are complete feature sets (under data parallelism, already gathered from every
rank), so torchmetrics must not sum its states over processes again: `sync_on_compute=False`
(with it, each rank's copy of the features would count once per process).
"""

import warnings

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

K_NEAREST = 5


class PassThrough(nn.Module):
    """Hands torchmetrics features that were already extracted."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features.double()


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID between two (N, d) feature sets: |mu_r - mu_f|^2 + Tr(S_r + S_f - 2 (S_r S_f)^1/2)."""
    fid = FrechetInceptionDistance(feature=PassThrough(real.shape[1]), sync_on_compute=False)
    fid.update(real, real=True)
    fid.update(fake, real=False)
    return float(fid.compute())


def kernel_inception_distance(
    real: torch.Tensor, fake: torch.Tensor, subsets: int = 10, subset_size: int = 1000
) -> float:
    """KID (Binkowski et al. 2018): unbiased MMD^2 with a cubic polynomial kernel, averaged
    over random subsets (seeded, so repeated evaluations agree)."""
    size = min(subset_size, len(real), len(fake))
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():  # training RNG untouched
        torch.manual_seed(0)
        warnings.simplefilter("ignore")  # "will save all extracted features": intended
        kid = KernelInceptionDistance(
            feature=PassThrough(real.shape[1]), subsets=subsets, subset_size=size,
            sync_on_compute=False,
        )  # fmt: skip
        kid.update(real, real=True)
        kid.update(fake, real=False)
        mean, _ = kid.compute()
    return float(mean)


def kth_neighbour_radii(features: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest neighbour in the same set (self excluded)."""
    distances = torch.cdist(features, features)
    return distances.kthvalue(k + 1, dim=1).values  # k + 1: the point itself is at distance 0


def precision_recall_density_coverage(
    real: torch.Tensor, fake: torch.Tensor, k: int = K_NEAREST
) -> dict[str, float]:
    """Fidelity (precision, density) and diversity (recall, coverage) of `fake` vs `real`."""
    real, fake = real.double(), fake.double()
    real_radii, fake_radii = kth_neighbour_radii(real, k), kth_neighbour_radii(fake, k)
    distances = torch.cdist(fake, real)  # (fake, real)
    inside_real = distances <= real_radii.unsqueeze(0)
    inside_fake = distances <= fake_radii.unsqueeze(1)
    return {
        "precision": inside_real.any(dim=1).double().mean().item(),
        "recall": inside_fake.any(dim=0).double().mean().item(),
        "density": (inside_real.double().sum() / (k * len(fake))).item(),
        "coverage": (distances.min(dim=0).values <= real_radii).double().mean().item(),
    }


def class_metrics(probs: torch.Tensor) -> dict[str, float]:
    """From a classifier's predictions on generated images: class coverage (share of classes
    that get at least half their uniform share of samples), domain_confident (the share
    with max probability >= 0.9) and the Inception-Score analogue exp(E_x KL(p(y|x) || p(y)))."""
    num_classes = probs.shape[1]
    shares = torch.bincount(probs.argmax(1), minlength=num_classes).double() / len(probs)
    marginal = probs.mean(0, keepdim=True)
    kl = (probs * (probs.clamp_min(1e-12).log() - marginal.clamp_min(1e-12).log())).sum(1)
    return {
        "class_coverage": (shares >= 0.5 / num_classes).double().mean().item(),
        "domain_confident": (probs.max(1).values >= 0.9).double().mean().item(),
        "is_domain": kl.mean().exp().item(),
    }
