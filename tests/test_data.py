import torch

from src.data.digits import DigitsDataModule


def batches(datamodule: DigitsDataModule) -> list[torch.Tensor]:
    datamodule.setup("fit")
    return list(datamodule.train_dataloader())


def test_digits_are_real_images_scaled_to_the_model_resolution():
    datamodule = DigitsDataModule(image_size=32, channels=1, batch_size=64)
    loaded = batches(datamodule)
    assert len(datamodule.dataset) == 1797
    assert len(loaded) == 1797 // 64  # drop_last: every batch is full for BatchNorm
    assert all(b.shape == (64, 1, 32, 32) for b in loaded)
    images = torch.cat(loaded)
    assert images.min() == -1 and images.max() == 1
    assert images.mean() < -0.3  # mostly black background, white ink


def test_channels_are_repeated_for_rgb_models():
    (batch, *_) = batches(DigitsDataModule(image_size=16, channels=3, batch_size=8))
    assert batch.shape == (8, 3, 16, 16)
    assert torch.equal(batch[:, 0], batch[:, 2])


def test_shuffling_is_seeded_and_differs_between_epochs():
    first = DigitsDataModule(batch_size=32, seed=1)
    again = DigitsDataModule(batch_size=32, seed=1)
    first.setup("fit")
    loader = first.train_dataloader()
    epoch_a, epoch_b = list(loader), list(loader)
    assert torch.equal(epoch_a[0], batches(again)[0])
    assert not torch.equal(epoch_a[0], epoch_b[0])
    assert not torch.equal(epoch_a[0], batches(DigitsDataModule(batch_size=32, seed=2))[0])
