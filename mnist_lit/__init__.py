"""mnist_lit: read handwriting with PyTorch Lightning and Hydra."""
