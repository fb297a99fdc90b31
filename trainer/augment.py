"""Training augmentation, a whole batch at a time on the training device.

`standard` is the metric-learning benchmarks' recipe: torchvision's RandomResizedCrop
(scale 0.16-1, aspect ratio 3/4-4/3, up to 10 draws then a centre crop) to image_size, then a
horizontal flip with probability 0.5. The crops are drawn on the CPU from a generator seeded by
(job seed, step), so a batch's augmentation is fixed by the seed, survives a resume unchanged
and leaves the global random state (batch sampling) alone. All crops of a batch are resampled
in one `roi_align` call, bilinear with one sample per output pixel: a crop is at most the stored side,
256/224 of image_size, so no output pixel spans more than 1.14 stored pixels and more samples would
only smooth (they cost 3x the time on a CPU: docs/performance.md).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchvision.ops import roi_align

from app.spec import JobSpec
from trainer.data import image_size

SCALE = (0.16, 1.0)
RATIO = (3 / 4, 4 / 3)
FLIP_P = 0.5
TRIES = 10


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def crop_boxes(n: int, h: int, w: int, g: torch.Generator) -> torch.Tensor:
    """(n, 4) integer boxes x1, y1, x2, y2 with RandomResizedCrop's distribution."""
    area = torch.empty(n, TRIES).uniform_(*SCALE, generator=g) * (h * w)
    aspect = torch.exp(torch.empty(n, TRIES).uniform_(math.log(RATIO[0]), math.log(RATIO[1]), generator=g))
    cw = torch.sqrt(area * aspect).round()
    ch = torch.sqrt(area / aspect).round()
    ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = ok.float().argmax(dim=1, keepdim=True)
    cw, ch = cw.gather(1, first).squeeze(1), ch.gather(1, first).squeeze(1)
    # No draw fits (10 misses): the whole image, clamped to the ratio range, centred.
    miss = ~ok.any(dim=1)
    in_ratio = w / h
    fw = float(w) if RATIO[0] <= in_ratio <= RATIO[1] else (float(w) if in_ratio < RATIO[0] else round(h * RATIO[1]))
    fh = float(h) if RATIO[0] <= in_ratio <= RATIO[1] else (round(w / RATIO[0]) if in_ratio < RATIO[0] else float(h))
    cw, ch = torch.where(miss, torch.tensor(float(fw)), cw), torch.where(miss, torch.tensor(float(fh)), ch)
    u = torch.rand(n, 2, generator=g)
    x1 = torch.where(miss, ((w - cw) / 2).floor(), (u[:, 0] * (w - cw + 1)).floor())
    y1 = torch.where(miss, ((h - ch) / 2).floor(), (u[:, 1] * (h - ch + 1)).floor())
    return torch.stack([x1, y1, x1 + cw, y1 + ch], dim=1)


def augment_batch(x: torch.Tensor, spec: JobSpec, step: int, part: tuple[np.ndarray, int] | None = None) -> torch.Tensor:
    """Float images (N, C, H, W) as stored -> the training batch; `none` leaves them to the net's centre crop.
    `part`: x is one rank's images, at these positions of a global batch of this size, and gets their crops."""
    if spec.augment == "none":
        return x
    n, _, h, w = x.shape
    size = image_size(spec)
    g = step_generator(spec.seed, step)
    positions, total = part if part is not None else (np.arange(n), n)
    boxes = crop_boxes(total, h, w, g)[positions]
    flip = (torch.rand(total, generator=g) < FLIP_P)[positions]
    rois = torch.cat([torch.arange(n, dtype=boxes.dtype)[:, None], boxes], dim=1).to(x.device, x.dtype)
    out = roi_align(x, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=1, aligned=True)
    return torch.where(flip.to(x.device)[:, None, None, None], out.flip(-1), out)
