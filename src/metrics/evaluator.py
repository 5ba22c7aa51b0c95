"""Sample quality of a generator against its dataset, through the domain feature extractor:
`SampleQuality` during training (Lightning's validation loop), `Evaluator` for src.evaluate."""

import time
from pathlib import Path
from typing import Any

import torch
import torchmetrics
from torchmetrics import MetricCollection
from torchmetrics.image.fid import FrechetInceptionDistance

from src.data.base import ImageSource, cache_dir, to_float
from src.errors import integer
from src.metrics import stats
from src.metrics.domain import VERSION, DomainModel, load_or_train
from src.metrics.inception import InceptionFeatures, Weights
from src.metrics.quality import KID, flatten
from src.metrics.stats import weights_hash


def domain_model(
    data: ImageSource, epochs: int = 4, cache: str | Path | None = None
) -> DomainModel:
    """The domain CNN of `data.metric_source()` (the data itself, or for stacked digits the
    single digits their channels hold): loaded from the cache, or trained on its metric pool."""
    source = data.metric_source()
    pool, targets = source.metric_pool(), source.targets()
    labels = targets[pool] if targets is not None and source.images is not None else None
    fingerprint = f"{type(source).__name__}|{source.fingerprint()}"
    folder = cache_dir(cache, None)
    return load_or_train(to_float(source.fetch(pool)), labels, fingerprint, folder, epochs)


class SampleQuality:
    """The validation metrics of a run (`model.metrics`): the extractor is trained or loaded at
    the first evaluation, then the reference images are featurised once."""

    def __init__(self, domain_epochs: int = 4, cache_dir: str | None = None):
        self.domain_epochs = integer("model.metrics.domain_epochs", domain_epochs)
        self.cache_dir = cache_dir
        self.metrics: MetricCollection | None = None
        self.needs_real = True
        self.seconds = {"setup": 0.0, "evaluations": 0.0}  # what measuring cost this run
        self.evaluations, self._start = 0, 0.0

    def start(self, trainer: Any, conditional: bool) -> None:
        """Builds the metrics on the first call (rank 0 trains and caches the extractor, the
        other ranks then load it); starts the clock."""
        self._start = time.perf_counter()
        if self.metrics is not None:
            return
        strategy = trainer.strategy
        with torch.inference_mode(False), torch.enable_grad():  # may train the extractor
            if trainer.global_rank > 0:
                strategy.barrier("domain_model")
            data = trainer.datamodule.source
            model = domain_model(data, self.domain_epochs, self.cache_dir)
            if trainer.global_rank == 0 and trainer.world_size > 1:
                strategy.barrier("domain_model")
        self.metrics = data.quality_metrics(model, conditional).to(strategy.root_device)
        self.seconds["setup"] = time.perf_counter() - self._start
        self._start = time.perf_counter()

    def update(self, images: torch.Tensor, real: bool, labels: torch.Tensor | None) -> None:
        self.metrics.update(images, real=real, labels=labels)

    def finish(self) -> dict[str, float]:
        """This evaluation's values (every rank gets the same), and the metrics reset."""
        values = flatten(self.metrics.compute())
        self.metrics.reset()
        self.needs_real = False
        self.seconds["evaluations"] += time.perf_counter() - self._start
        self.evaluations += 1
        return values

    def cost(self) -> str:
        return (
            f"Quality metrics took {sum(self.seconds.values()):.1f} s: set-up (domain feature "
            f"extractor, trained or loaded from its cache) {self.seconds['setup']:.1f} s, "
            f"{self.evaluations} evaluations {self.seconds['evaluations']:.1f} s"
        )


