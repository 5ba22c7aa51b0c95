"""The standard FID backend: Inception-V3 (torch-fidelity's FID weights) when they are on disk.

Nothing is downloaded: the weights come from `inception_weights=PATH` or torch hub's cache
(`<torch hub dir>/checkpoints/weights-inception-2015-12-05-6726825d.pth`, where torch-fidelity
and torchmetrics put them). The file is data: its SHA-256 is checked against the known one of
torch-fidelity's FID weights (another file only with `inception_unverified=true`), and it is
read weights-only (torch-fidelity unpickles it fully, so a file could run code): the network
gets the tensors re-serialised, never the file. Images go in as uint8 RGB (grey repeated) and
are resized to 299x299 without antialiasing, so the numbers are comparable with published FIDs.
"""

import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from src.errors import ConfigError
from src.metrics.quality import Featurizer

log = logging.getLogger(__name__)
WEIGHTS_NAME = "weights-inception-2015-12-05-6726825d.pth"
# torch-fidelity's (and pytorch-fid's) FID weights; the 8 hex digits in the file's name are
# the start of it (torch hub's convention)
WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"


@dataclass
class Weights:
    """A weights file checked before any work: where, its SHA-256, whether it is the known
    one, and the tensors read from it as data."""

    path: Path
    sha256: str
    verified: bool

    def provenance(self) -> dict[str, object]:
        """What the metrics JSON records of it."""
        return {"path": str(self.path), "sha256": self.sha256, "verified": self.verified,
                "loaded": "weights_only"}  # fmt: skip


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def find_weights(
    configured: str | None, unverified: bool = False, key: str = "inception_weights"
) -> Weights | None:
    """The weights to use, checked (exists, the known file or `unverified`), or None (with
    one log line) when none are configured or cached."""
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise ConfigError(
                key, configured, "no such file (torch-fidelity's FID Inception weights)"
            )
    else:
        path = Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_NAME
        if not path.is_file():
            log.info(
                "Inception FID skipped: no %s in %s and no inception_weights=PATH (nothing is "
                "downloaded); the domain metrics are reported", WEIGHTS_NAME, path.parent,
            )  # fmt: skip
            return None
    digest = sha256(path)
    if digest != WEIGHTS_SHA256 and not unverified:
        raise ConfigError(
            key, str(path), f"its SHA-256 {digest[:16]}... is not that of torch-fidelity's FID "
            f"weights ({WEIGHTS_SHA256[:16]}...): other weights give FIDs no paper reports; "
            "inception_unverified=true uses them anyway (read as data only)",
        )  # fmt: skip
    return Weights(path, digest, digest == WEIGHTS_SHA256)


class InceptionFeatures(Featurizer):
    """2048-d pool features of Inception-V3 (FID variant) for images in [-1, 1]."""

    def __init__(self, weights: Weights, key: str = "inception_weights"):
        from torchmetrics.image.fid import NoTrainInceptionV3

        super().__init__(2048)
        try:
            state = torch.load(weights.path, map_location="cpu", weights_only=True)
        except Exception as error:  # not a weights file, or one that would run code
            reason = " ".join(str(error).split())[:120]
            raise ConfigError(
                key, str(weights.path), f"not readable as weights ({reason})"
            ) from None
        clean = io.BytesIO()  # the tensors alone, for torch-fidelity's full-pickle load
        torch.save(state, clean)
        clean.seek(0)
        try:
            self.net = NoTrainInceptionV3(
                name="inception-v3-compat", features_list=["2048"],
                feature_extractor_weights_path=clean, antialias=False,
            )  # fmt: skip
        except (RuntimeError, TypeError, KeyError, AttributeError) as error:
            first = " ".join(str(error).split())[:120]
            raise ConfigError(
                key, str(weights.path), f"not Inception-V3 FID weights (its tensors do not fit: "
                f"{first})",
            ) from None  # fmt: skip

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        out = []
        for chunk in images.split(100):
            uint8 = ((chunk.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
            if uint8.shape[1] == 1:
                uint8 = uint8.expand(-1, 3, -1, -1)
            out.append(self.net(uint8))
        return torch.cat(out)
