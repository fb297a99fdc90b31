"""The standard metric-learning benchmarks, read from a local copy in their published layouts.

Each keeps its official class-disjoint split: CUB-200-2011 (classes 1-100 train, 101-200 test),
Cars-196 (1-98 / 99-196), Stanford Online Products (`Ebay_train.txt` / `Ebay_test.txt`). Labels
are numbered train classes first, so the official test classes are the last ones and
`Catalog.official_test` marks their images. Torch-free, like app/datasets.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from app.datasets import Catalog, DatasetError


@dataclass(frozen=True)
class Layout:
    title: str
    required: tuple[str, ...]  # files whose absence means this is not (a whole copy of) the layout
    read: Callable[[Path], tuple[list[Path], list[int], int]]  # -> files, class ids, first test class id


def _read_cub(root: Path) -> tuple[list[Path], list[int], int]:
    paths = dict(line.split(maxsplit=1) for line in (root / "images.txt").read_text().splitlines() if line.strip())
    labels = dict(line.split() for line in (root / "image_class_labels.txt").read_text().splitlines() if line.strip())
    ids = sorted(paths, key=int)
    return [root / "images" / paths[i].strip() for i in ids], [int(labels[i]) for i in ids], 101


def _read_cars(root: Path) -> tuple[list[Path], list[int], int]:
    from scipy.io import loadmat

    annotations = loadmat(root / "cars_annos.mat")["annotations"][0]
    files = [root / str(a["relative_im_path"][0]) for a in annotations]
    return files, [int(a["class"][0][0]) for a in annotations], 99


def _read_sop(root: Path) -> tuple[list[Path], list[int], int]:
    files, classes, first_test = [], [], None
    for name in ("Ebay_train.txt", "Ebay_test.txt"):
        rows = [
            line.split() for line in (root / name).read_text().splitlines()[1:] if line.strip()
        ]  # image_id class_id super_class_id path
        if name == "Ebay_test.txt":
            first_test = min(int(r[1]) for r in rows)
        files += [root / r[3] for r in rows]
        classes += [int(r[1]) for r in rows]
    return files, classes, first_test or 0


BENCHMARKS: dict[str, Layout] = {
    "cub200": Layout("CUB-200-2011", ("images.txt", "image_class_labels.txt"), _read_cub),
    "cars196": Layout("Cars-196", ("cars_annos.mat",), _read_cars),
    "sop": Layout("Stanford Online Products", ("Ebay_train.txt", "Ebay_test.txt"), _read_sop),
}


def detect(folder: Path) -> str | None:
    """The benchmark whose split files `folder` holds (any one of them: a partial copy is reported at submit)."""
    for name, layout in BENCHMARKS.items():
        if any((folder / f).is_file() for f in layout.required):
            return name
    return None


def load_benchmark(name: str, root: Path) -> Catalog:
    layout = BENCHMARKS[name]
    for f in layout.required:
        if not (root / f).is_file():
            raise DatasetError(
                "dataset_path", f"{root} is not a {layout.title} copy: {f} is missing (the layout needs {', '.join(layout.required)})"
            )
    return _load(name, root, tuple((root / f).stat().st_mtime_ns for f in layout.required))


@lru_cache(maxsize=4)
def _load(name: str, root: Path, _signature: tuple) -> Catalog:
    try:
        files, class_ids, first_test = BENCHMARKS[name].read(root)
    except (OSError, ValueError, KeyError, IndexError) as e:
        raise DatasetError(
            "dataset_path", f"cannot read the {BENCHMARKS[name].title} split files in {root}: {type(e).__name__}: {e}"
        ) from None
    for f in files:  # a listed path must stay inside the copy
        if root not in f.parents or ".." in f.relative_to(root).parts:
            raise DatasetError(
                "dataset_path",
                f"the {BENCHMARKS[name].title} split files in {root} list {f.relative_to(root) if root in f.parents else f}, outside the copy",
            )
    ids = np.asarray(class_ids, dtype=np.int64)
    classes = np.unique(ids)  # sorted: the official train classes come first
    labels = np.searchsorted(classes, ids)
    return Catalog(name, labels, [str(c) for c in classes], files, root, official_test=ids >= first_test)


def official_parts(
    labels: np.ndarray, official_test: np.ndarray, val_fraction: float, folds: int | None = None, fold: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) positions on a benchmark's official split: the official test classes are the
    locked test part whatever the spec's test fraction; validation is carved from the official train classes
    (their last `val_fraction`, or fold `fold` of `folds`), so nothing that chooses ever sees a test class."""
    train_classes = np.unique(labels[~official_test])
    if folds:
        val_classes = np.array_split(train_classes, folds)[fold]
    else:
        val_classes = train_classes[len(train_classes) - max(1, round(len(train_classes) * val_fraction)) :]
    is_val = np.isin(labels, val_classes) & ~official_test
    return np.flatnonzero(~is_val & ~official_test), np.flatnonzero(is_val), np.flatnonzero(official_test)
