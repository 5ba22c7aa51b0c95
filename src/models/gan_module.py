"""The LightningModule: alternating D and G updates with manual optimization.

Its parts are objects built from their own config nodes (`model.generator`, `model.loss`,
`model.regularizers.<name>`, `model.augmentation`, `model.ema`, `model.metrics`; the
`optimizer` group); the step below only calls them."""

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from pytorch_lightning import LightningModule
from pytorch_lightning.utilities import rank_zero_info
from torch import nn
from torch.nn.utils import parametrize

from src.errors import ConfigError, integer
from src.metrics.evaluator import SampleQuality
from src.models.augment import Augment
from src.models.ema import EMAGenerator
from src.models.graphs import StepGraphs, StepKind, capture_blocker, capture_ready
from src.models.health import step_unless
from src.models.losses import Loss
from src.models.optim import Optimizers
from src.models.regularizers import AuxiliaryClassifier, DStep, GStep, Regularizer, Seen, Weighted
from src.models.resume import (
    check_resumable,
    completed_epochs,
    reopen_stopped_epoch,
    rng_states,
    set_rng_states,
)
from src.utils.distributed import GANDDPStrategy

MAX_GRID_ROWS, CLASS_GRID_COLUMNS = 10, 8  # the conditional sample grid: a row per class


def part(key: str, value: Any, kind: type, hint: str) -> Any:
    """`value` if it is a `kind`, else one line naming `key` and how to choose one."""
    if not isinstance(value, kind):
        raise ConfigError(key, value, f"allowed: a {kind.__name__}; {hint}")
    return value


