"""The LightningModule: alternating D and G updates with manual optimization."""

import copy
import logging
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning import LightningModule
from torch import nn

from src.models.augment import POLICIES, diff_augment
from src.models.losses import LOSSES, discriminator_loss, generator_loss
from src.models.optim import build_optimizer, build_schedule
from src.utils.checkpoint import rng_states, set_rng_states
from src.utils.distributed import all_reduce_gradients, is_distributed
from src.utils.errors import ConfigError, DivergenceError

log = logging.getLogger(__name__)


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
        max_nonfinite_steps: int = 10,
        collapse_warn_steps: int = 200,
        channels_last: bool = True,
        compile: bool = False,
    ):
        super().__init__()
        # Plain containers, so checkpoints load with torch.load(weights_only=True).
        optimizer = (
            OmegaConf.to_container(optimizer)
            if isinstance(optimizer, DictConfig)
            else dict(optimizer)
        )
        if loss not in LOSSES:
            raise ConfigError("model.loss", loss, f"allowed: {', '.join(LOSSES)}")
        generator_loss(torch.zeros(1), g_objective)  # validates the objective name up front
        if not isinstance(num_fixed_noise, int) or num_fixed_noise < 1:
            raise ConfigError("model.num_fixed_noise", num_fixed_noise, "allowed: an integer >= 1")
        if not isinstance(d_steps_per_g_step, int) or d_steps_per_g_step < 1:
            raise ConfigError("model.d_steps_per_g_step", d_steps_per_g_step, "allowed: >= 1")
        augment = list(augment or [])
        if unknown := [a for a in augment if a not in POLICIES]:
            raise ConfigError("model.augment", unknown, f"allowed entries: {', '.join(POLICIES)}")
        if not isinstance(collapse_warn_steps, int) or collapse_warn_steps < 1:
            raise ConfigError("model.collapse_warn_steps", collapse_warn_steps, "allowed: >= 1")
        if not isinstance(max_nonfinite_steps, int) or max_nonfinite_steps < 1:
            raise ConfigError("model.max_nonfinite_steps", max_nonfinite_steps, "allowed: >= 1")
        if not (isinstance(ema_decay, int | float) and 0.0 <= ema_decay < 1.0):
            raise ConfigError("model.ema_decay", ema_decay, "allowed: [0, 1) (0 disables EMA)")
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
        self.register_buffer("fixed_noise", generator.sample_latent(num_fixed_noise))
        self.config: dict[str, Any] | None = None  # the resolved run config, saved in checkpoints
        # Divergence guard state, kept on the device so checking it costs no per-step sync.
        self.health = HealthMonitor(max_nonfinite_steps, collapse_warn_steps)
        self._compiled = False

    def configure_model(self) -> None:
        """Memory format and compilation, applied once the module is on its device.

        channels_last: NHWC convolutions are faster with oneDNN on CPU (1.15x per step at
        64x64 here, experiments/throughput) and with Tensor Cores on GPU. compile: G and D are
        compiled separately, in place, so state_dict keys stay the same (not the whole
        LightningModule: the training step toggles requires_grad and steps optimizers). Compiled
        networks keep the contiguous format: inductor's backward of G's channels_last
        ConvTranspose2d weights failed a stride assertion on an H200 (torch 2.11, bf16-mixed;
        experiments/throughput/RESULTS.md).
        """
        nets = [self.generator, self.discriminator]
        if self.generator_ema is not None:
            nets.append(self.generator_ema)
        if self.memory_format == torch.channels_last:
            for net in nets:
                net.to(memory_format=torch.channels_last)
        if self.hparams.compile and not self._compiled:
            self.generator.compile()
            self.discriminator.compile()
            self._compiled = True

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> dict[str, torch.Tensor]:
        real = batch.contiguous(memory_format=self.memory_format)
        opt_d, opt_g = self.optimizers()
        # Counted over the whole run (and across a resume), not per epoch: with more D steps
        # per G step than batches in an epoch, a per-epoch count would never reach G's turn.
        batch_number = self.trainer.fit_loop.total_batch_idx + 1
        g_turn = batch_number % self.hparams.d_steps_per_g_step == 0
        z = self.generator.sample_latent(real.shape[0], device=real.device)
        with torch.set_grad_enabled(g_turn):  # keep G's graph only when G steps on this batch
            fake = self.generator(z)

        # D step: D on real and on fake.detach(), so no gradient reaches G.
        real_logits = self.discriminator(self.augment(real))
        fake_logits = self.discriminator(self.augment(fake.detach()))
        d_loss = discriminator_loss(real_logits, fake_logits)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        d_bad = step_if_finite(opt_d, d_loss, self.discriminator)
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
                g_bad = step_if_finite(opt_g, g_loss, self.generator)
            if self.generator_ema is not None:
                self.update_ema()
            logs["train/loss_g"] = g_loss.detach()
        logs["train/nonfinite_steps"] = self.health.update(
            d_bad | g_bad if g_turn else d_bad, logs["train/d_real"], logs["train/d_fake"]
        )
        for schedule in self.lr_schedulers() or []:  # per batch (manual optimization)
            schedule.step()
        if (self.trainer.fit_loop.total_batch_idx + 1) % self.trainer.log_every_n_steps == 0:
            # a sync, on log steps only
            self.health.check(self.trainer.fit_loop.total_batch_idx, self.trainer.current_epoch)

        # Device tensors, logged on step only: Lightning converts them to numbers every
        # `log_every_n_steps`, so there is no host-device sync on the other steps.
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=real.shape[0])
        # The progress bar shows epoch means, which need no per-step sync either.
        epoch_means = {k.removeprefix("train/"): v for k, v in logs.items() if "/loss" in k}
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

    def on_fit_start(self) -> None:
        """Under data parallelism every rank draws its own noise and augmentations.

        seed_everything gives all ranks the same RNG state (and a resume restores rank 0's on
        all of them); a seed drawn from that shared state plus the rank decorrelates them
        reproducibly. Single-process runs are left untouched.
        """
        if self.trainer.world_size > 1:
            shared = int(torch.randint(0, 2**62, (1,)))
            torch.manual_seed(shared + self.global_rank)

    @property
    def memory_format(self) -> torch.memory_format:
        nhwc = self.hparams.channels_last and not self.hparams.compile
        return torch.channels_last if nhwc else torch.contiguous_format

    def configure_optimizers(self) -> Any:
        cfg = dict(self.hparams.optimizer)
        lr_d, lr_g = cfg.pop("lr_d", None), cfg.pop("lr_g", None)
        schedule, decay_start = cfg.pop("schedule", "constant"), cfg.pop("decay_start", 0.5)
        world_size = self.trainer.world_size if self._trainer is not None else 1
        scale = lr_scale(cfg.pop("scale_lr", "none"), world_size)
        lr, lr_d, lr_g = (None if v is None else v * scale for v in (cfg.pop("lr"), lr_d, lr_g))
        opt_d = build_optimizer(self.discriminator.parameters(), lr=lr_d or lr, **cfg)
        opt_g = build_optimizer(self.generator.parameters(), lr=lr_g or lr, **cfg)
        # The batch count of the whole run, read when the schedule first steps (the trainer
        # knows it then). Not `estimated_stepping_batches`: it builds the train dataloader
        # before a checkpoint's RNG states are restored, so a resumed run would draw
        # differently from an uninterrupted one.
        schedules = [
            build_schedule(o, schedule, self.scheduled_batches, decay_start) for o in (opt_d, opt_g)
        ]
        if schedules[0] is None:
            return [opt_d, opt_g]
        return [opt_d, opt_g], schedules

    def scheduled_batches(self) -> int:
        """Training batches in the whole run (what an lr schedule spans)."""
        return max(1, int(self.trainer.num_training_batches) * max(1, self.trainer.max_epochs))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["ema_updates"] = self.ema_updates
        checkpoint["rng_states"] = rng_states()  # noise and augmentation continue exactly
        if self.config is not None:
            checkpoint["config"] = self.config

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuses, in one line, a checkpoint made for other networks or another optimizer."""
        ours = self.state_dict()
        for name, value in checkpoint["state_dict"].items():
            if name in ours and ours[name].shape != value.shape:
                raise ConfigError(
                    "ckpt_path", name, f"shape {tuple(value.shape)} in the checkpoint, "
                    f"{tuple(ours[name].shape)} in this model: it was trained with other widths",
                )  # fmt: skip
        stored = set(checkpoint["state_dict"])
        if differing := sorted(set(ours) ^ stored):
            where = "missing from" if differing[0] in ours else "only in"
            raise ConfigError(
                "ckpt_path", differing[0], f"{where} the checkpoint: it was made for another model"
            )
        saved = (checkpoint.get("config") or {}).get("optimizer", {}).get("name")
        if saved is not None and saved != self.hparams.optimizer.get("name"):
            raise ConfigError(
                "optimizer.name", self.hparams.optimizer.get("name"),
                f"the checkpoint was trained with optimizer.name={saved}",
            )  # fmt: skip
        self.ema_updates = checkpoint.get("ema_updates", 0)
        if "rng_states" in checkpoint:
            set_rng_states(checkpoint["rng_states"])


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
        generator(generator.sample_latent(batch_size, generator=rng, device=device))
    generator.train(was_training)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum


def step_if_finite(optimizer: Any, loss: torch.Tensor, net: nn.Module) -> torch.Tensor:
    """Steps `net` unless `loss` is non-finite; returns the (device) flag "update skipped".

    Under data parallelism the gradients of `net` (only: the other network is not stepping)
    are averaged over ranks first, and the flag is ORed across ranks in the same collective.
    Fused optimizers take the flag as `found_inf` (the mechanism AMP's GradScaler uses) and skip
    on the device: no sync. Others need the flag on the host, which costs a sync per step.
    """
    bad = ~torch.isfinite(loss.detach())
    if is_distributed():
        bad = all_reduce_gradients([p for p in net.parameters() if p.requires_grad], bad)
    inner = getattr(optimizer, "optimizer", optimizer)  # unwrap LightningOptimizer
    if inner.defaults.get("fused"):
        inner.found_inf, inner.grad_scale = bad.float(), None
        optimizer.step()
    elif not bad.item():
        optimizer.step()
    return bad


class HealthMonitor:
    """Counts skipped (non-finite) steps and D collapse on the device; `check` reads them.

    Consecutive runs are tracked exactly on every step; `check`, called on logging steps,
    stops the run if a run of non-finite steps reached `max_nonfinite_steps` since the last
    check, and warns once per episode of D collapse (d_real > 0.99 and d_fake < 0.01 for
    `collapse_warn_steps` steps in a row).
    """

    def __init__(self, max_nonfinite_steps: int, collapse_warn_steps: int):
        self.max_nonfinite_steps = max_nonfinite_steps
        self.collapse_warn_steps = collapse_warn_steps
        self.total = self.run = self.worst_run = self.collapse_run = None
        self.collapse_warned = False

    def update(self, bad: torch.Tensor, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        """Records one step; returns the total count of skipped steps (a device tensor)."""
        bad = bad.float()
        if self.total is None:
            self.total, self.run, self.worst_run, self.collapse_run = (
                torch.zeros((), device=bad.device) for _ in range(4)
            )
        self.total = self.total + bad
        self.run = (self.run + bad) * bad
        self.worst_run = torch.maximum(self.worst_run, self.run)
        collapsed = ((d_real > 0.99) & (d_fake < 0.01)).float()
        self.collapse_run = (self.collapse_run + collapsed) * collapsed
        return self.total

    def check(self, step: int, completed_epochs: int) -> None:
        if self.total is None:
            return
        worst, collapse = (int(t) for t in torch.stack([self.worst_run, self.collapse_run]))
        self.worst_run = torch.zeros_like(self.worst_run)
        if worst >= self.max_nonfinite_steps:
            saved = (
                "checkpoints/last.ckpt holds the last completed epoch (resume: ckpt_path=auto)"
                if completed_epochs
                else "no epoch completed, so no checkpoint was written"
            )
            raise DivergenceError(
                f"training diverged: {worst} consecutive steps with a non-finite loss by batch "
                f"{step} (model.max_nonfinite_steps={self.max_nonfinite_steps}); those updates "
                f"were skipped; {saved}; lower optimizer.lr or check the data"
            )
        if collapse >= self.collapse_warn_steps and not self.collapse_warned:
            log.warning(
                "D collapse at batch %d: d_real > 0.99 and d_fake < 0.01 for %d steps in a row; "
                "G gets little gradient (try augment, a lower lr_d or more G steps)",
                step, collapse,
            )  # fmt: skip
        self.collapse_warned = collapse >= self.collapse_warn_steps


LR_SCALING = ("none", "linear", "sqrt")


def lr_scale(rule: str, world_size: int) -> float:
    """lr multiplier for `world_size` data-parallel processes (effective batch x world_size).

    none (default): the DCGAN settings as published, whatever the device count; linear:
    Goyal et al. 2017's rule for SGD; sqrt: the usual rule for Adam (Krizhevsky 2014).
    """
    if rule not in LR_SCALING:
        raise ConfigError("optimizer.scale_lr", rule, f"allowed: {', '.join(LR_SCALING)}")
    return {"none": 1.0, "linear": float(world_size), "sqrt": world_size**0.5}[rule]
