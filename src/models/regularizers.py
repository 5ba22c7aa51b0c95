"""Regularizers: terms the training step adds to D's or G's loss, each owning its settings,
its schedule and its state (buffers, so checkpoints and gan_ddp carry them).

A term reads what the step computed (`DStep`, `GStep`) and returns its share of the loss, or
None when it is not due. `model.regularizers` holds them by name, each a node of its own
(`conf/model/regularizers/<name>.yaml`, chosen with `model/regularizers=[r1,r2]`; any
`Regularizer` subclass with `+model.regularizers.<name>._target_=...`); a conditional D with
an auxiliary classifier adds AC-GAN's term itself. Keys in their errors are relative to the
term's node (`weight` -> `model.regularizers.r1.weight`).
"""

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from src.errors import choice, integer, number
from src.models.graphs import set_value
from src.models.schedules import Cosine, RunLength, schedule_at

Critic = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


@dataclass
class Seen:
    """What D saw of one side of the batch: its input, the labels, its logits (and class logits)."""

    images: torch.Tensor
    labels: torch.Tensor | None
    logits: torch.Tensor
    classes: torch.Tensor | None = None


@dataclass
class DStep:
    """D's step so far. `critic` runs D on other images (eager even when D is compiled)."""

    real: Seen
    fake: Seen
    critic: Critic
    batch: int  # this batch's number in the run, from 1 (what lazy schedules count)
    mean_over_ranks: Callable[[torch.Tensor], torch.Tensor]
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class GStep:
    """G's step so far: D on the generated images, G's output before augmentation, its latents."""

    fake: Seen
    generated: torch.Tensor
    z: torch.Tensor
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


