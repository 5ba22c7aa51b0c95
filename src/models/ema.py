"""An exponential moving average of G's weights for sampling (Karras et al. 2018; Yaz et al.
2019): swa_utils.AveragedModel with a warm-up, and BatchNorm statistics measured for it."""

from collections.abc import Callable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn


def ema_with_warmup(decay: Callable[[], float | None], limit: float) -> Callable[..., None]:
    """swa_utils' EMA update with decay min(limit, (1 + n) / (10 + n)) after n updates, so early
    random weights do not linger (computed on the device from AveragedModel's own counter), or
    `decay()` itself when a schedule sets it (R3GAN's half-life ramp is its own warm-up)."""

    @torch.no_grad()
    def update(ema: list[torch.Tensor], current: list[torch.Tensor], n: torch.Tensor) -> None:
        scheduled = decay()
        if scheduled is not None:
            torch._foreach_lerp_(ema, current, 1 - scheduled)
            return
        n = n.to(ema[0].dtype)
        warm = torch.clamp((1 + n) / (10 + n), max=limit)
        torch._foreach_lerp_(ema, current, 1 - warm)

    return update


class EMAGenerator(AveragedModel):
    """The averaged G; its update count is a buffer, so a resumed run continues the average."""

    def __init__(self, generator: nn.Module, decay: float):
        self.scheduled_decay: float | None = None
        super().__init__(generator, multi_avg_fn=ema_with_warmup(self.current_decay, decay))
        self.requires_grad_(False)
        self._calibrated_at: int | None = None

    def current_decay(self) -> float | None:
        return self.scheduled_decay

    def set_half_life(self, half_life: float, batch: int) -> None:
        """The decay of the next updates from a half-life in images: 0.5^(batch / half-life)
        (R3GAN's, whose half-life ramps up from 0: early updates copy G)."""
        self.scheduled_decay = 0.5 ** (batch / max(half_life, 1e-8))

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
