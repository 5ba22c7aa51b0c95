"""Hyper-parameters that change over the images seen, as R3GAN schedules them (Huang et al.
2024, brownvc/R3GAN `training_loop.cosine_decay_with_warmup`): the lr, Adam's beta2, the
penalty weight gamma, the EMA half-life and the augmentation probability, each a cosine from
`start` to `end` over `images` (after an optional linear warm-up), then held at `end`.

`model.schedules` names them; `GANModule` applies the values before each batch. The count of
images seen is this module's extra state, so a checkpoint carries it and a resumed run
continues every schedule exactly (and a changed batch size keeps counting images).
"""

import math

import torch
from torch import nn

from src.errors import ConfigError, choice, number

# what each schedule drives (GANModule.apply_schedules)
SCHEDULED = {
    "lr": "a factor on each optimizer's lr (optimizer.lr, TTUR and scale_lr kept)",
    "beta2": "Adam's beta2 of both optimizers",
    "penalty_weight": "the weight (gamma, lambda) of every model.penalty term",
    "ema_half_life": "the EMA of G's half-life in images: decay 0.5^(batch / half-life)",
    "augment_p": "the probability of each model.augment policy",
}


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

    def check(self, key: str) -> "Cosine":
        """Its values checked, `key` (model.schedules.<name>) named in the error."""
        self.start = number(f"{key}.start", self.start, -math.inf)
        self.end = number(f"{key}.end", self.end, -math.inf)
        if self.images is not None:
            self.images = number(f"{key}.images", self.images, low_open=True)
        typed, self.warmup_images = (
            self.warmup_images,
            number(f"{key}.warmup_images", self.warmup_images),
        )
        self.warmup_start = number(f"{key}.warmup_start", self.warmup_start, -math.inf)
        if self.images is not None and self.warmup_images >= self.images:
            raise ConfigError(f"{key}.warmup_images", typed,
                              f"allowed: fewer than {key}.images={self.images:g}")  # fmt: skip
        return self

    def __call__(self, seen: float, run_images: float) -> float:
        length = self.images if self.images is not None else run_images
        warmup = min(self.warmup_images, length)
        if seen < warmup:
            return self.warmup_start + (self.start - self.warmup_start) * seen / warmup
        if seen >= length:
            return self.end
        decay = 0.5 * (1 + math.cos(math.pi * (seen - warmup) / max(length - warmup, 1e-12)))
        return self.start + (1 - decay) * (self.end - self.start)


class Schedules(nn.Module):
    """The configured schedules and the images seen so far (over all ranks)."""

    def __init__(self, schedules: dict[str, Cosine]):
        super().__init__()
        for name, schedule in schedules.items():
            choice("model.schedules", name, SCHEDULED)
            if not isinstance(schedule, Cosine):
                raise ConfigError(f"model.schedules.{name}", schedule,
                                  "allowed: {_target_: src.models.schedules.Cosine, start: "
                                  "..., end: ..., images: ...}")  # fmt: skip
            schedule.check(f"model.schedules.{name}")
        self.schedules = dict(schedules)
        self.images_seen = 0

    def __contains__(self, name: str) -> bool:
        return name in self.schedules

    def advance(self, images: int, run_images: float) -> dict[str, float]:
        """The values for the coming batch of `images` (read at the images seen before it)."""
        values = {name: s(self.images_seen, run_images) for name, s in self.schedules.items()}
        self.images_seen += images
        return values

    def get_extra_state(self) -> torch.Tensor:
        """The images seen, as the state_dict's `schedules._extra_state` (a host int during
        training, so reading it costs no device sync)."""
        return torch.tensor(self.images_seen, dtype=torch.int64)

    def set_extra_state(self, state: torch.Tensor) -> None:
        self.images_seen = int(state)
