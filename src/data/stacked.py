"""Stacked digits (Metz et al. 2017; Srivastava et al. 2017, VEEGAN): three random digits as the
R, G and B channels of one image, so the data has 1,000 equally likely modes (000 to 999), the
benchmark of mode coverage. From the bundled digits (`data=stacked_digits`) or from MNIST's
files (`data=stacked_mnist`); the draw is fixed by `stack_seed`, not by the run's seed, so every
run sees the same dataset."""

from typing import Any

import torch

from src.data.base import ImageSource, UInt8Images
from src.errors import ConfigError, choice, integer

SOURCES = ("digits", "mnist")


class StackedDigits(ImageSource):
    """`num_images` stacks of three single digits of `source`; labels are the modes 0..999.
    Judged by the single digits' extractor on each channel, and by its mode coverage."""

    def __init__(
        self, *args: Any, source: str = "digits", num_images: int = 25_600, stack_seed: int = 0,
        folder: str = "MNIST", split: str = "train", **kwargs: Any,
    ):  # fmt: skip
        super().__init__(*args, **kwargs)
        h = self.hparams
        h.source = choice("data.source", source, SOURCES)
        h.num_images = integer("data.num_images", num_images, high=10_000_000)
        h.stack_seed = integer("data.stack_seed", stack_seed, low=0)
        h.folder, h.split = folder, split
        if h.channels != 3:
            raise ConfigError("data.channels", h.channels, "allowed for stacked: 3")

    def channel_source(self) -> ImageSource:
        """The single-digit data each channel is drawn from (its classifier labels a channel)."""
        h = self.hparams
        common = {"image_size": h.image_size, "channels": 1, "cache_dir": h.cache_dir}
        if h.source == "digits":
            from src.data.digits import Digits

            return Digits(**common)
        from src.data.idx import MNIST

        return MNIST(h.root, download=h.download, folder=h.folder, split=h.split, **common)

    def metric_source(self) -> ImageSource:
        return self.channel_source()

    def quality_metrics(self, domain: Any, conditional: bool) -> Any:
        """The single digits' metrics on each channel's features side by side, and how many of
        the 10^channels modes the samples cover (`modes`, `mode_kl`)."""
        from src.metrics.domain import ChannelFeatures
        from src.metrics.quality import ModeCoverage, quality_metrics

        feature = ChannelFeatures(domain.net, self.hparams.channels)
        metrics = quality_metrics(feature, domain.labelled, conditional)
        if domain.labelled:
            possible = domain.net.head.out_features**feature.channels  # 1,000 for 3 digits
            metrics.add_metrics({"modes": ModeCoverage(feature, possible)})
        return metrics

    def build_dataset(self) -> UInt8Images:
        h = self.hparams
        source = self.channel_source()
        source.setup("fit")
        everything = torch.arange(len(source.dataset))
        digits, labels = source.fetch(everything), source.targets()
        if labels is None:
            raise ConfigError(
                "data.root", h.root, f"{h.folder}'s label files (*-labels-idx1-ubyte) are needed "
                "to know each stacked image's mode",
            )  # fmt: skip
        rng = torch.Generator().manual_seed(h.stack_seed)
        picks = torch.randint(len(digits), (h.num_images, 3), generator=rng)
        images = torch.cat([digits[picks[:, c]] for c in range(3)], dim=1)
        modes = labels[picks] @ torch.tensor([100, 10, 1])
        return UInt8Images(images, targets=modes, classes=[f"{m:03d}" for m in range(1000)])

    def fingerprint(self) -> str:
        h = self.hparams
        source = self.channel_source()
        return f"stacked-{source.fingerprint()}-{h.num_images}-{h.stack_seed}-{h.image_size}"

    def cache_path(self):
        return None  # stacking is faster than reading a cache