class Regularizer(nn.Module):
    """A term of D's loss (`d_term`), G's loss (`g_term`) or both; the defaults add nothing."""

    def input_grads(self, batch: int) -> set[str]:
        """The sides ("real", "fake") whose D input must require grad before D runs on it."""
        return set()

    def variant(self, batch: int) -> Hashable:
        """What this term's Python branches depend on at `batch` (part of the key of the step's
        CUDA graph, src/models/graphs.py): terms that act the same on every batch return None."""
        return None

    def pair_labels(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        """The class labels G is asked for on this batch."""
        return labels

    def check_batch(self, batch_size: int) -> str | None:
        """Why this term cannot work with batches of `batch_size` images (None: it can)."""
        return None

    def d_term(self, step: DStep) -> torch.Tensor | None:
        return None

    def g_term(self, step: GStep) -> torch.Tensor | None:
        return None

    def follow(self, seen: float, run_images: RunLength, images: int) -> dict[str, float]:
        """Sets what this term schedules for the coming batch of `images` (at `seen` images of
        about `run_images`); returns the values to log."""
        return {}


class Weighted(Regularizer):
    """A term with a weight (>= 0), fixed or following `schedule` over the images seen; the
    module names it (`name`, its key in model.regularizers: logged as train/<name>)."""

    name = "weighted"  # its key in model.regularizers, set by the module

    def __init__(self, weight: float, schedule: Cosine | None = None):
        super().__init__()
        self.weight = number("weight", weight)
        self.schedule = None if schedule is None else schedule_at("schedule", schedule)
        if self.schedule is not None:
            self.schedule.checked("schedule", 0.0)

    def follow(self, seen: float, run_images: RunLength, images: int) -> dict[str, float]:
        if self.schedule is None:
            return {}
        value = self.schedule(seen, run_images)
        set_value(vars(self), "weight", value)  # a device tensor under model.cuda_graph
        return {f"train/{self.name}_weight": value}


def squared_input_gradient(critic: Critic, seen: Seen) -> torch.Tensor:
    """||grad_x D(x)||^2 per image, in float32, with a graph for the double backward; reuses D's
    forward when its input required grad, else runs D again on a detached copy."""
    images, logits = seen.images, seen.logits
    if not images.requires_grad:
        images = images.detach().requires_grad_(True)
        logits = critic(images, seen.labels)
    (grad,) = torch.autograd.grad(logits.float().sum(), images, create_graph=True)
    return grad.float().pow(2).flatten(1).sum(1)


class Lazy(Weighted):
    """A penalty on every `every`-th D step, `every` times as strong (Karras et al. 2020);
    logged as train/<name>."""

    def __init__(self, weight: float, every: int = 1, schedule: Cosine | None = None):
        super().__init__(weight, schedule)
        self.every = integer("every", every)

    def due(self, batch: int) -> bool:
        return batch % self.every == 0

    def variant(self, batch: int) -> bool:
        return self.due(batch)

    def penalty(self, step: DStep) -> torch.Tensor:
        raise NotImplementedError

    def d_term(self, step: DStep) -> torch.Tensor | None:
        if not self.due(step.batch):
            return None
        term = self.penalty(step)
        step.logs[f"train/{self.name}"] = term.detach()
        return self.every * term


class GradientPenalty(Lazy):
    """gamma/2 E||grad_x D(x)||^2 at real images (R1, Mescheder et al. 2018, `side: real`) or at
    generated ones (R2, `side: fake`); `weight` is gamma."""

    def __init__(self, side: str, weight: float, every: int = 1, schedule: Cosine | None = None):
        super().__init__(weight, every, schedule)
        self.side = choice("side", side, ("real", "fake"))
        self.name = {"real": "r1", "fake": "r2"}[side]

    def input_grads(self, batch: int) -> set[str]:
        return {self.side} if self.due(batch) else set()

    def penalty(self, step: DStep) -> torch.Tensor:
        seen = getattr(step, self.side)
        return self.weight / 2 * squared_input_gradient(step.critic, seen).mean()


class WGANGP(Lazy):
    """lambda E[(||grad D(x_hat)|| - 1)^2] at random points between real and generated images
    (Gulrajani et al. 2017), conditional D with the real images' labels; `weight` is lambda."""

    name = "wgan_gp"

    def penalty(self, step: DStep) -> torch.Tensor:
        real, fake = step.real.images.detach(), step.fake.images.detach()
        eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
        between = Seen(eps * real + (1 - eps) * fake, step.real.labels, logits=None)
        norms = squared_input_gradient(step.critic, between).add(1e-12).sqrt()
        return self.weight * (norms - 1).pow(2).mean()


class LeCam(Weighted):
    """LeCam regularization (Tseng et al. 2021, eq. 3, as in their code and StudioGAN):
    E[relu(D(x) - a_F)^2] + E[relu(a_R - D(G(z)))^2], a_R and a_F moving averages of D's mean
    output on real and generated images, taken over the global batch."""

    name = "lecam"

    def __init__(self, weight: float, rate: float = 0.01, schedule: Cosine | None = None):
        super().__init__(weight, schedule)
        # of the moving averages (decay 0.99, as in Tseng et al.'s code)
        self.rate = number("rate", rate, 0.0, 1.0, low_open=True)
        self.register_buffer("ema", torch.zeros(2))  # (a_R, a_F)

    def d_term(self, step: DStep) -> torch.Tensor:
        real, fake = step.real.logits, step.fake.logits
        term = (
            F.relu(real.float() - self.ema[1]).pow(2).mean()
            + F.relu(self.ema[0] - fake.float()).pow(2).mean()
        )
        with torch.no_grad():
            means = torch.stack([real.float().mean(), fake.float().mean()])
            self.ema.lerp_(step.mean_over_ranks(means), self.rate)
        return self.weight * term


class ModeSeeking(Weighted):
    """MSGAN (Mao et al. 2019), for G: 1 / (mean|G(z1) - G(z2)| / mean|z1 - z2| + eps) over the
    pairs (i, i + n/2) of the batch, which are asked for the same class when conditional."""

    name = "mode_seeking"

    def __init__(self, weight: float, eps: float = 1e-5, schedule: Cosine | None = None):
        super().__init__(weight, schedule)
        self.eps = number("eps", eps, low_open=True)

    def pair_labels(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        if labels is not None:
            half = len(labels) // 2
            labels[half : 2 * half] = labels[:half]
        return labels

    def g_term(self, step: GStep) -> torch.Tensor:
        return self.weight * mode_seeking(step.generated, step.z, self.eps)

    def check_batch(self, batch_size: int) -> str | None:
        return "it compares pairs of samples: allowed: >= 2" if batch_size < 2 else None


def mode_seeking(images: torch.Tensor, z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    half = images.shape[0] // 2
    ratio = (images[:half].float() - images[half : 2 * half].float()).abs().mean() / (
        z[:half].float() - z[half : 2 * half].float()
    ).abs().mean()
    return 1 / (ratio + eps)


class AuxiliaryClassifier(Regularizer):
    """AC-GAN (Odena et al. 2017): D learns the class of real images, G makes the asked class."""

    def d_term(self, step: DStep) -> torch.Tensor:
        return F.cross_entropy(step.real.classes.float(), step.real.labels)

    def g_term(self, step: GStep) -> torch.Tensor:
        return F.cross_entropy(step.fake.classes.float(), step.fake.labels)
