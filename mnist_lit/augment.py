"""Batched augmentation of image tensors on their own device: one affine warp per batch, optional elastic distortion,
and the changes people's images bring (stroke width, blur, low resolution, the European 1 and 7)."""
import math

import numpy as np
import torch
import torch.nn.functional as F

# data.augment=NAME picks one of these; data.augment={translate:2,degrees:10,...} sets them directly.
PRESETS = {
    "none": None,
    "affine": dict(translate=2.0, degrees=10.0, scale=0.1, shear=0.1),
    "elastic": dict(translate=2.0, degrees=10.0, scale=0.1, shear=0.1, elastic_alpha=34.0, elastic_sigma=4.0),
    # What the reader meets in people's images, after mnist_lit.preprocess has framed them (experiment=reader).
    "reader": dict(translate=2.0, degrees=12.0, scale=0.12, shear=0.15, elastic_alpha=16.0, elastic_sigma=4.0,
                   elastic_grid=4, stroke=0.3, blur=0.1, lowres=0.1, styles=0.4),
}


class Augment:
    """Random translation, rotation, scale and shear (and elastic distortion) of a (B, C, H, W) float batch.

    Each image gets its own transform; all of them are applied by one affine_grid + grid_sample call.
    The random draws are a function of (seed, epoch, rank), so a run is reproducible and a resumed run
    sees the transforms it would have seen.
    """

    def __init__(self, translate=0.0, degrees=0.0, scale=0.0, shear=0.0, elastic_alpha=0.0, elastic_sigma=4.0,
                 elastic_grid=0, stroke=0.0, blur=0.0, lowres=0.0, styles=0.0, gaps=0.0, seed=0):
        self.translate, self.degrees, self.scale, self.shear = translate, degrees, scale, shear
        # Simard et al. (2003): a uniform random displacement field smoothed by a Gaussian of elastic_sigma
        # pixels, scaled by elastic_alpha pixels. elastic_grid=N draws the field on an NxN grid of control points
        # and enlarges it instead: as smooth, at a fraction of the cost.
        self.elastic_alpha, self.elastic_sigma, self.elastic_grid = elastic_alpha, elastic_sigma, elastic_grid
        # stroke: strokes up to this far (in pixels, about) thinner or thicker; blur: the fraction of images
        # blurred and made crisp again at a random level (as mnist_lit.preprocess binarises a blurred photo: bolder
        # or thinner, holes filled); lowres: the fraction drawn at 8-16 px and enlarged smoothly (as preprocess
        # draws a character a few pixels tall); styles: the fraction of ones given a flag (and sometimes a foot),
        # and of sevens given a bar across the stem; gaps: the fraction whose strokes a pen running dry breaks.
        self.stroke, self.blur, self.lowres, self.styles, self.gaps = stroke, blur, lowres, styles, gaps
        self.seed = seed
        self._key, self._generator, self._matrices = None, None, {}

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

    def __call__(self, x: torch.Tensor, epoch=0, rank=0, y=None, classes=None) -> torch.Tensor:
        """Augments a batch; y and the class names are needed for styles (which ones are 1s and 7s)."""
        g = self.generator(x.device, epoch, rank)
        if self.styles and y is not None and classes is not None:
            x = self._styles(x, y, classes, g)
        x = self._warp(x, g)
        if self.blur or self.lowres:
            x = self._degrade(x, g)
        if self.stroke:
            x = self._stroke(x, g)
        if self.gaps:
            x = self._gaps(x, g)
        return x

    def _warp(self, x, g):
        """The affine transform and the elastic field, in one grid_sample."""
        if not (self.translate or self.degrees or self.scale or self.shear or self.elastic_alpha):
            return x
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
        # F.affine_grid's grid as one batched matrix product (it costs more than grid_sample itself on the CPU), laid
        # out (B, 2, H*W) as the elastic field is.
        grid = theta @ self._matrix("pixels", h, w, x)
        if self.elastic_alpha:
            grid = grid + self._elastic_field(b, h, w, g, x).view(b, 2, h * w)
        grid = grid.view(b, 2, h, w).permute(0, 2, 3, 1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def _matrix(self, kind, h, w, x):
        """A constant matrix for images of h x w on x's device, made once: the pixels' (x, y, 1) in grid units
        (3, h*w), or the elastic field's per-axis enlargement of its random values ('rows': h, 'cols': w)."""
        key = (kind, h, w, x.device, x.dtype)
        if key not in self._matrices:
            if kind == "pixels":  # pixel centres, as affine_grid with align_corners=False
                ys, xs = ((torch.arange(n, dtype=torch.float64) * 2 + 1) / n - 1 for n in (h, w))
                m = torch.stack([xs.repeat(h), ys.repeat_interleave(w), torch.ones(h * w, dtype=torch.float64)])
            else:
                m = self._enlarge(h if kind == "rows" else w)
            self._matrices[key] = m.to(x.device, x.dtype)
        return self._matrices[key]

    def _enlarge(self, n):
        """(n, m): the elastic field along one axis of n pixels from its m random values."""
        if self.elastic_grid:  # bicubic through m control points, as F.interpolate(align_corners=True) would
            m = self.elastic_grid
            eye = torch.eye(m, dtype=torch.float64).view(m, 1, m, 1)
            return F.interpolate(eye, size=(n, 1), mode="bicubic", align_corners=True)[:, 0, :, 0].T
        # Simard's field: uniform noise blurred by a Gaussian of elastic_sigma pixels (borders replicated). The noise
        # is drawn on a lattice elastic_sigma pixels apart, each value held over its cell: a Gaussian this wide
        # passes almost nothing finer (0.7% at the lattice's limit), and random numbers are the costliest part
        # on a CPU. Scaled to the variance per-pixel noise gives away from the borders.
        step = max(1, round(self.elastic_sigma))
        radius = max(1, round(2 * self.elastic_sigma))
        r = torch.arange(-radius, radius + 1, dtype=torch.float64)
        k = torch.exp(-r ** 2 / (2 * self.elastic_sigma ** 2))
        k = k / k.sum()
        cells = (torch.arange(n).view(-1, 1) + r.long().view(1, -1)).clamp(0, n - 1) // step
        blur = torch.zeros(n, -(-n // step), dtype=torch.float64).scatter_add_(1, cells, k.expand(n, -1))
        inner = blur[n // 2 - step // 2: n // 2 - step // 2 + step]  # one lattice cell's rows, mid-image
        return blur * k.norm() / inner.norm(dim=1).mean()

    def _elastic_field(self, b, h, w, g, x):
        """A smooth random displacement field (B, 2, H, W) in grid units: random values enlarged by one small
        matrix product per axis."""
        rows, cols = self._matrix("rows", h, w, x), self._matrix("cols", h, w, x)
        shape = (b, 2, rows.shape[1], cols.shape[1])
        if self.elastic_grid:
            # The control points' spread is set so that the displacements spread as the Gaussian field's do
            # (measured: a standard deviation of 2.3 px for alpha 34, sigma 4, both ways).
            spread = 0.34 * self.elastic_alpha / self.elastic_sigma
            noise = torch.randn(shape, generator=g, device=x.device, dtype=x.dtype)
        else:
            spread = self.elastic_alpha
            noise = torch.rand(shape, generator=g, device=x.device, dtype=x.dtype).mul_(2).sub_(1)
        # Pixels to grid units (2 / size per pixel), on the few random values rather than the whole field.
        units = torch.tensor([2 * spread / w, 2 * spread / h], device=x.device, dtype=x.dtype).view(1, 2, 1, 1)
        return rows @ (noise * units) @ cols.T

    def _amounts(self, x, g, low, high):
        """One uniform draw in [low, high) per image, shaped to broadcast over (B, C, H, W)."""
        return torch.empty(len(x), 1, 1, 1, device=x.device, dtype=x.dtype).uniform_(low, high, generator=g)

    def _stroke(self, x, g):
        """Strokes thicker or thinner by up to `stroke` pixels: a blend towards a 3x3 dilation or erosion."""
        t = self._amounts(x, g, -self.stroke, self.stroke)
        grown = F.max_pool2d(x, 3, 1, 1)
        shrunk = -F.max_pool2d(-x, 3, 1, 1)
        x = torch.where(t > 0, x + t * (grown - x), x + t.neg() * (shrunk - x))
        # Thinned strokes fade: their cores are brought back to full ink, as preprocess draws every character.
        return x / x.amax((1, 2, 3), keepdim=True).clamp(0.3, 1)

    def _degrade(self, x, g):
        """Blurs a `blur` fraction of the images (sigma 0.5-1.5 px) and makes them crisp again at a level in
        0.3-0.6; draws a `lowres` fraction at 11-22 px canvases (characters of 8-16 px) and enlarges them again."""
        b, c, h, w = x.shape
        u = torch.rand(b, generator=g, device=x.device)
        blurred, small = u < self.blur, (u >= self.blur) & (u < self.blur + self.lowres)
        out = x.clone()
        if blurred.any():
            idx = blurred.nonzero().flatten()
            sigma = torch.empty(len(idx), 1, device=x.device, dtype=x.dtype).uniform_(0.5, 1.5, generator=g)
            r = torch.arange(-3, 4, device=x.device, dtype=x.dtype)
            k = torch.exp(-r.view(1, -1) ** 2 / (2 * sigma ** 2))
            k = k / k.sum(1, keepdim=True)  # (N, 7): separable, one grouped convolution per axis for all of them
            y = F.conv2d(x[idx].view(1, -1, h, w), k.view(-1, 1, 1, 7).repeat_interleave(c, 0), padding=(0, 3),
                         groups=len(idx) * c)
            y = F.conv2d(y, k.view(-1, 1, 7, 1).repeat_interleave(c, 0), padding=(3, 0), groups=len(idx) * c)
            out[idx] = y.view(len(idx), c, h, w)
        level = torch.empty(b, 1, 1, 1, device=x.device, dtype=x.dtype).uniform_(0.3, 0.6, generator=g)
        out = torch.where(blurred.view(b, 1, 1, 1), ((out - level) * 4 + 0.5).clamp_(0, 1), out)
        sizes = torch.randint(11, 23, (b,), generator=g, device=x.device)
        for n in sizes[small].unique().tolist():  # a dozen sizes at most: a few small ops each
            idx = (small & (sizes == n)).nonzero().flatten()
            low = F.interpolate(x[idx], size=(n, n), mode="area")
            up = F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False).clamp_(0, 1)
            out[idx] = up / up.amax((1, 2, 3), keepdim=True).clamp(min=0.3)  # full-strength ink, as preprocess
        return out

    def _gaps(self, x, g):
        """Breaks the strokes of a `gaps` fraction of the images: a coarse random field, enlarged smoothly, erases
        the 10-30% of the canvas where it is lowest (short gaps of a few pixels along each stroke)."""
        b, c, h, w = x.shape
        idx = (torch.rand(b, generator=g, device=x.device) < self.gaps).nonzero().flatten()
        if not len(idx):
            return x
        field = torch.randn(len(idx), 1, 8, 8, generator=g, device=x.device, dtype=x.dtype)
        field = F.interpolate(field, size=(h, w), mode="bilinear", align_corners=False).flatten(1)
        share = torch.empty(len(idx), 1, device=x.device, dtype=x.dtype).uniform_(0.1, 0.3, generator=g)
        level = field.sort(1).values.gather(1, (share * h * w).long())
        out = x.clone()
        out[idx] = x[idx] * ((field - level) * 4).clamp(0, 1).view(len(idx), 1, h, w)  # soft-edged, as ink fades
        return out

    def _styles(self, x, y, classes, g):
        """Ones with a flag and often a foot, sevens with a bar across the stem, drawn in their own stroke width."""
        names = [str(c) for c in classes]
        if "1" not in names or "7" not in names:
            return x
        b, _, h, w = x.shape
        one, seven = y == names.index("1"), y == names.index("7")
        pick = (one | seven) & (torch.rand(b, generator=g, device=x.device) < self.styles)
        if not pick.any():
            return x
        idx = pick.nonzero().flatten()
        img, is_one = x[idx, 0], one[idx]
        ink = img > 0.5
        rows = torch.arange(h, device=x.device, dtype=x.dtype)
        cols = torch.arange(w, device=x.device, dtype=x.dtype)
        has = ink.any(2)
        top = torch.where(has, rows, torch.full_like(rows, h)).amin(1)
        bottom = torch.where(has, rows, torch.full_like(rows, -1)).amax(1)
        tall = (bottom - top).clamp(min=4)

        def centre(row):  # the ink's mean column on each image's given row
            r = ink[torch.arange(len(idx), device=x.device), row.long().clamp(0, h - 1)].to(x.dtype)
            return (r * cols).sum(1) / r.sum(1).clamp(min=1)

        u = torch.rand(len(idx), 4, generator=g, device=x.device, dtype=x.dtype)
        width = (img.sum((1, 2)) / (tall * 2.2)).clamp(1.5, 3.5)  # a one's ink is about 2.2 heights of stroke
        # Ones: a flag from the top, down and to the left, 0.15-0.4 of the height each way.
        tx, ty = centre(top + 1), top + 0.5
        flag = (tx, ty, tx - (0.15 + 0.25 * u[:, 0]) * tall, ty + (0.15 + 0.25 * u[:, 1]) * tall)
        # Sevens: a bar across the stem, a little below half-way.
        my = top + (0.45 + 0.15 * u[:, 0]) * tall
        mx, half = centre(my), (0.15 + 0.15 * u[:, 1]) * tall
        bar = (mx - half, my, mx + half, my)
        ends = [torch.where(is_one, f, s) for f, s in zip(flag, bar)]
        strokes = self._segment(ends, width, h, w)
        # A foot under most of the flagged ones.
        bx, fh = centre(bottom - 1), (0.15 + 0.15 * u[:, 2]) * tall
        foot = self._segment((bx - fh, bottom - 0.5, bx + fh, bottom - 0.5), width, h, w)
        strokes = torch.maximum(strokes, foot * (is_one & (u[:, 3] < 0.6)).to(x.dtype).view(-1, 1, 1))
        out = x.clone()
        out[idx, 0] = torch.maximum(img, strokes)
        return out

    @staticmethod
    def _segment(ends, width, h, w):
        """Anti-aliased line segments (x0, y0) -> (x1, y1), one per image, of the given widths: (N, H, W)."""
        x0, y0, x1, y1 = (e.view(-1, 1, 1) for e in ends)
        yy = torch.arange(h, device=x0.device, dtype=x0.dtype).view(1, -1, 1)
        xx = torch.arange(w, device=x0.device, dtype=x0.dtype).view(1, 1, -1)
        dx, dy = x1 - x0, y1 - y0
        t = (((xx - x0) * dx + (yy - y0) * dy) / (dx * dx + dy * dy).clamp(min=1e-6)).clamp(0, 1)
        dist = torch.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy))
        return (width.view(-1, 1, 1) / 2 + 0.5 - dist).clamp(0, 1)


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
                         f"scale, shear, elastic_alpha, elastic_sigma, elastic_grid, stroke, blur, lowres, "
                         f"styles, gaps") from None
