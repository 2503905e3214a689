"""Batched augmentation of image tensors on their own device: one affine warp per batch, optional elastic distortion."""
import math

import numpy as np
import torch
import torch.nn.functional as F

# data.augment=NAME picks one of these; data.augment={translate:2,degrees:10,...} sets them directly.
PRESETS = {
    "none": None,
    "affine": dict(translate=2.0, degrees=10.0, scale=0.1, shear=0.1),
    "elastic": dict(translate=2.0, degrees=10.0, scale=0.1, shear=0.1, elastic_alpha=34.0, elastic_sigma=4.0),
}


class Augment:
    """Random translation, rotation, scale and shear (and elastic distortion) of a (B, C, H, W) float batch.

    Each image gets its own transform; all of them are applied by one affine_grid + grid_sample call.
    The random draws are a function of (seed, epoch, rank), so a run is reproducible and a resumed run
    sees the transforms it would have seen.
    """

    def __init__(self, translate=0.0, degrees=0.0, scale=0.0, shear=0.0, elastic_alpha=0.0, elastic_sigma=4.0,
                 seed=0):
        self.translate, self.degrees, self.scale, self.shear = translate, degrees, scale, shear
        # Simard et al. (2003): a uniform random displacement field smoothed by a Gaussian of elastic_sigma
        # pixels, scaled by elastic_alpha pixels.
        self.elastic_alpha, self.elastic_sigma, self.seed = elastic_alpha, elastic_sigma, seed
        self._key, self._generator = None, None

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"Augment({args})"

    def generator(self, device, epoch=0, rank=0) -> torch.Generator:
        """The random stream for (seed, epoch, rank) on device: a new one each epoch, continued within it."""
        key = (torch.device(device), epoch, rank)
        if key != self._key:
            state = int(np.random.SeedSequence([self.seed, epoch, rank]).generate_state(1)[0])
            self._generator, self._key = torch.Generator(device).manual_seed(state), key
        return self._generator

    def __call__(self, x: torch.Tensor, epoch=0, rank=0) -> torch.Tensor:
        g = self.generator(x.device, epoch, rank)
        b, _, h, w = x.shape
        u = torch.rand(b, 6, generator=g, device=x.device, dtype=x.dtype).mul_(2).sub_(1)  # uniform in [-1, 1]
        angle = u[:, 0] * math.radians(self.degrees)
        sx, sy = 1 + u[:, 1] * self.scale, 1 + u[:, 2] * self.scale
        shear = u[:, 3] * self.shear
        cos, sin = angle.cos(), angle.sin()
        # theta maps output to input coordinates in [-1, 1]: rotation @ shear @ scale, then a shift given in
        # pixels (2 / size per pixel).
        theta = torch.stack([
            torch.stack([cos * sx, (cos * shear - sin) * sy, u[:, 4] * (2 * self.translate / w)], 1),
            torch.stack([sin * sx, (sin * shear + cos) * sy, u[:, 5] * (2 * self.translate / h)], 1),
        ], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        if self.elastic_alpha:
            grid = grid + self._elastic_field(b, h, w, g, x)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def _elastic_field(self, b, h, w, g, x):
        """A smooth random displacement field (B, H, W, 2) in grid units."""
        field = torch.rand(b * 2, 1, h, w, generator=g, device=x.device, dtype=x.dtype).mul_(2).sub_(1)
        radius = max(1, round(2 * self.elastic_sigma))
        r = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
        k = torch.exp(-r ** 2 / (2 * self.elastic_sigma ** 2))
        k = k / k.sum()
        # A separable Gaussian blur: one pass along each axis.
        field = F.conv2d(F.pad(field, (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
        field = F.conv2d(F.pad(field, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1))
        field = field.view(b, 2, h, w).permute(0, 2, 3, 1) * self.elastic_alpha
        return field * torch.tensor([2 / w, 2 / h], device=x.device, dtype=x.dtype)


def make(augment, seed=0):
    """An Augment from data.augment: None/'none' (off), a preset name, or a dict of Augment's settings."""
    if isinstance(augment, str):
        if augment not in PRESETS:
            raise ValueError(f"unknown data.augment={augment!r}: use one of {', '.join(PRESETS)}, "
                             f"or settings such as data.augment={{translate:2,degrees:10}}")
        augment = PRESETS[augment]
    if not augment:
        return None
    try:
        return Augment(**dict(augment), seed=seed)
    except TypeError as e:
        raise ValueError(f"bad data.augment={dict(augment)} ({e}): the settings are translate, degrees, "
                         f"scale, shear, elastic_alpha, elastic_sigma") from None
