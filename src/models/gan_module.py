"""The LightningModule: alternating D and G updates with manual optimization."""

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from pytorch_lightning import LightningModule
from torch import nn
from torch.nn.utils import parametrize
from torch.optim.swa_utils import AveragedModel, update_bn

from src.models.augment import POLICIES, diff_augment
from src.models.health import HealthMonitor, step_if_finite
from src.models.latent import positive_int
from src.models.losses import (
    PENALTIES,
    check_loss,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    lecam,
    mode_seeking,
    wgan_gp,
)
from src.models.optim import build_optimizer, lr_scale
from src.utils.checkpoint import rng_states, set_rng_states
from src.utils.errors import ConfigError

MAX_GRID_ROWS, CLASS_GRID_COLUMNS = 10, 8  # the conditional sample grid: a row per class


class GANModule(LightningModule):
    """Holds G, D (and optionally an EMA copy of G) and trains them as in the DCGAN paper."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        optimizer_g: Callable[..., torch.optim.Optimizer],
        optimizer_d: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        scale_lr: str = "none",
        loss: str = "least_squares",
        g_objective: str = "non_saturating",
        penalty: str = "none",
        penalty_weight: float = 10.0,
        penalty_every: int = 1,
        lecam_weight: float = 0.0,
        mode_seeking_weight: float = 0.0,
        d_steps_per_g_step: int = 1,
        ema_decay: float = 0.0,
        augment: list[str] | tuple[str, ...] = ("translation",),
        num_fixed_noise: int = 64,
        max_nonfinite_steps: int = 10,
        collapse_warn_steps: int = 200,
        channels_last: bool = True,
        compile: bool = False,
        conditional: bool = False,
        condition: str = "projection",
        num_classes: int = 0,
    ):
        super().__init__()
        check_loss(loss, g_objective)
        if conditional != bool(num_classes) or generator.num_classes != num_classes:
            raise ConfigError(
                "model.num_classes", num_classes,
                f"model.conditional={conditional} needs {'the data' if conditional else 'no'} "
                "classes (src.train sets it from the data; do not type it)",
            )  # fmt: skip
        if penalty not in PENALTIES:
            raise ConfigError("model.penalty", penalty, f"allowed: {', '.join(PENALTIES)}")
        weights = {"penalty_weight": penalty_weight, "lecam_weight": lecam_weight,
                   "mode_seeking_weight": mode_seeking_weight}  # fmt: skip
        for key, value in weights.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ConfigError(f"model.{key}", value, "allowed: a number >= 0")
        positive_int("model.penalty_every", penalty_every)
        positive_int("model.num_fixed_noise", num_fixed_noise)
        if not isinstance(d_steps_per_g_step, int) or d_steps_per_g_step < 1:
            raise ConfigError("model.d_steps_per_g_step", d_steps_per_g_step, "allowed: >= 1")
        augment = list(augment or [])
        if unknown := [a for a in augment if a not in POLICIES]:
            raise ConfigError("model.augment", unknown, f"allowed entries: {', '.join(POLICIES)}")
        if not (isinstance(ema_decay, int | float) and 0.0 <= ema_decay < 1.0):
            raise ConfigError("model.ema_decay", ema_decay, "allowed: [0, 1) (0 disables EMA)")
        lr_scale(scale_lr, 1)  # validates the rule
        # What torch refuses in an optimizer config fails here, before any training.
        build_optimizer(optimizer_g, generator, "optimizer.generator")
        build_optimizer(optimizer_d, discriminator, "optimizer.discriminator")
        self.optimizer_g, self.optimizer_d, self.scheduler = optimizer_g, optimizer_d, scheduler
        self.save_hyperparameters(
            ignore=["generator", "discriminator", "optimizer_g", "optimizer_d", "scheduler"]
        )
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        # An exponential moving average of G's weights gives visibly cleaner samples than the
        # raw G at no training cost (Karras et al. 2018; Yaz et al. 2019). Its update count
        # is a buffer of AveragedModel, so a resumed run continues the average exactly.
        self.generator_ema = (
            AveragedModel(generator, multi_avg_fn=ema_with_warmup(ema_decay)).requires_grad_(False)
            if ema_decay
            else None
        )
        self._ema_calibrated_at: int | None = None
        if lecam_weight:
            # Moving averages of D's mean output on real and on generated images (LeCam).
            self.register_buffer("lecam_ema", torch.zeros(2))
        # A buffer, so the sample grids of a resumed run continue from the same noise. With
        # classes: one row per class (up to 10), the same latent down each column.
        if num_classes:
            rows = min(num_classes, MAX_GRID_ROWS)
            columns = generator.sample_latent(CLASS_GRID_COLUMNS)
            self.register_buffer("fixed_noise", columns.repeat(rows, 1))
            self.register_buffer(
                "fixed_labels", torch.arange(rows).repeat_interleave(CLASS_GRID_COLUMNS)
            )
        else:
            self.register_buffer("fixed_noise", generator.sample_latent(num_fixed_noise))
            self.fixed_labels = None
        self.config: dict[str, Any] | None = None  # the resolved run config, saved in checkpoints
        self.class_names: list[str] | None = None  # the data's class names, saved in checkpoints
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
            compile_network(self.generator)
            compile_network(self.discriminator)
            self._compiled = True

    def training_step(
        self, batch: torch.Tensor | tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> dict[str, torch.Tensor]:
        images, labels = (batch, None) if isinstance(batch, torch.Tensor) else batch
        real = images.contiguous(memory_format=self.memory_format)
        opt_d, opt_g = self.optimizers()
        # Counted over the whole run (and across a resume), not per epoch: with more D steps
        # per G step than batches in an epoch, a per-epoch count would never reach G's turn.
        batch_number = self.trainer.fit_loop.total_batch_idx + 1
        g_turn = batch_number % self.hparams.d_steps_per_g_step == 0
        z = self.generator.sample_latent(real.shape[0], device=real.device)
        # conditional: G's labels are drawn uniformly (as in Mimicry)
        fake_labels = self.generator.sample_labels(real.shape[0], device=real.device)
        if self.hparams.mode_seeking_weight and fake_labels is not None:
            half = real.shape[0] // 2  # pairs (i, i + half): one class, two latents
            fake_labels[half : 2 * half] = fake_labels[:half]
        with torch.set_grad_enabled(g_turn):  # keep G's graph only when G steps on this batch
            fake = self.generator(z, fake_labels) if self.conditional else self.generator(z)

        # D step: D on real and on fake.detach(), so no gradient reaches G.
        penalty = self.penalty_due(batch_number)
        real_in, fake_in = self.augment(real), self.augment(fake.detach())
        reuse = not self._compiled  # R1/R2 reuse this forward's graph (eager D only)
        real_in.requires_grad_(reuse and penalty == "r1")
        fake_in.requires_grad_(reuse and penalty == "r2")
        real_logits, real_classes = self.critic(real_in, labels)
        fake_logits, _ = self.critic(fake_in, fake_labels)
        d_loss = discriminator_loss(real_logits, fake_logits, self.hparams.loss)
        if real_classes is not None:  # AC-GAN: D also learns the class of real images
            d_loss = d_loss + F.cross_entropy(real_classes.float(), labels)
        logs: dict[str, torch.Tensor] = {}
        if penalty:
            term = self.penalty_term(
                penalty, (real_in, labels, real_logits), (fake_in, fake_labels, fake_logits)
            )
            # lazy regularization: every k-th D step, k times as strong (Karras et al. 2020)
            d_loss = d_loss + self.hparams.penalty_every * term
            logs["train/penalty"] = term.detach()
        if self.hparams.lecam_weight:
            d_loss = d_loss + self.hparams.lecam_weight * lecam(
                real_logits, fake_logits, self.lecam_ema[0], self.lecam_ema[1]
            )
            self.update_lecam(real_logits, fake_logits)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        d_bad = step_if_finite(opt_d, d_loss, self.discriminator)
        logs |= {
            "train/loss_d": d_loss.detach(),
            "train/d_real": torch.sigmoid(real_logits.detach()).mean(),
            "train/d_fake": torch.sigmoid(fake_logits.detach()).mean(),
        }

        # G step through the just-updated D. toggled_optimizer sets requires_grad=False on D's
        # parameters, so backward computes only the input gradients G needs, no D weight grads.
        if g_turn:
            with self.toggled_optimizer(opt_g):
                fake_logits, fake_classes = self.critic(self.augment(fake), fake_labels)
                real_logits = None
                if self.hparams.loss == "relativistic":  # G's loss compares with D on reals
                    with torch.no_grad():
                        real_logits, _ = self.critic(self.augment(real), labels)
                g_loss = generator_loss(
                    fake_logits, self.hparams.loss, self.hparams.g_objective, real_logits
                )
                if fake_classes is not None:  # AC-GAN: G makes images of the asked class
                    g_loss = g_loss + F.cross_entropy(fake_classes.float(), fake_labels)
                if self.hparams.mode_seeking_weight:
                    g_loss = g_loss + self.hparams.mode_seeking_weight * mode_seeking(fake, z)
                opt_g.zero_grad(set_to_none=True)
                self.manual_backward(g_loss)
                g_bad = step_if_finite(opt_g, g_loss, self.generator)
            if self.generator_ema is not None:
                self.generator_ema.update_parameters(self.generator)
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

    @property
    def conditional(self) -> bool:
        return bool(self.hparams.num_classes)

    def critic(
        self, images: torch.Tensor, labels: torch.Tensor | None, eager: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D's real/fake logits for `images` (of classes `labels` when conditional) and, for
        AC-GAN, its class logits (else None). eager: D's own forward even when compiled."""
        discriminator = self.discriminator.forward if eager else self.discriminator
        if not self.conditional:
            return discriminator(images), None
        out = discriminator(images, labels)
        return out if isinstance(out, tuple) else (out, None)

    def penalty_due(self, batch_number: int) -> str | None:
        """The gradient penalty to add on this batch's D step (None: none due)."""
        penalty, every = self.hparams.penalty, self.hparams.penalty_every
        return penalty if penalty != "none" and batch_number % every == 0 else None

    def penalty_term(
        self, penalty: str, real: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor],
        fake: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor],
    ) -> torch.Tensor:  # fmt: skip
        """penalty_weight x the penalty: WGAN-GP's lambda E[(||grad||-1)^2], or R1 (on real
        images, Mescheder et al. 2018) / R2 (on generated ones) gamma/2 E[||grad||^2].
        `real`/`fake`: the (images, labels, logits) of this D step's forward.
        Conditional WGAN-GP evaluates D at the interpolates with the real images' labels.

        torch.compile's aot_autograd has no double backward, so a compiled D is penalised
        through its eager forward on the same weights: one more D forward on penalised steps.
        """
        weight, eager = self.hparams.penalty_weight, self._compiled
        if penalty == "wgan_gp":
            critic = lambda x: self.critic(x, real[1], eager)[0]  # noqa: E731
            return weight * wgan_gp(critic, real[0], fake[0])
        images, labels, logits = real if penalty == "r1" else fake
        critic = lambda x: self.critic(x, labels, eager)[0]  # noqa: E731
        return weight / 2 * gradient_penalty(critic, images, None if eager else logits).mean()

    @torch.no_grad()
    def update_lecam(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> None:
        means = torch.stack([real_logits.float().mean(), fake_logits.float().mean()])
        # over the global batch under data parallelism: the averages stay equal on every
        # rank, so the checkpoint's (rank 0's) is every rank's and a resume continues exactly
        means = self.trainer.strategy.reduce(means, reduce_op="mean")
        self.lecam_ema.lerp_(means, 0.01)  # decay 0.99, as in Tseng et al.'s code

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """What D sees: images under the configured DiffAugment policy (identity if none)."""
        return diff_augment(images, self.hparams.augment)

    @property
    def sampling_generator(self) -> nn.Module:
        """The EMA generator (BatchNorm statistics recomputed for its weights) or G itself.

        The EMA weights never ran forward during training, so inference-mode BatchNorm needs
        running statistics measured for them: swa_utils.update_bn over fresh latents, drawn
        with a private RNG so sampling never shifts the training noise stream. A conditional
        G is calibrated on uniformly drawn labels (packed beside z, since update_bn passes one
        tensor per batch).
        """
        if self.generator_ema is None:
            return self.generator
        ema = self.generator_ema.module
        updates = int(self.generator_ema.n_averaged)
        if self._ema_calibrated_at != updates:
            rng = torch.Generator(device=self.device).manual_seed(0)
            batches = []
            for _ in range(8):
                z = ema.sample_latent(256, generator=rng, device=self.device)
                if ema.num_classes:
                    labels = ema.sample_labels(256, generator=rng, device=self.device)
                    z = torch.cat([z, labels.unsqueeze(1).to(z.dtype)], 1)
                batches.append(z)
            update_bn(batches, PackedLabels(ema) if ema.num_classes else ema)
            self._ema_calibrated_at = updates
        return ema

    @torch.no_grad()
    def sample(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [-1, 1] from latents (and class labels, for a conditional G), with
        BatchNorm in inference mode (running statistics)."""
        generator = self.sampling_generator
        was_training = generator.training
        generator.eval()
        try:
            if self.conditional:
                return generator(z.to(self.device), labels.to(self.device))
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
        world_size = self.trainer.world_size if self._trainer is not None else 1
        scale = lr_scale(self.hparams.scale_lr, world_size)
        opt_d = build_optimizer(self.optimizer_d, self.discriminator, "optimizer.discriminator")
        opt_g = build_optimizer(self.optimizer_g, self.generator, "optimizer.generator")
        for group in [*opt_d.param_groups, *opt_g.param_groups]:
            group["lr"] *= scale
        if self.scheduler is None:
            return [opt_d, opt_g]
        # The batch count of the whole run, read when the schedule first steps (the trainer
        # knows it then). Not `estimated_stepping_batches`: it builds the train dataloader
        # before a checkpoint's RNG states are restored, so a resumed run would draw
        # differently from an uninterrupted one.
        return [opt_d, opt_g], [self.scheduler(o, self.scheduled_batches) for o in (opt_d, opt_g)]

    def scheduled_batches(self) -> int:
        """Training batches in the whole run (what an lr schedule spans)."""
        return max(1, int(self.trainer.num_training_batches) * max(1, self.trainer.max_epochs))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["optimizer_classes"] = self.optimizer_classes()
        checkpoint["rng_states"] = rng_states()  # noise and augmentation continue exactly
        if self.config is not None:
            checkpoint["config"] = self.config
        if self.class_names is not None:
            checkpoint["class_names"] = self.class_names

    def optimizer_classes(self) -> dict[str, str]:
        """The optimizer class of each network (a resume must use the same)."""
        named = {"generator": self.optimizer_g, "discriminator": self.optimizer_d}
        return {k: getattr(getattr(f, "func", f), "__name__", str(f)) for k, f in named.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuses, in one line, a checkpoint made for other networks or another optimizer."""
        theirs = checkpoint.get("hyper_parameters", {}).get("num_classes", 0)
        if theirs != self.hparams.num_classes:
            raise ConfigError(
                "model.num_classes", self.hparams.num_classes,
                f"the checkpoint was trained with {theirs} classes (0: unconditional)",
            )  # fmt: skip
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
        for key, ours in self.optimizer_classes().items():
            saved = checkpoint.get("optimizer_classes", {}).get(key, ours)
            if saved != ours:
                raise ConfigError(
                    f"optimizer.{key}", ours, f"the checkpoint was trained with {saved}"
                )
        if "rng_states" in checkpoint:
            set_rng_states(checkpoint["rng_states"])


class PackedLabels(nn.Module):
    """A conditional G called with one tensor, [z, label] per row (what update_bn passes)."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        return self.generator(packed[:, :-1], packed[:, -1].long())


def ema_with_warmup(decay: float) -> Callable[..., None]:
    """swa_utils' EMA update (get_ema_multi_avg_fn) with the usual warm-up: the decay is
    min(decay, (1 + n) / (10 + n)) after n updates, so early random weights do not linger.
    Computed on the device from AveragedModel's own counter."""

    @torch.no_grad()
    def update(ema: list[torch.Tensor], current: list[torch.Tensor], n: torch.Tensor) -> None:
        n = n.to(ema[0].dtype)
        warm = torch.clamp((1 + n) / (10 + n), max=decay)
        torch._foreach_lerp_(ema, current, 1 - warm)

    return update


def compile_network(net: nn.Module) -> None:
    """torch.compile `net` in place (state_dict keys unchanged), spectral norm left eager.

    Inductor saved a spectral-norm parametrization's power-iteration buffer for backward in
    place of the clone the parametrization takes, so D's second forward (real, then fake)
    updated a tensor that D's backward needed: "modified by an inplace operation" in the
    SNGAN ResNet D (torch 2.14 on CPU, 2.11 on an H100; aot_eager was fine). Each spectral
    norm then runs eagerly, at one graph break per layer (tests/test_compile.py).
    """
    for module in net.modules():
        if parametrize.is_parametrized(module):
            for parametrization in module.parametrizations.values():
                for step in parametrization:
                    step.forward = torch.compiler.disable(step.forward)
    net.compile()
