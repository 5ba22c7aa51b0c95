"""Sample-quality metrics: FID/KID (torchmetrics), precision/recall, density/coverage."""
