"""Stacked digits, the mode-coverage benchmark: three digits as R, G, B (1,000 modes), and
`modes` / `mode_kl` read channel by channel, in src.evaluate and as val/* metrics."""

import json
import math

import torch
from torch import nn

from src.data.digits import Digits
from src.data.stacked import StackedDigits
from src.metrics.quality import ModeCoverage
from tests import fixtures
from tests.conftest import TINY, run_cli, run_entry


def test_each_channel_is_one_source_digit_and_the_label_is_the_mode():
    data = StackedDigits(image_size=16, channels=3, num_images=3000)
    data.setup("fit")
    source = Digits(image_size=16)
    source.setup("fit")
    digits, labels = source.images, source.targets()
    images, modes = data.images, data.targets()
    assert images.shape == (3000, 3, 16, 16) and images.dtype == torch.uint8
    assert len(data.class_names()) == 1000
    for i in range(0, 3000, 397):  # each channel is some bundled digit, and the mode says which
        found = [(digits == images[i, c]).flatten(1).all(1).nonzero().flatten() for c in range(3)]
        assert all(len(f) for f in found)
        assert int(modes[i]) in {100 * int(labels[a]) + 10 * int(labels[b]) + int(labels[c])
                                 for a in found[0] for b in found[1] for c in found[2]}  # fmt: skip
    counts = torch.bincount(modes, minlength=1000)
    assert (counts > 0).sum() >= 940  # 3,000 draws of 1,000 equally likely modes: ~950 appear
    again = StackedDigits(image_size=16, channels=3, num_images=3000, seed=7)
    again.setup("fit")
    assert torch.equal(again.images, images)  # stack_seed, not the run's seed, fixes the draw


class ChannelMean(nn.Module):
    """A stand-in classifier of stacks: a channel whose mean is d/5 - 1 reads as digit d."""

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        digits = ((images.mean(dim=(2, 3)) + 1) * 5).round().long().clamp(0, 9)
        return nn.functional.one_hot(digits @ torch.tensor([100, 10, 1]), 1000).double()


def stacks(modes: list[int]) -> torch.Tensor:
    digits = torch.tensor([[m // 100, m // 10 % 10, m % 10] for m in modes]).double()
    return (digits / 5 - 1).view(-1, 3, 1, 1).expand(-1, 3, 4, 4)


def test_modes_and_mode_kl_against_a_hand_computation():
    metric = ModeCoverage(ChannelMean(), 1000)
    metric.update(stacks([0, 0, 123, 999]), real=False)
    metric.update(stacks([123, 0]), real=False)
    metric.update(stacks(list(range(1000))), real=True)  # reference images: not counted
    values = metric.compute()
    shares = [3 / 6, 2 / 6, 1 / 6]  # modes 000 x3, 123 x2, 999 x1
    assert values["modes"] == 3
    assert math.isclose(float(values["mode_kl"]), sum(p * math.log(p * 1000) for p in shares))
    uniform = ModeCoverage(ChannelMean(), 1000)
    uniform.update(stacks(list(range(1000))), real=False)
    assert uniform.compute()["modes"] == 1000 and abs(float(uniform.compute()["mode_kl"])) < 1e-9


def test_stacked_digits_trains_and_evaluate_reports_modes_beside_the_floor(tmp_path):
    run_dir = tmp_path / "run"
    run_cli(
        "data=stacked_digits", "data.num_images=2000", "debug=fast", *TINY, "logger=csv",
        f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    out = tmp_path / "metrics.json"
    run_cli(
        f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", "n=500", "num_real=500",
        "domain_epochs=1", f"cache_dir={tmp_path / 'cache'}", f"out={out}", module="src.evaluate",
    )  # fmt: skip
    report = json.loads(out.read_text())
    for side in ("metrics", "real_vs_real"):
        assert 1 <= report[side]["modes"] <= 1000 and report[side]["mode_kl"] >= 0
    # the held-out real stacks cover far more modes than a 4-batch generator; the floor is
    # measured on as many images as were generated (500 of the 1,500 held out): modes grow
    # with the sample size (at most 500; ~1000 (1 - e^-0.5) = 393 for 1,000 uniform modes)
    assert report["real_vs_real"]["modes"] > 5 * report["metrics"]["modes"]
    assert 200 <= report["real_vs_real"]["modes"] <= 500


def test_stacked_mnist_reads_the_idx_files_and_needs_their_labels(tmp_path):
    root = fixtures.write_mnist(tmp_path / "with", labels=True)
    data = StackedDigits(root=str(root), source="mnist", image_size=16, channels=3,
                                   num_images=200)  # fmt: skip
    data.setup("fit")
    assert data.images.shape == (200, 3, 16, 16)
    bare = fixtures.write_mnist(tmp_path / "bare")
    status, err = run_entry("src.train", "data=stacked_mnist", f"data.root={bare}", "debug=fast",
                            *TINY, f"hydra.run.dir={tmp_path / 'run'}")  # fmt: skip
    assert status == 2 and "label files" in err.strip().splitlines()[-1]
    status, err = run_entry("src.train", "data=stacked_digits", "data.channels=1", "debug=fast",
                            *TINY, f"hydra.run.dir={tmp_path / 'run2'}")  # fmt: skip
    assert status == 2 and err.strip().splitlines()[-1].endswith(
        "data.channels=1: allowed for stacked: 3"
    )


def test_stacked_features_are_each_channels_digit_features_and_the_joint_class():
    from src.metrics.domain import ChannelFeatures, DomainCNN, DomainFeatures

    torch.manual_seed(0)
    net = DomainCNN(1, 10).eval()
    stacked, single = ChannelFeatures(net, 3), DomainFeatures(net)
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    features = stacked(images)
    assert features.shape == (4, 3 * 128)
    assert torch.allclose(features[:, 128:256], single(images[:, 1:2].clone()))
    joint = stacked.classify(images)
    digits = [single.classify(images[:, c : c + 1].clone()) for c in range(3)]
    expected = digits[0][:, 1] * digits[1][:, 2] * digits[2][:, 3]  # class 123
    assert joint.shape == (4, 1000) and torch.allclose(joint[:, 123], expected.float())
    assert torch.allclose(joint.sum(1), torch.ones(4))
