import torch

from src.models.augment import Cutout, Translation, diff_augment
from tests.helpers import options, policies


def test_translation_shifts_whole_images_by_whole_pixels():
    torch.manual_seed(0)
    images = -torch.ones(16, 1, 32, 32)
    images[:, :, 12:20, 12:20] = 1  # a centred square
    moved = Translation(ratio=0.125)(images)
    assert moved.shape == images.shape
    for before, after in zip(images, moved, strict=True):
        assert after.sum() == before.sum()  # same square, background filled from the border
        rows, cols = torch.nonzero(after[0] > 0, as_tuple=True)
        assert 8 <= rows.min() <= 16 and 8 <= cols.min() <= 16  # shift of at most 4 px
    assert not torch.equal(moved, images)


def test_cutout_blanks_a_square_of_the_given_size():
    images = torch.ones(8, 3, 16, 16)
    out = Cutout(ratio=0.5)(images)
    assert ((out == -1).sum(dim=(1, 2, 3)) == 3 * 8 * 8).all()


def test_every_policy_is_differentiable_and_keeps_the_shape():
    for name in options("model/augmentation/policies"):
        images = torch.randn(4, 3, 16, 16, requires_grad=True)
        out = diff_augment(images, policies(name))
        assert out.shape == images.shape, name
        out.square().sum().backward()
        assert images.grad is not None and images.grad.abs().sum() > 0, name
