"""Networks: plain nn.Modules that take images in [0, 1] and normalise them themselves."""
import math

import torch
from torch import nn


class Normalize(nn.Module):
    """(x - mean) / std with the dataset's statistics, so exported models need no preprocessing."""

    def __init__(self, mean: float, std: float):
        super().__init__()
        # Not persistent: the values live in the hyperparameters, not twice in the checkpoint.
        self.register_buffer("mean", torch.tensor(float(mean)), persistent=False)
        self.register_buffer("std", torch.tensor(float(std)), persistent=False)

    def forward(self, x):
        return (x - self.mean) / self.std


class Dropout(nn.Dropout):
    """nn.Dropout, with masks drawn 4x faster on the CPU; elsewhere, and in eval mode, nn.Dropout itself."""

    def forward(self, x):
        k = round(self.p * 65536)
        if not (self.training and 0 < k < 65536 and x.device.type == "cpu"):
            return super().forward(x)
        # torch's CPU dropout draws a 32-bit random number per element: about a fifth of the default MLP's training
        # step. Here one 64-bit draw gives four 16-bit integers; an element is dropped when its integer falls in
        # the lowest k of 65536 values (p to within 1e-5). Seeded by torch.manual_seed, like nn.Dropout.
        n = x.numel()
        bits = torch.randint(-2**63, 2**63 - 1, (-(-n // 4),), dtype=torch.int64).view(torch.int16)[:n]
        mask = (bits >= k - 32768).view(x.shape).to(x.dtype).mul_(65536 / (65536 - k))
        return x * mask


class MLP(nn.Module):
    """The tutorial's 784-1024-512-256-10 MLP, with the ReLUs and dropout it left out."""

    def __init__(self, in_shape=(1, 28, 28), num_classes=10, hidden=(1024, 512, 256),
                 dropout=0.5, mean=0.0, std=1.0):
        super().__init__()
        self.in_shape = tuple(in_shape)  # what export and the model summary feed it
        layers = [Normalize(mean, std), nn.Flatten()]
        width = math.prod(in_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True), Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


class CNN(nn.Module):
    """A small VGG-style network: blocks of 3x3 conv + BatchNorm + ReLU, each block max-pooled, then a linear layer."""

    def __init__(self, in_shape=(1, 28, 28), num_classes=10, channels=(32, 64, 128), convs_per_block=2,
                 dropout=0.0, mean=0.0, std=1.0, stem_stride=1, pool_first=False):
        # stem_stride=2: the first convolution is 5x5 with stride 2, so no layer works at full resolution.
        # pool_first: each block max-pools right after its last convolution, before BatchNorm and ReLU (max-pool
        # commutes with ReLU), so they work on a quarter of the pixels: on the CPU most of a small CNN's time.
        super().__init__()
        self.in_shape = tuple(in_shape)
        layers = [Normalize(mean, std)]
        width, (size_h, size_w) = in_shape[0], in_shape[1:]
        for i, c in enumerate(channels):
            for j in range(convs_per_block):
                stride = stem_stride if i == j == 0 else 1
                # No conv bias: the BatchNorm after it has one.
                conv = nn.Conv2d(width, c, 2 * stride + 1, stride, padding=stride, bias=False)
                size_h, size_w = -(-size_h // stride), -(-size_w // stride)
                last = pool_first and j == convs_per_block - 1
                layers += [conv, nn.MaxPool2d(2)] if last else [conv]
                layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
                width = c
            if not pool_first:
                layers.append(nn.MaxPool2d(2))
            size_h, size_w = size_h // 2, size_w // 2
        layers += [nn.Flatten(), Dropout(dropout), nn.Linear(width * size_h * size_w, num_classes)]
        self.layers = nn.Sequential(*layers)
        # channels_last weights make convolutions about 1.3x faster on CPU (oneDNN) and use GPU tensor cores;
        # loading a state_dict keeps this layout.
        self.to(memory_format=torch.channels_last)

    def forward(self, x):
        return self.layers(x)


def build(cfg: dict) -> nn.Module:
    """Builds a network of this module from its config, e.g. {'_target_': 'mnist_lit.models.MLP', ...}."""
    cfg = dict(cfg)
    target = cfg.pop("_target_", "")
    module, _, name = target.rpartition(".")
    cls = globals().get(name)
    # Checkpoints name their network: only classes defined here may be built, nothing imported.
    if module != __name__ or not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"unknown network {target!r}: use one of {__name__}.MLP, {__name__}.CNN")
    return cls(**cfg)