class GANModule(LightningModule):
    """G and D (and optionally an EMA of G), trained by alternating D and G steps."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        optimizer: Optimizers,
        loss: Loss,
        regularizers: Mapping[str, Regularizer] | None = None,
        augmentation: Augment | None = None,
        ema: Callable[[nn.Module], EMAGenerator] | None = None,
        metrics: SampleQuality | None = None,
        conditional: bool = False,
        d_steps_per_g_step: int = 1,
        pack: int = 1,
        num_fixed_noise: int = 64,
        channels_last: bool = True,
        compile: bool = False,
        cuda_graph: bool = False,
    ):
        super().__init__()
        if conditional != bool(generator.num_classes):
            raise ValueError(f"conditional={conditional} needs a G with classes: build G and D "
                             "with the data's num_classes, as src.train does")  # fmt: skip
        self.save_hyperparameters(ignore=[
            "generator", "discriminator", "optimizer", "loss", "regularizers", "augmentation",
            "ema", "metrics",
        ])  # fmt: skip
        self.automatic_optimization = False
        self.generator, self.discriminator = generator, discriminator
        self.optimizer = part("optimizer", optimizer, Optimizers, "built by the optimizer group")
        self.loss = part(
            "model.loss", loss, Loss, "a built-in one is chosen with model/loss=<name>"
        )
        classifies = getattr(discriminator, "classifier", None) is not None  # AC-GAN
        terms: dict[str, Regularizer] = {"acgan": AuxiliaryClassifier()} if classifies else {}
        for name, term in (regularizers or {}).items():
            terms[name] = part(
                f"model.regularizers.{name}",
                term,
                Regularizer,
                "built-in ones are chosen with model/regularizers=[r1,...]",
            )
            if isinstance(term, Weighted):
                term.name = name  # logged as train/<name>
        self.regularizers = nn.ModuleDict(terms)
        self.d_steps_per_g_step = integer("model.d_steps_per_g_step", d_steps_per_g_step)
        self.pack = integer("model.pack", pack)
        if getattr(discriminator, "pack", 1) != pack:
            raise ValueError(f"model.pack={pack} needs a D built for packs of {pack} images: "
                             "build D with pack=model.pack, as src.train does")  # fmt: skip
        self.augmentation = augmentation if augmentation is not None else Augment()
        part("model.augmentation", self.augmentation, Augment,
             "a built-in one is chosen with model/augmentation=<name>")  # fmt: skip
        self.generator_ema = ema(generator) if ema is not None else None
        self.quality = metrics or SampleQuality()
        self.images_seen = 0  # over all ranks: what the parts' schedules follow (checkpointed)
        self.resumed_rng: dict[str, Any] | None = None  # this rank's RNG states, on a resume
        # buffers, so the grids of a resumed run continue from the same noise; with classes,
        # a row per class (up to 10) with the same latent down each column
        if conditional:
            rows = min(generator.num_classes, MAX_GRID_ROWS)
            columns = generator.sample_latent(CLASS_GRID_COLUMNS)
            self.register_buffer("fixed_noise", columns.repeat(rows, 1))
            self.register_buffer(
                "fixed_labels", torch.arange(rows).repeat_interleave(CLASS_GRID_COLUMNS)
            )
        else:
            # every one is drawn in each epoch's grid: at most 32 x 32 of them
            num_fixed_noise = integer("model.num_fixed_noise", num_fixed_noise, high=1024)
            self.register_buffer("fixed_noise", generator.sample_latent(num_fixed_noise))
            self.fixed_labels = None
        self.config: dict[str, Any] | None = None  # the resolved run config, saved in checkpoints
        self.class_names: list[str] | None = None  # the data's class names, saved in checkpoints
        self.eval_noise: torch.Tensor | None = None  # the validation samples' fixed latents
        self._compiled = False
        self.graphs: StepGraphs | None = None  # model.cuda_graph (set in on_train_start)

    # --- the training step -----------------------------------------------------------------
    def training_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        real, labels = (batch, None) if isinstance(batch, torch.Tensor) else batch
        real = real.contiguous(memory_format=self.memory_format)
        # counted over the run (and across a resume): G's turn comes even when the D steps
        # per G step outnumber an epoch's batches
        batch_number = self.trainer.fit_loop.total_batch_idx + 1
        g_turn = batch_number % self.d_steps_per_g_step == 0
        scheduled = self.follow_schedules(real.shape[0] * self.trainer.world_size)
        if self.graphs is None:
            logs = self.adversarial_step(real, labels, batch_number, g_turn)
            self.step_lr_schedules(g_turn)
            return logs | scheduled
        kind = StepKind(
            g_turn, tuple(term.variant(batch_number) for term in self.regularizers.values()),
            self.augmentation.updates(batch_number), tuple(real.shape),
        )  # fmt: skip
        logs = self.graphs(
            kind, lambda inputs: self.adversarial_step(
                inputs["real"], inputs["labels"], batch_number, g_turn
            ), {"real": real, "labels": labels},
        )  # fmt: skip
        self.count_optimizer_steps(2 if g_turn else 1)
        self.step_lr_schedules(g_turn)
        return logs | scheduled

    def step_lr_schedules(self, g_turn: bool) -> None:
        """Each network's lr schedule, per own step (manual optimization steps them), inside
        the step: a checkpoint saved at this batch's end holds the schedules after it."""
        for schedule, stepped in zip(self.lr_schedulers() or [], (True, g_turn), strict=False):
            if stepped:
                schedule.step()

    def adversarial_step(
        self, real: torch.Tensor, labels: torch.Tensor | None, batch_number: int, g_turn: bool
    ) -> dict[str, torch.Tensor]:  # fmt: skip
        """One batch of the game: D on real and generated images, then (on G's turns) G."""
        z, fake_labels = self.sample_inputs(real.shape[0], real.device)
        with torch.set_grad_enabled(g_turn):  # keep G's graph only when G steps on this batch
            fake = self.generator(z, fake_labels)
        logs = self.discriminator_step(real, labels, fake.detach(), fake_labels, batch_number)
        if g_turn:
            logs |= self.generator_step(real, labels, fake, fake_labels, z)
        return logs

    def discriminator_step(
        self, real: torch.Tensor, labels: torch.Tensor | None, fake: torch.Tensor,
        fake_labels: torch.Tensor | None, batch_number: int,
    ) -> dict[str, torch.Tensor]:  # fmt: skip
        """D on real and on fake.detach() (no gradient reaches G), plus its regularizers."""
        opt_d, _ = self.network_optimizers()
        real_in, fake_in = self.d_inputs(real, fake, batch_number)
        real_seen = Seen(real_in, labels, *self.critic(real_in, labels))
        fake_seen = Seen(fake_in, fake_labels, *self.critic(fake_in, fake_labels))
        d_loss = self.loss.discriminator(real_seen.logits, fake_seen.logits)
        with torch.no_grad():  # positive where D takes an image for real, at the loss's boundary
            real_verdict, fake_verdict = self.loss.verdict(real_seen.logits, fake_seen.logits)
        adapted = self.augmentation.observe(
            real_verdict, batch_number, real.shape[0] * self.trainer.world_size,
            self.mean_over_ranks,
        )  # fmt: skip
        step = DStep(real_seen, fake_seen, self.eager_critic, batch_number, self.mean_over_ranks)
        d_loss = add_terms(d_loss, (term.d_term(step) for term in self.regularizers.values()))
        opt_d.zero_grad(set_to_none=True)
        self.backward_pass(d_loss)
        return {
            "train/loss_d": d_loss.detach(),
            "train/d_real": (real_verdict > 0).float().mean(),
            "train/d_fake": (fake_verdict > 0).float().mean(),
            "d_skipped": self.step_if_finite(opt_d, d_loss, self.discriminator),
            **step.logs,
            **adapted,
        }

    def generator_step(
        self, real: torch.Tensor, labels: torch.Tensor | None, fake: torch.Tensor,
        fake_labels: torch.Tensor | None, z: torch.Tensor,
    ) -> dict[str, torch.Tensor]:  # fmt: skip
        """G through the just-updated D. toggled_optimizer freezes D's weights, so backward
        computes only the input gradients G needs."""
        _, opt_g = self.network_optimizers()
        with self.toggled_optimizer(opt_g):
            fake_in = self.augment(fake)
            fake_seen = Seen(fake_in, fake_labels, *self.critic(fake_in, fake_labels))
            real_logits = None
            if self.loss.g_needs_real:
                with torch.no_grad():
                    real_logits, _ = self.critic(self.augment(real), labels)
            g_loss = self.loss.generator(fake_seen.logits, real_logits)
            step = GStep(fake_seen, fake, z)
            g_loss = add_terms(g_loss, (term.g_term(step) for term in self.regularizers.values()))
            opt_g.zero_grad(set_to_none=True)
            self.backward_pass(g_loss)
            skipped = self.step_if_finite(opt_g, g_loss, self.generator)
        if self.generator_ema is not None:
            self.generator_ema.update_parameters(self.generator)
        return {"train/loss_g": g_loss.detach(), "g_skipped": skipped, **step.logs}

    # --- the parts the step calls ------------------------------------------------------------
    def network_optimizers(self) -> tuple[Any, Any]:
        """D's and G's optimizers: Lightning's wrappers, or under model.cuda_graph the optimizers
        themselves (a replayed graph runs no Python, so no wrapper's hooks; steps are counted
        by `count_optimizer_steps`)."""
        return self.optimizer.built if self.graphs is not None else tuple(self.optimizers())

    def backward_pass(self, loss: torch.Tensor) -> None:
        """Lightning's manual backward (its precision plugin and hooks), or a plain backward
        under model.cuda_graph (16-mixed, the one precision that changes it, is refused there)."""
        if self.graphs is None:
            self.manual_backward(loss)
        else:
            loss.backward()

    def count_optimizer_steps(self, steps: int) -> None:
        """Lightning gap: its optimizer wrapper counts the steps (trainer.global_step: max_steps,
        step-based checkpoints and logging) as it runs; a replayed graph bypasses it."""
        progress = self.trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
        for _ in range(steps):
            progress.increment_ready()
            progress.increment_completed()

    def sample_inputs(
        self, n: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """G's latents and, when conditional, the classes it is asked for (drawn uniformly)."""
        z = self.generator.sample_latent(n, device=device)
        labels = self.generator.sample_labels(n, device=device)
        for term in self.regularizers.values():
            labels = term.pair_labels(labels)
        return z, labels

    def d_inputs(
        self, real: torch.Tensor, fake: torch.Tensor, batch_number: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What D sees, requiring grad where a due penalty reuses D's forward (eager D only)."""
        wanted: set[str] = set()
        if not self._compiled:
            wanted = wanted.union(
                *(t.input_grads(batch_number) for t in self.regularizers.values())
            )
        real_in, fake_in = self.augment(real), self.augment(fake)
        # detached: with no augmentation D's input is the step's own (static) input tensor
        real_in = real_in.detach().requires_grad_() if "real" in wanted else real_in
        return real_in, fake_in.detach().requires_grad_() if "fake" in wanted else fake_in

    def critic(
        self, images: torch.Tensor, labels: torch.Tensor | None, eager: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D's logits and, for AC-GAN, its class logits (else None); eager: D's own forward
        even when compiled (aot_autograd has no double backward)."""
        out = (self.discriminator.forward if eager else self.discriminator)(images, labels)
        return out if isinstance(out, tuple) else (out, None)

    def eager_critic(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.critic(images, labels, eager=self._compiled)[0]

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """What D sees: images under the configured augmentation (identity if none), each
        augmented on its own, then `model.pack` consecutive images side by side along channels
        (PacGAN: real packs and generated packs alike; labels stay one per image)."""
        images = self.augmentation(images)
        if self.pack == 1:
            return images
        n, c, h, w = images.shape
        packed = images.reshape(n // self.pack, self.pack * c, h, w)
        return packed.contiguous(memory_format=self.memory_format)

    def scheduled_parts(self) -> list[Any]:
        """The parts whose values may follow a schedule over the images seen."""
        parts = [self.optimizer, self.augmentation, *self.regularizers.values()]
        return parts + ([self.generator_ema] if self.generator_ema is not None else [])

    def follow_schedules(self, images: int) -> dict[str, float]:
        """Each part's scheduled values for this batch of `images` (all ranks), set at the
        images seen before it; returns them to log."""
        run_images = lambda: self.scheduled_batches() * images  # noqa: E731 (only if needed)
        values: dict[str, float] = {}
        for scheduled in self.scheduled_parts():
            values |= scheduled.follow(self.images_seen, run_images, images)
        self.images_seen += images
        return values

    def get_extra_state(self) -> torch.Tensor:
        """The images seen, as the state_dict's `_extra_state` (a host int during training, so
        reading it costs no device sync)."""
        return torch.tensor(self.images_seen, dtype=torch.int64)

    def set_extra_state(self, state: torch.Tensor) -> None:
        self.images_seen = int(state)

    def mean_over_ranks(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.trainer.strategy.reduce(tensor, reduce_op="mean")

    def step_if_finite(self, optimizer: Any, loss: torch.Tensor, net: nn.Module) -> torch.Tensor:
        """Steps `net` unless `loss` is non-finite (on any rank); returns that device flag."""
        skip = ~torch.isfinite(loss.detach())
        if isinstance(self.trainer.strategy, GANDDPStrategy):
            skip = self.trainer.strategy.all_reduce_gradients(net, skip)
        step_unless(optimizer, skip)
        return skip

    def on_train_batch_end(self, outputs: dict[str, Any], batch: Any, batch_idx: int) -> None:
        """Logging, on log steps only (Lightning writes nothing on the others)."""
        batch_index = self.trainer.fit_loop.total_batch_idx
        if (batch_index + 1) % self.trainer.log_every_n_steps and not self.trainer.should_stop:
            return
        logged = {k: v for k, v in outputs.items() if k.startswith("train/")}
        size = len(batch if isinstance(batch, torch.Tensor) else batch[0])
        self.log_dict(logged, batch_size=size)
        # the progress bar: epoch means over the log steps (per-step values there would be
        # read back to the host on every batch)
        losses = {k.removeprefix("train/"): v for k, v in logged.items() if "/loss" in k}
        self.log_dict(
            losses, on_step=False, on_epoch=True, prog_bar=True, logger=False, batch_size=size
        )

    # --- sampling and the validation metrics ------------------------------------------------
    @property
    def conditional(self) -> bool:
        return bool(self.generator.num_classes)

    @property
    def sampling_generator(self) -> nn.Module:
        """The EMA generator (BatchNorm statistics measured for its weights) or G itself."""
        if self.generator_ema is None:
            return self.generator
        return self.generator_ema.calibrated(self.device)

    @torch.no_grad()
    def sample(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [-1, 1] from latents (and classes), in full precision, BatchNorm in
        inference mode; clamped there, as saved images are (R3GAN's G has no tanh)."""
        generator = self.sampling_generator
        was_training = generator.training
        generator.eval()
        try:
            with torch.autocast(self.device.type, enabled=False):
                labels = labels.to(self.device) if labels is not None else None
                return generator(z.to(self.device), labels).clamp(-1, 1)
        finally:
            generator.train(was_training)

    @property
    def measuring(self) -> bool:
        """A real evaluation: not Lightning's sanity pass (a partial pass would count as the
        reference) nor overfit mode (which reruns a few training batches as validation)."""
        return not (self.trainer.sanity_checking or self.trainer.overfit_batches)

    def on_validation_epoch_start(self) -> None:
        if not self.measuring:
            return
        self.quality.start(self.trainer, self.conditional)
        if self.eval_noise is None:  # fixed: every evaluation compares the same latents
            n = len(self.trainer.val_dataloaders.dataset)
            rng = torch.Generator().manual_seed(0)
            self.eval_noise = self.generator.sample_latent(n, generator=rng).to(self.device)
        if isinstance(self.trainer.strategy, GANDDPStrategy):  # rank 0's BatchNorm statistics
            self.trainer.strategy.broadcast_tensors(list(self.sampling_generator.buffers()))

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        """Samples for these reference positions from their fixed latents (a conditional G
        each class equally often), then updates the metrics."""
        if not self.measuring:
            return
        real, real_labels, positions = batch
        if self.quality.needs_real:
            self.quality.update(real, True, real_labels)
        labels = positions % self.generator.num_classes if self.conditional else None
        self.quality.update(self.sample(self.eval_noise[positions], labels), False, labels)

    def on_validation_epoch_end(self) -> None:
        if not self.measuring:
            return
        values = self.quality.finish()
        self.log_dict({f"val/{name}": value for name, value in values.items()}, sync_dist=True)

    def on_train_end(self) -> None:
        if self.quality.evaluations:
            rank_zero_info(self.quality.cost())

    # --- set-up, optimizers, checkpoints ----------------------------------------------------
    def configure_model(self) -> None:
        """channels_last (faster oneDNN and Tensor Core convolutions) and torch.compile of G and D
        in place (state_dict keys unchanged); compiled networks stay contiguous (see
        experiments/throughput/RESULTS.md: inductor's channels_last ConvTranspose2d backward)."""
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

    @property
    def memory_format(self) -> torch.memory_format:
        nhwc = self.hparams.channels_last and not self.hparams.compile
        return torch.channels_last if nhwc else torch.contiguous_format

    def on_train_start(self) -> None:
        """model.cuda_graph: after any checkpoint is restored, what a graph reads becomes device
        tensors (lr, scheduled weights and p; the EMA decay always is one) and the step runs
        from StepGraphs: captured on CUDA, the same path eagerly elsewhere."""
        if not self.hparams.cuda_graph or self.graphs is not None:
            return
        for optimizer in self.optimizer.built:
            capture_ready(optimizer, self.device)
        for term in self.regularizers.values():
            if getattr(term, "schedule", None) is not None:
                term.weight = torch.tensor(float(term.weight), device=self.device)
        if self.augmentation.schedule is not None:
            self.augmentation.p = torch.tensor(self.augmentation.p, device=self.device)
        scheduled = self.optimizer.schedules
        blocked = capture_blocker(self.optimizer.built, str(self.trainer.precision), scheduled)
        if self.device.type != "cuda":
            blocked = blocked or "no CUDA device (the same capture-ready path, uncaptured)"
        self.graphs = StepGraphs(blocked)

    def on_fit_start(self) -> None:
        """What the batch size must allow (whole packs; a term of pairs: 2 images); every rank
        its own noise and augmentations: a seed drawn from the shared state (equal on all ranks
        after seed_everything or a resume) plus the rank."""
        datamodule = self.trainer.datamodule
        batch = getattr(getattr(datamodule, "source", None), "hparams", None)
        if batch is not None and batch.batch_size % self.pack:
            raise ConfigError("data.batch_size", batch.batch_size, f"with model.pack={self.pack}: "
                              f"allowed: a multiple of {self.pack} (D judges packs)")  # fmt: skip
        for name, term in self.regularizers.items():
            if batch is not None and (why := term.check_batch(batch.batch_size)):
                raise ConfigError("data.batch_size", batch.batch_size,
                                  f"with model.regularizers.{name}: {why}")  # fmt: skip
        if self.trainer.world_size > 1 and self.resumed_rng is not None:
            set_rng_states(self.resumed_rng)  # this rank's own, where it stopped
        elif self.trainer.world_size > 1:
            shared = int(torch.randint(0, 2**62, (1,)))
            torch.manual_seed(shared + self.global_rank)

    def configure_optimizers(self) -> Any:
        self.optimizer.scale(self.trainer.world_size)
        # each network's step count over the run, read when its schedule first steps (not
        # `estimated_stepping_batches`: it builds the train dataloader before a checkpoint's
        # RNG states are restored); G steps once every d_steps_per_g_step batches
        g_steps = lambda: max(1, self.scheduled_batches() // self.d_steps_per_g_step)  # noqa: E731
        schedules = self.optimizer.lr_schedulers(self.scheduled_batches, g_steps)
        return (list(self.optimizer.built), schedules) if schedules else list(self.optimizer.built)

    def scheduled_batches(self) -> int:
        """The batches this run trains: its epochs; with endless epochs (max_epochs=-1) its
        steps (trainer.global_step counts each D and each G update). With epochs set,
        trainer.max_steps stops the run without reshaping its schedules, so a run stopped
        early by it and resumed without it trains exactly as one that never stopped."""
        trainer, d = self.trainer, self.d_steps_per_g_step
        limits = []
        if trainer.max_epochs is not None and trainer.max_epochs > 0:
            limits.append(int(trainer.num_training_batches) * trainer.max_epochs)
        elif trainer.max_steps > 0:  # B batches take B D steps and B // d G steps
            limits.append(math.ceil(trainer.max_steps * d / (d + 1)))
        if not limits:
            raise ConfigError(
                "trainer.max_epochs", trainer.max_epochs, "an lr decay or a schedule over the "
                "run needs its length: set trainer.max_epochs or trainer.max_steps",
            )  # fmt: skip
        return max(1, min(limits))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["optimizer_classes"] = self.optimizer.classes()
        checkpoint["rng_states"] = rng_states()  # noise and augmentation continue exactly
        if self.trainer.world_size > 1:  # every rank's (each draws its own noise)
            ranks: list[Any] = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(ranks, checkpoint["rng_states"])
            checkpoint["rng_states_per_rank"] = ranks
        if self.config is not None:
            checkpoint["config"] = self.config
        if self.class_names is not None:
            checkpoint["class_names"] = self.class_names

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_resumable(checkpoint, self, self.trainer.ckpt_path)
        reopen_stopped_epoch(checkpoint)
        done, limit = completed_epochs(checkpoint), self.trainer.max_epochs
        if limit is not None and 0 < limit < done:
            raise ConfigError("trainer.max_epochs", limit, f"the checkpoint has trained {done} "
                              f"epochs already: allowed: >= {done} (more trains on)")  # fmt: skip
        if limit == done:
            rank_zero_info(f"Nothing left to train: the checkpoint has trained all {done} epochs "
                           f"of trainer.max_epochs={limit}")  # fmt: skip
        if "rng_states" in checkpoint:
            set_rng_states(checkpoint["rng_states"])
        ranks = checkpoint.get("rng_states_per_rank")
        if isinstance(ranks, list) and len(ranks) == self.trainer.world_size > 1:
            self.resumed_rng = ranks[self.global_rank]  # set in on_fit_start


def add_terms(loss: torch.Tensor, terms: Iterable[torch.Tensor | None]) -> torch.Tensor:
    """`loss` plus the regularizer terms that are due, each added as it is computed."""
    for term in terms:
        if term is not None:
            loss = loss + term
    return loss


def compile_network(net: nn.Module) -> None:
    """torch.compile `net` in place (state_dict keys unchanged), spectral norm left eager:
    inductor saved a spectral-norm power-iteration buffer for backward in place of the clone
    the parametrization takes ("modified by an inplace operation", tests/test_compile.py)."""
    for module in net.modules():
        if parametrize.is_parametrized(module):
            for parametrization in module.parametrizations.values():
                for step in parametrization:
                    step.forward = torch.compiler.disable(step.forward)
    net.compile()
