import pytest
import torch

from src.data.digits import Digits
from src.data.sampling import EpochSampler, shard
from tests.helpers import epoch_batches


def test_digits_are_real_images_scaled_to_the_model_resolution():
    datamodule = Digits(image_size=32, channels=1, batch_size=64)
    loaded = epoch_batches(datamodule)
    assert datamodule.images is not None  # resident by default: 1,797 small images
    assert len(datamodule.dataset) == 1797
    assert len(loaded) == 1797 // 64  # drop_last: every batch is full for BatchNorm
    assert all(b.shape == (64, 1, 32, 32) and b.dtype == torch.float32 for b in loaded)
    images = torch.cat(loaded)
    assert images.min() == -1 and images.max() == 1
    assert images.mean() < -0.3  # mostly black background, white ink


def test_channels_are_repeated_for_rgb_models():
    (batch, *_) = epoch_batches(Digits(image_size=16, channels=3, batch_size=8))
    assert batch.shape == (8, 3, 16, 16)
    assert torch.equal(batch[:, 0], batch[:, 2])


def test_shuffling_is_seeded_per_epoch():
    first = epoch_batches(Digits(batch_size=32, seed=1), epoch=0)
    assert torch.equal(first[0], epoch_batches(Digits(batch_size=32, seed=1), epoch=0)[0])
    assert not torch.equal(first[0], epoch_batches(Digits(batch_size=32, seed=1), 1)[0])
    assert not torch.equal(first[0], epoch_batches(Digits(batch_size=32, seed=2), 0)[0])


@pytest.mark.parametrize("epoch", [0, 3])
def test_resident_and_streaming_paths_give_the_same_batches(epoch):
    resident = epoch_batches(Digits(batch_size=50, seed=7, resident=True), epoch)
    streaming = epoch_batches(Digits(batch_size=50, seed=7, resident=False), epoch)
    assert len(resident) == len(streaming) == 1797 // 50
    assert all(torch.equal(r, s) for r, s in zip(resident, streaming, strict=True))


@pytest.mark.parametrize("n, world_size", [(1797, 2), (1000, 4), (7, 3)])
def test_ddp_shards_are_disjoint_equal_and_cover_the_data(n, world_size):
    for epoch in range(3):
        shards = [shard(n, 0, epoch, rank, world_size) for rank in range(world_size)]
        assert len({len(s) for s in shards}) == 1  # equal work: no rank waits at a collective
        union = torch.cat(shards)
        assert len(set(union.tolist())) == len(union)  # disjoint: no duplicated padding
        assert len(union) == n - n % world_size  # covers all but < world_size per epoch
    # the few left out rotate: over epochs every item is used
    seen = {i for epoch in range(20) for r in range(world_size) for i in
            shard(n, 0, epoch, r, world_size).tolist()}  # fmt: skip
    assert seen == set(range(n))


def test_sampler_yields_whole_batches_of_its_shard():
    sampler = EpochSampler(100, batch_size=8, seed=0, rank=1, world_size=2, batches=True)
    sampler.set_epoch(2)
    got = list(sampler)
    assert len(got) == len(sampler) == 50 // 8
    assert torch.equal(torch.cat(got), shard(100, 0, 2, 1, 2)[: 6 * 8])


def test_a_batch_larger_than_the_shard_is_a_clear_error():
    with pytest.raises(ValueError, match="data.batch_size=64"):
        EpochSampler(100, batch_size=64, seed=0, rank=0, world_size=2)


def test_index_batches_come_on_the_datas_device():
    """The resident path's index batches are made on the data's device once per epoch (meta
    stands in for CUDA here), so no batch copies indices from the host."""
    sampler = EpochSampler(100, batch_size=8, seed=0, batches=True, device="meta")
    assert {batch.device.type for batch in sampler} == {"meta"}
