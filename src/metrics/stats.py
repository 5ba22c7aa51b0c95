"""Reference statistics (`src.evaluate save_stats=PATH`, `ref_stats=PATH`): the real set's
feature mean and covariance in pytorch-fid's `.npz` layout (`mu`, `sigma`), so a file made by
another tool is read here and ours there, plus what they were computed on (`provenance`, a
JSON string: dataset, split, resolution, count, extractor and its weights' hash, versions)
and the reference features themselves (`features`: KID, precision/recall, density/coverage
need them; a file without them gives FID only). Read as data (`allow_pickle=False`)."""

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from src.errors import ConfigError
from src.utils.checkpoint import atomic_write


def weights_hash(net: nn.Module) -> str:
    """SHA-256 of a network's weights (its state_dict's names and bytes, in order)."""
    digest = hashlib.sha256()
    for name, tensor in net.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def reference_of(fid: FrechetInceptionDistance) -> tuple[np.ndarray, np.ndarray, int]:
    """(mu, sigma, n) of the real features a torchmetrics FID has accumulated (its formula)."""
    n = int(fid.real_features_num_samples)
    mean = (fid.real_features_sum / n).unsqueeze(0)
    sigma = (fid.real_features_cov_sum - n * mean.t().mm(mean)) / (n - 1)
    return mean[0].cpu().numpy(), sigma.cpu().numpy(), n


def set_reference(fid: FrechetInceptionDistance, mu: np.ndarray, sigma: np.ndarray, n: int) -> None:
    """The FID's real-side state as if `n` images of mean `mu`, covariance `sigma` were seen."""
    dtype, device = fid.real_features_sum.dtype, fid.real_features_sum.device
    mean = torch.as_tensor(mu, dtype=dtype, device=device)
    fid.real_features_sum = mean * n
    fid.real_features_cov_sum = torch.as_tensor(sigma, dtype=dtype, device=device) * (
        n - 1
    ) + n * torch.outer(mean, mean)
    fid.real_features_num_samples = torch.tensor(n, device=device)


def save(
    path: Path, fid: FrechetInceptionDistance, features: torch.Tensor | None,
    provenance: dict[str, Any],
) -> None:  # fmt: skip
    mu, sigma, n = reference_of(fid)
    arrays = {"mu": mu, "sigma": sigma, "n": np.array(n),
              "provenance": np.array(json.dumps(provenance))}  # fmt: skip
    if features is not None:
        arrays["features"] = features.cpu().numpy()
    atomic_write(path, lambda file: np.savez(file, **arrays))


def load(path: Path, extractor: str, dim: int) -> dict[str, Any]:
    """mu, sigma, n, features (or None) and provenance (or None: a file made elsewhere) of
    `path`, refused in one line when it is not statistics of `extractor` (`dim` features)."""
    try:
        with np.load(path, allow_pickle=False) as file:
            arrays = {key: file[key] for key in file.files}
    except FileNotFoundError:
        raise ConfigError("ref_stats", str(path), "no such file") from None
    except (OSError, ValueError) as error:
        reason = " ".join(str(error).split())[:120]
        raise ConfigError(
            "ref_stats", str(path), f"not a .npz of mu and sigma ({reason})"
        ) from None
    mu, sigma = arrays.get("mu"), arrays.get("sigma")
    if mu is None or sigma is None:
        raise ConfigError("ref_stats", str(path), f"has no mu and sigma (keys: {sorted(arrays)})")
    provenance = json.loads(str(arrays["provenance"])) if "provenance" in arrays else None
    theirs = (provenance or {}).get("extractor", {}).get("name")
    if theirs is not None and theirs != extractor:
        raise ConfigError("ref_stats", str(path), f"statistics of {theirs}; this evaluation's "
                          f"extractor is {extractor}")  # fmt: skip
    if mu.shape != (dim,) or sigma.shape != (dim, dim):
        raise ConfigError(
            "ref_stats", str(path), f"mu {mu.shape} and sigma {sigma.shape}: {extractor} has "
            f"{dim} features (pytorch-fid's Inception files: 2048, with inception_weights=)",
        )  # fmt: skip
    features = torch.from_numpy(arrays["features"]) if "features" in arrays else None
    n = int(arrays["n"]) if "n" in arrays else (len(features) if features is not None else 2)
    return {"mu": mu.astype(np.float64), "sigma": sigma.astype(np.float64), "n": n,
            "features": features, "provenance": provenance}  # fmt: skip
