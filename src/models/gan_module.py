"""The LightningModule: alternating D and G updates with manual optimization."""

import copy
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning import LightningModule
from torch import nn

from src.models.augment import POLICIES, diff_augment
from src.models.losses import LOSSES, discriminator_loss, generator_loss
from src.models.optim import build_optimizer


class GANModule(LightningModule):
    """Holds G, D (and optionally an EMA copy of G) and trains them as in the DCGAN paper."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        optimizer: dict[str, Any],
        loss: str = "bce",
        g_objective: str = "non_saturating",
        d_steps_per_g_step: int = 1,
        ema_decay: float = 0.0,
        augment: list[str] | tuple[str, ...] = (),
        num_fixed_noise: int = 64,
    ):
        super().__init__()
        # Plain containers, so checkpoints load with torch.load(weights_only=True).
        optimizer = (
            OmegaConf.to_container(optimizer)
            if isinstance(optimizer, DictConfig)
            else dict(optimizer)
        )
        if loss not in LOSSES:
            raise ValueError(f"model.loss={loss!r}: must be one of {', '.join(LOSSES)}")
        generator_loss(torch.zeros(1), g_objective)  # validates the objective name up front
        if d_steps_per_g_step < 1:
            raise ValueError(f"model.d_steps_per_g_step={d_steps_per_g_step}: must be >= 1")
        augment = list(augment or [])
        if unknown := [a for a in augment if a not in POLICIES]:
            raise ValueError(f"model.augment={unknown}: allowed entries are {', '.join(POLICIES)}")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"model.ema_decay={ema_decay}: must be in [0, 1) (0 disables EMA)")
        self.save_hyperparameters(ignore=["generator", "discriminator"])
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        # An exponential moving average of G's weights gives visibly cleaner samples than the
        # raw G at no training cost (Karras et al. 2018; Yaz et al. 2019).
        self.generator_ema = copy.deepcopy(generator).requires_grad_(False) if ema_decay else None
        self.ema_updates = 0
        self._ema_calibrated_at = -1
        # A buffer, so the sample grids of a resumed run continue from the same noise.
        self.register_buffer("fixed_noise", torch.randn(num_fixed_noise, generator.latent_dim))
        self.config: dict[str, Any] | None = None  # the resolved run config, saved in checkpoints

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> dict[str, torch.Tensor]:
        real = batch
        opt_d, opt_g = self.optimizers()
        g_turn = (batch_idx + 1) % self.hparams.d_steps_per_g_step == 0
        z = torch.randn(real.shape[0], self.generator.latent_dim, device=real.device)
        with torch.set_grad_enabled(g_turn):  # keep G's graph only when G steps on this batch
            fake = self.generator(z)

        # D step: D on real and on fake.detach(), so no gradient reaches G.
        real_logits = self.discriminator(self.augment(real))
        fake_logits = self.discriminator(self.augment(fake.detach()))
        d_loss = discriminator_loss(real_logits, fake_logits)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()
        logs = {
            "train/loss_d": d_loss.detach(),
            "train/d_real": torch.sigmoid(real_logits.detach()).mean(),
            "train/d_fake": torch.sigmoid(fake_logits.detach()).mean(),
        }

        # G step through the just-updated D. toggled_optimizer sets requires_grad=False on D's
        # parameters, so backward computes only the input gradients G needs, no D weight grads.
        if g_turn:
            with self.toggled_optimizer(opt_g):
                fake_logits = self.discriminator(self.augment(fake))
                g_loss = generator_loss(fake_logits, self.hparams.g_objective)
                opt_g.zero_grad(set_to_none=True)
                self.manual_backward(g_loss)
                opt_g.step()
            if self.generator_ema is not None:
                self.update_ema()
            logs["train/loss_g"] = g_loss.detach()

        # Device tensors, logged on step only: Lightning converts them to numbers every
        # `log_every_n_steps`, so there is no host-device sync on the other steps.
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=real.shape[0])
        # The progress bar shows epoch means, which need no per-step sync either.
        epoch_means = {k.removeprefix("train/"): v for k, v in logs.items() if "loss" in k}
        self.log_dict(
            epoch_means, on_step=False, on_epoch=True, prog_bar=True, logger=False,
            batch_size=real.shape[0],
        )  # fmt: skip
        return logs

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """What D sees: images under the configured DiffAugment policy (identity if none)."""
        return diff_augment(images, self.hparams.augment)

    @torch.no_grad()
    def update_ema(self) -> None:
        """EMA step with the usual warm-up, so early random weights do not linger in the average."""
        decay = min(self.hparams.ema_decay, (1 + self.ema_updates) / (10 + self.ema_updates))
        ema = list(self.generator_ema.parameters())
        torch._foreach_lerp_(ema, list(self.generator.parameters()), 1 - decay)
        self.ema_updates += 1

    @property
    def sampling_generator(self) -> nn.Module:
        """The EMA generator (BatchNorm statistics recomputed for its weights) or G itself."""
        if self.generator_ema is None:
            return self.generator
        if self._ema_calibrated_at != self.ema_updates:
            recalibrate_batchnorm(self.generator_ema, self.device)
            self._ema_calibrated_at = self.ema_updates
        return self.generator_ema

    @torch.no_grad()
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from latents, with BatchNorm in inference mode (running statistics)."""
        generator = self.sampling_generator
        was_training = generator.training
        generator.eval()
        try:
            return generator(z.to(self.device))
        finally:
            generator.train(was_training)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        cfg = dict(self.hparams.optimizer)
        lr_d, lr_g = cfg.pop("lr_d", None), cfg.pop("lr_g", None)
        lr = cfg.pop("lr")
        opt_d = build_optimizer(self.discriminator.parameters(), lr=lr_d or lr, **cfg)
        opt_g = build_optimizer(self.generator.parameters(), lr=lr_g or lr, **cfg)
        return [opt_d, opt_g]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["ema_updates"] = self.ema_updates
        if self.config is not None:
            checkpoint["config"] = self.config

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.ema_updates = checkpoint.get("ema_updates", 0)


@torch.no_grad()
def recalibrate_batchnorm(
    generator: nn.Module, device: torch.device, batches: int = 8, batch_size: int = 256
) -> None:
    """Recomputes BatchNorm running statistics for the current weights from fresh noise.

    The EMA weights never ran forward during training, so the running statistics that
    inference-mode BatchNorm needs must be measured for them (as SWA's update_bn does).
    Uses a private RNG so sampling never shifts the training noise stream.
    """
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    was_training = generator.training
    generator.train()
    rng = torch.Generator(device=device).manual_seed(0)
    for _ in range(batches):
        generator(torch.randn(batch_size, generator.latent_dim, device=device, generator=rng))
    generator.train(was_training)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
