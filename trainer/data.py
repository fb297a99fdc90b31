"""A job's images as one uint8 tensor, its PK training batches and its fixed validation batches.

Bundled sets are parsed into memory; image folders are memory-mapped from the decoded cache
(trainer/image_cache.py). The train / validation / test split is app.spec.job_split. Every row keeps
its dataset index (app.datasets numbering), so artifacts and the API always name the same
image, even when unreadable files were skipped.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_metric_learning.samplers import MPerClassSampler

from app.backbones import effective_image_size
from app.config import Settings
from app.datasets import bundled_arrays, load_catalog
from app.files import cache_dir
from app.spec import JobSpec
from trainer.image_cache import decode_image, decoded_folder  # noqa: F401 (decode_image: the one preprocessing)


class Rows:
    """Some rows of a uint8 image tensor, gathered when indexed. A part of a memory-mapped folder costs its row
    numbers, not a copy of its pixels: the pixels stay in the page cache, shared and reclaimable, so a job's
    resident memory does not grow with the folder (bench/throughput.py bigfolder)."""

    def __init__(self, base: torch.Tensor, rows: torch.Tensor):
        self.base, self.rows = base, rows

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.rows), *self.base.shape[1:]))

    def __getitem__(self, key: slice | torch.Tensor) -> torch.Tensor:
        return self.base[self.rows[key]]

    def to(self, device: torch.device, chunk: int = 4096) -> torch.Tensor:
        """The rows as one tensor on `device`, copied a chunk at a time (no full copy in host memory on the way)."""
        out = torch.empty(self.shape, dtype=self.base.dtype, device=device)
        for i in range(0, len(self), chunk):
            out[i : i + chunk] = self[i : i + chunk].to(device, non_blocking=True)
        return out


@dataclass
class ImageData:
    images: Rows  # uint8 (N, C, H, W), gathered when indexed
    labels: torch.Tensor  # int64 (N,)
    indices: np.ndarray  # dataset index of each row
    class_names: list[str]
    official_test: np.ndarray | None = None  # benchmarks: rows of the official test classes (the locked test part)

    def subset(self, rows: np.ndarray) -> ImageData:
        rows_t = torch.as_tensor(rows, dtype=torch.long)
        official = self.official_test[rows] if self.official_test is not None else None
        images = Rows(self.images.base, self.images.rows[rows_t])
        return ImageData(images, self.labels[rows_t], self.indices[rows], self.class_names, official)

    def __len__(self) -> int:
        return len(self.labels)


CROP_ROOM = 256 / 224  # stored side / network side: ImageNet's resize-256, crop-224 evaluation, and room for random crops


def image_size(spec: JobSpec) -> int:
    """The side the network sees."""
    return effective_image_size(spec.dataset, spec.image_size, spec.pretrained)


def stored_size(spec: JobSpec) -> int:
    """The side images are decoded and cached at: a little above image_size for the ImageNet-style
    backbones and for augmentation (crops need room), image_size itself for the plain cnn."""
    size = image_size(spec)
    return math.ceil(size * CROP_ROOM) if spec.backbone != "cnn" or spec.augment != "none" else size


def load_images(spec: JobSpec, settings: Settings, log: Callable[[str, str], None]) -> ImageData:
    size = stored_size(spec)
    catalog = load_catalog(spec.dataset, spec.dataset_path, settings.data_root_paths)
    if catalog.files:  # image folders and benchmarks
        decoded, kept = decoded_folder(catalog, size, cache_dir(settings.home_path), log)
        with warnings.catch_warnings():  # read-only memory map: nothing writes into a job's images
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            images = torch.from_numpy(decoded)
        indices = kept
    else:
        _, raw = bundled_arrays(spec.dataset)
        images = torch.from_numpy(raw).unsqueeze(1)
        if size != raw.shape[-1]:
            images = (
                F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False).round().clamp(0, 255).to(torch.uint8)
            )
        indices = np.arange(len(raw), dtype=np.int64)
    labels = torch.as_tensor(catalog.labels[indices])
    official = catalog.official_test[indices] if catalog.official_test is not None else None
    return ImageData(Rows(images.contiguous(), torch.arange(len(images))), labels, indices, catalog.class_names, official)


def to_float(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    return batch.to(device, non_blocking=True).float().div_(255.0)


def pk_batches(labels: torch.Tensor, spec: JobSpec, start_step: int) -> Iterator[np.ndarray]:
    """Endless PK batches (P classes x K images) of row numbers, from pytorch-metric-learning's MPerClassSampler.

    Drawn 1,000 batches at a time so a long job does not hold millions of indices.
    """
    batch = spec.batch_size
    sampler = MPerClassSampler(labels.numpy(), m=spec.samples_per_class, batch_size=batch, length_before_new_iter=1000 * batch)
    while True:
        chunk = np.fromiter(iter(sampler), dtype=np.int64)
        for b in range(len(chunk) // batch):
            yield chunk[b * batch : (b + 1) * batch]


def fixed_val_batches(labels: np.ndarray, spec: JobSpec, n_batches: int = 8) -> list[np.ndarray]:
    """The same PK batches at every evaluation, so val/loss moves only with the model."""
    classes, counts = np.unique(labels, return_counts=True)
    eligible = classes[counts >= 2]
    if len(eligible) < 2:
        return []
    p = min(spec.classes_per_batch, len(eligible))
    rng = np.random.default_rng(spec.seed + 1)
    batches = []
    for _ in range(n_batches):
        rows = []
        for c in rng.choice(eligible, size=p, replace=False):
            members = np.flatnonzero(labels == c)
            rows.append(rng.choice(members, size=min(spec.samples_per_class, len(members)), replace=False))
        batches.append(np.concatenate(rows))
    return batches
