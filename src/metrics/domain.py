"""The domain feature extractor: a small CNN the project trains on the dataset itself.

Inception-V3 weights cannot be downloaded here, and ImageNet features say little about
8x8 digits anyway. This classifier is trained on the training images (their labels when
the dataset has them, else the 4-way rotation pretext task of Gidaris et al. 2018), cached
with its held-out accuracy and the dataset's fingerprint, and reused. Its 128-d
penultimate features give the domain FID (`fid`)/KID/precision/recall; its class predictions give
class coverage and an Inception-Score analogue. Never compare these numbers with
published (Inception) FIDs.
"""

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from src.metrics.quality import Featurizer
from src.utils.checkpoint import atomic_write
from src.utils.outputs import shown

log = logging.getLogger(__name__)
FEATURES = 128
VERSION = 2  # bump when the architecture or training changes: old caches are retrained


class DomainCNN(nn.Module):
    """Images in [-1, 1] (any power-of-two size >= 16) -> 128-d features and class logits.
    BatchNorm after each convolution: with it the recipe below reaches a higher held-out
    accuracy in 4 epochs than the plain net did in 15 (experiments/metric_cost)."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()

        def block(inputs: int, outputs: int) -> list[nn.Module]:
            conv = nn.Conv2d(inputs, outputs, 3, padding=1, bias=False)
            return [conv, nn.BatchNorm2d(outputs), nn.ReLU()]

        self.body = nn.Sequential(
            *block(channels, 32), nn.MaxPool2d(2), *block(32, 64), nn.MaxPool2d(2),
            *block(64, 128), nn.AdaptiveAvgPool2d(4),
            nn.Flatten(), nn.Linear(128 * 16, FEATURES), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(FEATURES, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)


class DomainFeatures(Featurizer):
    """The trained domain CNN as the metrics' feature extractor, and its classifier."""

    def __init__(self, net: DomainCNN):
        super().__init__(FEATURES)
        self.net = net.eval()

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.features(images.float())

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities of images in [-1, 1]."""
        return self.net.head(self(images).float()).softmax(1)


class ChannelFeatures(DomainFeatures):
    """For images whose channels each hold one image of a single-channel domain (stacked
    digits): each channel's domain features side by side, and the joint class probabilities
    (the product over channels, 10^channels classes: class 123 is 1, 2, 3 from R to B)."""

    def __init__(self, net: DomainCNN, channels: int):
        super().__init__(net)
        self.num_features, self.channels = FEATURES * channels, channels

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        channels = range(self.channels)
        return torch.cat([self.net.features(images[:, c : c + 1].float()) for c in channels], 1)

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        features = self(images).float().split(FEATURES, dim=1)
        joint = torch.ones(len(images), 1, device=images.device)
        for channel in features:
            probs = self.net.head(channel).softmax(1)
            joint = (joint.unsqueeze(2) * probs.unsqueeze(1)).flatten(1)
        return joint


@dataclass
class DomainModel:
    net: DomainCNN
    test_accuracy: float
    labelled: bool  # False: trained on the rotation task (no class metrics)
    fingerprint: str


def rotations(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image in its 4 rotations, labelled 0-3 (unlabelled datasets)."""
    rotated = torch.cat([torch.rot90(images, k, (2, 3)) for k in range(4)])
    return rotated, torch.arange(4).repeat_interleave(len(images))


def train_domain_model(
    images: torch.Tensor, labels: torch.Tensor | None, epochs: int, seed: int = 0
) -> tuple[DomainCNN, float]:
    """Trains on 80% of `images` (float, [-1, 1]), returns the net and its held-out accuracy."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=generator)
    split = int(0.8 * len(images))
    train_idx, test_idx = order[:split], order[split:]
    if labels is None:
        (x_train, y_train), (x_test, y_test) = (
            rotations(images[train_idx]),
            rotations(images[test_idx]),
        )
        num_classes = 4
    else:
        x_train, y_train, x_test, y_test = (
            images[train_idx], labels[train_idx], images[test_idx], labels[test_idx]
        )  # fmt: skip
        num_classes = int(labels.max()) + 1
    # Its own RNG state: training the extractor (done once, then cached) must not shift the
    # GAN's noise stream, or a run would depend on whether the cache existed.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = DomainCNN(images.shape[1], num_classes).to(memory_format=torch.channels_last)
    batch_size = 64
    optimizer = torch.optim.Adam(net.parameters())
    # One cycle (Smith & Topin 2019): warm up to a high rate, anneal to ~0 at the last step.
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=1e-2, epochs=epochs, steps_per_epoch=-(-len(x_train) // batch_size)
    )
    for _ in range(epochs):
        net.train()
        for batch in torch.randperm(len(x_train), generator=generator).split(batch_size):
            shift = torch.randint(-2, 3, (2,), generator=generator).tolist()
            x = torch.roll(x_train[batch], shifts=shift, dims=(2, 3))  # small translations
            x = x.contiguous(memory_format=torch.channels_last)  # ~1.5x faster convs on CPU
            loss = F.cross_entropy(net.head(net.features(x)), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    net.eval()
    with torch.no_grad():
        predictions = torch.cat([net.head(net.features(b)).argmax(1) for b in x_test.split(512)])
    return net, (predictions == y_test).float().mean().item()


def load_or_train(
    images: torch.Tensor,
    labels: torch.Tensor | None,
    fingerprint: str,
    cache_dir: Path,
    epochs: int = 4,
) -> DomainModel:
    """The cached model for this data (same fingerprint), else a freshly trained one."""
    key = hashlib.sha1(f"{VERSION}|{fingerprint}|{tuple(images.shape[1:])}|{labels is None}"
                       .encode()).hexdigest()[:16]  # fmt: skip
    path = cache_dir / f"domain_cnn_{key}.pt"
    if path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            with torch.random.fork_rng(devices=[]):  # its init may not draw from the training RNG
                net = DomainCNN(saved["channels"], saved["num_classes"])
            net.load_state_dict(saved["state_dict"])
            net.eval()
            return DomainModel(net, saved["test_accuracy"], saved["labelled"], fingerprint)
        except Exception as error:  # a truncated or damaged cache is rebuilt, never trusted
            log.warning("Rebuilding the unreadable domain-model cache %s (%s)", path,
                        type(error).__name__)  # fmt: skip
    log.info("Training the domain feature extractor on %d images (cached at %s)", len(images),
             shown(path))  # fmt: skip
    net, accuracy = train_domain_model(images, labels, epochs)
    log.info("Domain feature extractor: held-out accuracy %.3f", accuracy)
    saved = {
        "state_dict": net.state_dict(), "channels": images.shape[1],
        "num_classes": net.head.out_features, "test_accuracy": accuracy,
        "labelled": labels is not None, "fingerprint": fingerprint,
    }  # fmt: skip
    atomic_write(path, lambda file: torch.save(saved, file))
    return DomainModel(net, accuracy, labels is not None, fingerprint)
