"""convgan: a PyTorch Lightning + Hydra template for convolutional GANs."""
