"""An exponential moving average of G's weights for sampling (Karras et al. 2018; Yaz et al.
2019): swa_utils.AveragedModel with a warm-up, and BatchNorm statistics measured for it.
`model.ema` is its node (`model/ema=average`, or `none`), a partial the module calls with G."""

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn

from src.errors import number
from src.models.schedules import Cosine, RunLength, schedule_at


class EMAGenerator(AveragedModel):
    """The averaged G; its update count is a buffer, so a resumed run continues the average.
    The decay is min(decay, (1 + n) / (10 + n)) after n updates, so early random weights do
    not linger, or follows `half_life` in images over the run (R3GAN's ramp is its own
    warm-up)."""

    def __init__(self, generator: nn.Module, decay: float, half_life: Cosine | None = None):
        super().__init__(generator)
        self.requires_grad_(False)
        self.limit = number("model.ema.decay", decay, 0.0, 1.0, high_open=True)
        self.half_life = None
        if half_life is not None:
            key = "model.ema.half_life"
            self.half_life = schedule_at(key, half_life).checked(key, 0.0)
        # a scheduled decay, as a tensor the step (or its CUDA graph) reads: NaN until set
        self.register_buffer("scheduled_decay", torch.tensor(float("nan")), persistent=False)
        self.scheduled = False
        self._calibrated_at: int | None = None

    def follow(self, seen: float, run_images: RunLength, images: int) -> dict[str, float]:
        """The decay of the next update from the scheduled half-life in images:
        0.5^(images / half-life) (R3GAN's, whose half-life ramps up from 0: early updates copy
        G)."""
        if self.half_life is None:
            return {}
        half_life = self.half_life(seen, run_images)
        self.scheduled_decay.fill_(0.5 ** (images / max(half_life, 1e-8)))
        self.scheduled = True
        return {"train/ema_half_life": half_life}

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        """swa_utils' update, without its two host reads of the count per call (it copies on
        the first update and branches on n > 0): here the first update is a lerp of weight 1,
        an exact copy, and the decay is computed on the device."""
        n = self.n_averaged.to(self.scheduled_decay.dtype)
        decay = self.scheduled_decay if self.scheduled else torch.clamp(
            (1 + n) / (10 + n), max=self.limit
        )  # fmt: skip
        weight = torch.where(self.n_averaged == 0, 1.0, 1 - decay)
        averaged = list(self.module.parameters())
        torch._foreach_lerp_(averaged, [p.detach() for p in model.parameters()],
                             [weight] * len(averaged))  # fmt: skip
        buffers = list(self.module.buffers())  # BatchNorm's statistics follow G's (use_buffers)
        if buffers:
            torch._foreach_copy_(buffers, list(model.buffers()))
        self.n_averaged += 1

    def calibrated(self, device: torch.device) -> nn.Module:
        """The averaged G with BatchNorm running statistics measured for its weights (they never
        ran forward in training): update_bn over latents from a private RNG, so sampling never
        shifts the training noise; a conditional G over uniform labels packed beside z."""
        generator = self.module
        if self._calibrated_at == int(self.n_averaged):
            return generator
        rng = torch.Generator(device=device).manual_seed(0)
        batches = []
        for _ in range(8):
            z = generator.sample_latent(256, generator=rng, device=device)
            if generator.num_classes:
                labels = generator.sample_labels(256, generator=rng, device=device)
                z = torch.cat([z, labels.unsqueeze(1).to(z.dtype)], 1)
            batches.append(z)
        update_bn(batches, PackedLabels(generator) if generator.num_classes else generator)
        self._calibrated_at = int(self.n_averaged)
        return generator


class PackedLabels(nn.Module):
    """A conditional G called with one tensor, [z, label] per row (what update_bn passes)."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        return self.generator(packed[:, :-1], packed[:, -1].long())
