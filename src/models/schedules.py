"""Hyper-parameters that change over the images seen, as R3GAN schedules them (Huang et al.
2024, brownvc/R3GAN `training_loop.cosine_decay_with_warmup`): a cosine from `start` to `end`
over `images` (after an optional linear warm-up), then held at `end`.

Each part owns the schedule of the value it drives and checks every value the schedule can
take against what that value allows: the optimizers' lr factor and beta2
(`optimizer.schedules`), a regularizer's weight (`model.regularizers.<name>.schedule`), the
EMA's half-life (`model.ema.half_life`), the augmentation's p (`model.augmentation.schedule`).
`GANModule` counts the images seen (checkpointed, so a resumed run continues every schedule
exactly) and hands the count to each part before each batch.
"""

import math
from collections.abc import Callable

from src.errors import ConfigError, number

RunLength = float | Callable[[], float]  # the run's images, or what reads them when needed


class Cosine:
    """start -> end along half a cosine over `images` (null: the whole run), after a linear
    warm-up from `warmup_start` over the first `warmup_images`; `end` afterwards."""

    def __init__(
        self,
        start: float,
        end: float,
        images: float | None = None,
        warmup_images: float = 0,
        warmup_start: float = 0.0,
    ):
        self.start, self.end, self.images = start, end, images
        self.warmup_images, self.warmup_start = warmup_images, warmup_start

    def checked(
        self, key: str, low: float = -math.inf, high: float = math.inf, *,
        low_open: bool = False, high_open: bool = False,
    ) -> "Cosine":  # fmt: skip
        """The schedule at `key`, every value it can take in [low, high] (a warm-up may start at
        an open `low`: a warm-up from 0), its lengths positive; else a ConfigError."""
        for name in ("start", "end"):
            number(f"{key}.{name}", getattr(self, name), low, high,
                   low_open=low_open, high_open=high_open)  # fmt: skip
        number(f"{key}.warmup_start", self.warmup_start, low, high, high_open=high_open)
        if self.images is not None:
            number(f"{key}.images", self.images, low_open=True)
        number(f"{key}.warmup_images", self.warmup_images)
        if self.images is not None and self.warmup_images >= self.images:
            raise ConfigError(f"{key}.warmup_images", self.warmup_images,
                              f"allowed: fewer than {key}.images={self.images:g}")  # fmt: skip
        return self

    def __call__(self, seen: float, run_images: RunLength) -> float:
        """The value at `seen` images of a run of `run_images` (read only when `images` is
        null: a callable, so an endless run is refused only where a schedule spans it)."""
        if self.images is not None:
            length = self.images
        else:
            length = run_images() if callable(run_images) else run_images
        warmup = min(self.warmup_images, length)
        if seen < warmup:
            return self.warmup_start + (self.start - self.warmup_start) * seen / warmup
        if seen >= length:
            return self.end
        decay = 0.5 * (1 + math.cos(math.pi * (seen - warmup) / max(length - warmup, 1e-12)))
        return self.start + (1 - decay) * (self.end - self.start)


def schedule_at(key: str, schedule: object) -> Cosine:
    """`schedule` if it is a Cosine, else one line naming `key` and what a schedule is."""
    if not isinstance(schedule, Cosine):
        raise ConfigError(key, schedule, "allowed: {_target_: src.models.schedules.Cosine, "
                          "start: ..., end: ..., images: ...}")  # fmt: skip
    return schedule