class Evaluator:
    """The metrics of generated images against `num_real` reference images of the data, and
    the same for the rest of the pool (the real-vs-real floor); Inception-V3 FID/KID too with
    `inception` weights (checked by `src.metrics.inception.find_weights`)."""

    def __init__(
        self,
        data: ImageSource,
        num_real: int = 1000,
        epochs: int = 4,
        cache: str | Path | None = None,
        inception: Weights | None = None,
        ref_stats: Path | None = None,
    ):
        self.data, self.model = data, domain_model(data, epochs, cache)
        reference, held_out = data.evaluation_split(num_real)
        self.real_labels = self.held_out_labels = None
        targets = data.targets() if data.images is not None else None
        if targets is not None:
            self.real_labels, self.held_out_labels = targets[reference], targets[held_out]
        self.metrics = data.quality_metrics(self.model, targets is not None)
        if inception:  # ~1 s per 10 images on a CPU: only where asked for (src.evaluate)
            features = InceptionFeatures(inception)
            self.metrics.add_metrics({
                "fid_inception": FrechetInceptionDistance(features, reset_real_features=False),
                "kid_inception": KID(features, reset_real_features=False),
            })  # fmt: skip
        # the statistics' extractor: Inception when its weights are given (pytorch-fid's)
        self.stats_metric = "fid_inception" if inception else "fid"
        extractor = self.metrics[self.stats_metric].inception
        self.extractor = {
            "name": "inception-v3-fid" if inception else f"domain-cnn-v{VERSION}",
            "sha256": inception.sha256 if inception else weights_hash(self.model.net),
        }  # fmt: skip
        self.reference = None if ref_stats is None else stats.load(
            ref_stats, self.extractor["name"], extractor.num_features)  # fmt: skip
        self.held_out = to_float(data.fetch(held_out))
        if self.reference is None or inception:
            self.real = to_float(data.fetch(reference))
            self._update(self.real, True, self.real_labels)
        else:  # the domain reference from the file: no real image is featurised for it
            self.use_reference(self.reference, num_real)

    def use_reference(self, reference: dict, num_real: int) -> None:
        """The reference side of the domain metrics from statistics: FID from mu and sigma,
        KID and precision/recall/density/coverage from the features when the file has them;
        what needs images (per-class, conditional) is left out."""
        stats.set_reference(self.metrics["fid"], reference["mu"], reference["sigma"],
                            reference["n"])  # fmt: skip
        features = reference["features"]
        for name in ("kid", "prdc"):
            if features is not None:
                self.metrics[name].real_features.append(features.double())
            else:
                self.metrics.pop(name)
        if "conditional" in self.metrics:
            self.metrics.pop("conditional")
        self.real, self.real_labels = None, None

    def save_stats(self, path: Path, num_real: int) -> dict:
        """The reference set's statistics of the stats extractor, with their provenance."""
        data, h = self.data, self.data.hparams
        provenance = {
            "dataset": {"class": type(data).__name__, "root": h.root,
                        "fingerprint": data.fingerprint()},
            "split": f"the first {num_real} images of the metric pool in its fixed order "
                     "(seed 0; the rest is the real-vs-real floor's)",
            "resolution": h.image_size, "channels": h.channels,
            "count": int(self.metrics[self.stats_metric].real_features_num_samples),
            "extractor": self.extractor,
            "versions": {"torch": torch.__version__, "torchmetrics": torchmetrics.__version__},
        }  # fmt: skip
        real = self.metrics["prdc"].real_features if self.stats_metric == "fid" else []
        features = torch.cat(list(real)) if len(real) else None
        stats.save(path, self.metrics[self.stats_metric], features, provenance)
        return provenance

    def _update(self, images: torch.Tensor, real: bool, labels: torch.Tensor | None) -> None:
        for start in range(0, len(images), 500):
            chunk = labels[start : start + 500] if labels is not None else None
            self.metrics.update(images[start : start + 500], real=real, labels=chunk)

    def evaluate(self, fake: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, float]:
        """fid, kid, precision, recall, density, coverage (on the domain features); for labelled
        class metrics; with `labels` (the classes asked for) the class-conditional ones."""
        self.metrics.reset()
        self._update(fake, False, labels)
        return flatten(self.metrics.compute())

    def floor(self, n: int | None = None) -> dict[str, float] | None:
        """The metrics of (up to `n`, the generated sample's size) real images outside the
        reference set: the best a generator can expect at this sample size (None when every
        image is in the reference). Counts such as `modes` grow with n: compare equal sizes."""
        held_out, labels = self.held_out[:n], self.held_out_labels
        if len(held_out) < 2 * 5:
            return None
        return self.evaluate(held_out, labels[:n] if labels is not None else None)
