"""A digit classifier trained on the same digits, used to judge generated samples.

A sample "counts" when the classifier assigns it one class with confidence >= 0.9. A plain
CNN is confident on anything, pure noise included, so it is trained with outlier exposure
(Hendrycks et al. 2019): uniform and Gaussian noise images get a uniform target. High
confidence then means "looks like a real digit", not an over-confident network's guess.
"""

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from src.data.digits import load_digits_images

CACHE = Path(__file__).with_name(".cache")


class DigitCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 16x16
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 8x8
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )  # fmt: skip
        self.head = nn.Linear(128, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for images in [-1, 1], 1 x 32 x 32."""
        return self.head(self.features(images))


def split(seed: int = 0, held_out: float = 0.2):
    images, labels = load_digits_images(32)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    n_test = int(len(images) * held_out)
    test, train = order[:n_test], order[n_test:]
    return (images[train], labels[train]), (images[test], labels[test])


def shift(images: torch.Tensor, max_px: int = 2) -> torch.Tensor:
    """Random translations: the generator is free to place a digit a little off centre."""
    dx, dy = torch.randint(-max_px, max_px + 1, (2,)).tolist()
    return torch.roll(images, shifts=(dy, dx), dims=(2, 3))


def outliers(n: int) -> torch.Tensor:
    """Images that are no digit: uniform and (clipped) Gaussian noise, half each."""
    uniform = torch.rand(n // 2, 1, 32, 32) * 2 - 1
    gaussian = torch.randn(n - n // 2, 1, 32, 32).clamp(-1, 1)
    return torch.cat([uniform, gaussian])


def train_classifier(epochs: int = 80, outlier_weight: float = 0.1, seed: int = 0) -> DigitCNN:
    torch.manual_seed(seed)
    (x, y), _ = split(seed)
    model = DigitCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            loss = F.cross_entropy(model(shift(x[idx])), y[idx])
            # Cross-entropy to the uniform distribution on outliers.
            loss = loss - outlier_weight * F.log_softmax(model(outliers(32)), 1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def load_or_train() -> DigitCNN:
    path = CACHE / "digit_cnn.pt"
    model = DigitCNN()
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    model = train_classifier()
    CACHE.mkdir(exist_ok=True)
    torch.save(model.state_dict(), path)
    return model


@torch.no_grad()
def score(model: DigitCNN, images: torch.Tensor, threshold: float = 0.9) -> dict[str, object]:
    """Share of images classified with confidence >= threshold, and each class's share.

    Images at another resolution are resized to the classifier's 32x32 the way the data
    module resizes the 8x8 originals (bilinear).
    """
    if images.shape[-1] != 32:
        images = F.interpolate(images, size=32, mode="bilinear", align_corners=False)
    probs = torch.cat([model(b).softmax(1) for b in images.split(256)])
    confidence, classes = probs.max(1)
    shares = torch.bincount(classes, minlength=10).float() / len(images)
    return {
        "recognisable": (confidence >= threshold).float().mean().item(),
        "class_shares": [round(s, 3) for s in shares.tolist()],
        "min_share": shares.min().item(),
        "max_share": shares.max().item(),
    }
