"""Sample quality during training: `val/fid`, `val/kid`, `val/precision`, `val/recall`, ...

Every `every_n_epochs` epochs the generator draws `num_samples` images from fixed latents
and they are compared with the run's own training data through the domain feature
extractor (src/metrics: a CNN trained on this dataset, not Inception; `val/fid` is that
domain FID). The extractor is trained or loaded from its cache at the first evaluation, and
the real images' features are computed once.

Under data parallelism the work is shared: every rank samples and featurises its slice of
the fixed latents with rank 0's generator (BatchNorm running statistics are per device, so
rank 0's, the ones checkpoints save, are broadcast first), the features are gathered, and
every rank computes the same metrics from all of them: the numbers a single process gets.
"""

import time

import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only

from src.metrics.evaluator import Evaluator
from src.utils.distributed import all_gather_rows, broadcast_from_rank0

LOGGED = {
    "fid_domain": "val/fid", "kid_domain": "val/kid", "precision": "val/precision",
    "recall": "val/recall", "density": "val/density", "coverage": "val/coverage",
    "class_coverage": "val/class_coverage", "class_accuracy": "val/class_accuracy",
    "intra_fid": "val/intra_fid", "intra_precision": "val/intra_precision",
    "intra_recall": "val/intra_recall",
}  # fmt: skip
LOWER_IS_BETTER = ("val/fid", "val/kid", "val/intra_fid")


class QualityMetrics(Callback):
    def __init__(
        self,
        every_n_epochs: int = 20,
        num_samples: int = 1000,
        num_real: int = 1000,
        domain_epochs: int = 4,
        cache_dir: str | None = None,
        seed: int = 0,
    ):
        self.every_n_epochs, self.num_samples, self.num_real = every_n_epochs, num_samples, num_real
        self.domain_epochs, self.cache_dir, self.seed = domain_epochs, cache_dir, seed
        self.evaluator: Evaluator | None = None
        self.seconds = {"setup": 0.0, "evaluations": 0.0}  # what measuring cost this run
        self.evaluations = 0

    @rank_zero_only
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """W&B plots val/* against the epoch and keeps each one's best value in the run
        summary (val/fid and val/kid: min; the others: max)."""
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger) and self.every_n_epochs > 0:
                logger.experiment.define_metric("epoch")
                for name in LOGGED.values():
                    goal = "min" if name in LOWER_IS_BETTER else "max"
                    logger.experiment.define_metric(name, step_metric="epoch", summary=goal)

    def due(self, trainer: Trainer) -> bool:
        epoch = trainer.current_epoch + 1
        return self.every_n_epochs > 0 and (
            epoch % self.every_n_epochs == 0 or epoch == trainer.max_epochs
        )

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.due(trainer):
            return
        world, rank = trainer.world_size, trainer.global_rank
        start = time.perf_counter()
        if self.evaluator is None:
            # Rank 0 trains (or loads) the domain model and caches it; the others then load it.
            if rank > 0:
                trainer.strategy.barrier("domain_model")
            self.evaluator = Evaluator(
                trainer.datamodule, self.num_real, self.domain_epochs, self.cache_dir
            )
            if rank == 0 and world > 1:
                trainer.strategy.barrier("domain_model")
            self.seconds["setup"] = time.perf_counter() - start
            start = time.perf_counter()
        generator = pl_module.sampling_generator
        broadcast_from_rank0(list(generator.buffers()))
        rng = torch.Generator().manual_seed(self.seed)  # the same latents at every evaluation
        z = pl_module.generator.sample_latent(self.num_samples, generator=rng)
        # conditional: every class equally often, in a fixed order
        labels = torch.arange(self.num_samples) % max(1, pl_module.hparams.num_classes)
        shards, label_shards = z.tensor_split(world), labels.tensor_split(world)
        samples = torch.cat(
            [
                pl_module.sample(chunk, label_chunk).float().cpu()
                for chunk, label_chunk in zip(
                    shards[rank].split(500), label_shards[rank].split(500), strict=True
                )
            ]
        )
        features, probs = self.evaluator.features(samples)
        counts = [len(shard) for shard in shards]
        metrics = self.evaluator.evaluate_features(
            all_gather_rows(features.to(pl_module.device), counts).cpu(),
            all_gather_rows(probs.to(pl_module.device), counts).cpu(),
            labels if pl_module.conditional else None,
        )
        # Every rank has the same numbers, so a monitored val/fid exists everywhere.
        pl_module.log_dict(
            {LOGGED[k]: float(v) for k, v in metrics.items() if k in LOGGED},
            on_step=False, on_epoch=True, prog_bar=False,
        )  # fmt: skip
        self.seconds["evaluations"] += time.perf_counter() - start
        self.evaluations += 1

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.evaluations:
            rank_zero_info(
                f"Quality metrics took {sum(self.seconds.values()):.1f} s: set-up (domain "
                f"feature extractor, trained or loaded from its cache, and the real images' "
                f"features) {self.seconds['setup']:.1f} s, {self.evaluations} evaluations "
                f"{self.seconds['evaluations']:.1f} s"
            )
