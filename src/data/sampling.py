"""Epoch-seeded shuffling shared by the resident and the streaming data paths.

The order of epoch `e` depends only on (seed, e), never on how many batches were drawn
before, so a resumed run sees exactly the batches an uninterrupted one would, and the
resident and streaming paths see the same images in the same order. `ResumableLoader` puts
the position in the epoch into the checkpoint (Lightning's stateful-dataloader protocol), so
a run stopped mid-epoch continues with the next unseen batch.
"""

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler

from src.errors import ConfigError


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of `n` items in `epoch` (the same on every rank and every run)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))


def shard(n: int, seed: int, epoch: int, rank: int, world_size: int) -> torch.Tensor:
    """This rank's disjoint n // world_size of the epoch's permutation: the few left over sit
    the epoch out rather than being duplicated as DistributedSampler pads."""
    per_rank = n // world_size
    return epoch_permutation(n, seed, epoch)[: per_rank * world_size][rank::world_size]


class EpochSampler(DistributedSampler):
    """This rank's indices of each epoch (or index batches); a DistributedSampler, so Lightning
    sets its epoch and keeps it instead of injecting one that pads with duplicates."""

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        batches: bool = False,
        epoch_source: Callable[[], int] | None = None,
        device: torch.device | str = "cpu",
    ):
        super().__init__(
            range(num_items), num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
            drop_last=True,
        )  # fmt: skip
        self.num_items = num_items
        self.batch_size = batch_size
        self.batches = batches
        # Reads the epoch when iteration starts (the Trainer's epoch progress): after a resume
        # from an end-of-epoch checkpoint the sampler is iterated before Lightning's epoch
        # counters catch up, and the first resumed epoch would replay epoch 0's order.
        self.epoch_source = epoch_source
        # index batches on the data's device: one copy of the epoch's order per epoch, none per
        # batch (a host-to-GPU copy from pageable memory waits for the GPU to catch up)
        self.device = torch.device(device)
        self.batches_per_epoch = (num_items // world_size) // batch_size
        self.resume_at: tuple[int, int] | None = None  # (epoch, batches done): a mid-epoch resume
        self.epoch_started, self.first_batch = 0, 0  # what the latest iteration began with
        if num_items < world_size:  # not one image for each process
            raise ConfigError(
                "trainer.devices", world_size,
                f"allowed: <= {num_items}: the data has {num_items} image(s) to share",
            )  # fmt: skip
        if self.batches_per_epoch == 0:
            raise ConfigError(
                "data.batch_size", batch_size,
                f"allowed: <= {num_items // world_size}, the images each of {world_size} "
                "process(es) gets",
            )  # fmt: skip

    def indices(self) -> torch.Tensor:
        """The indices this rank uses this epoch, whole batches only (drop_last)."""
        epoch = self.epoch_source() if self.epoch_source is not None else self.epoch
        mine = shard(self.num_items, self.seed, epoch, self.rank, self.num_replicas)
        return mine[: self.batches_per_epoch * self.batch_size]

    def __iter__(self) -> Iterator:
        indices = self.indices()
        epoch = self.epoch_source() if self.epoch_source is not None else self.epoch
        first = 0
        if self.resume_at is not None and self.resume_at[0] == epoch:  # the rest of that epoch
            first = min(self.resume_at[1], self.batches_per_epoch)
        self.resume_at, self.epoch_started, self.first_batch = None, epoch, first
        indices = indices[first * self.batch_size :]
        if self.batches:
            return iter(indices.to(self.device).split(self.batch_size))
        return iter(indices.tolist())

    def __len__(self) -> int:
        return self.batches_per_epoch * (1 if self.batches else self.batch_size)


class ResumableLoader(DataLoader):
    """A DataLoader over an `EpochSampler` whose position in the epoch (the batches handed to
    the training loop, counted as they leave the loader: workers' prefetching is not counted)
    is its `state_dict`: Lightning saves it in every checkpoint and gives it back on resume, and
    the sampler then starts that epoch at the next unseen batch. Lightning fetches no batch
    ahead from a loader with a length, so the count is the batches trained on."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.position = (0, 0)  # (epoch, batches handed out in it)

    def __iter__(self) -> Iterator:
        batches = super().__iter__()  # starts the sampler's epoch (skipping what was trained)
        sampler: EpochSampler = self.sampler
        epoch, done = sampler.epoch_started, sampler.first_batch
        self.position = (epoch, done)
        for batch in batches:
            done += 1
            self.position = (epoch, done)
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.position[0], "batches": self.position[1]}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.resume_at = (int(state["epoch"]), int(state["batches"]))


class ContiguousBatches(DistributedSampler):
    """Index batches of this rank's contiguous slice of range(n) (the slices differ in length
    by at most one): every item exactly once over the ranks, in order, nothing padded."""

    def __init__(self, n: int, batch_size: int, rank: int = 0, world_size: int = 1):
        super().__init__(range(n), num_replicas=world_size, rank=rank, shuffle=False)
        self.batches = list(torch.arange(n).tensor_split(world_size)[rank].split(batch_size))

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)
