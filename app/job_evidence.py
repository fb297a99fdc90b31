"""A finished job's evidence files, read for comparisons: per-query metric values and the validation classes. Torch-free.

(The bootstrap of one job's intervals lives in app/evidence.py; the sweep's paired tests over seeds and queries in app/advisor.py.)"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from app.files import EMBEDDINGS_FILE, PER_QUERY_FILE


def per_query(job_dir: Path) -> dict[str, np.ndarray] | None:
    """The arrays of the job's per_query.npz ({indices, <metric>..., seed}); None when absent or unreadable."""
    path = job_dir / PER_QUERY_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return None  # a partial or foreign file: the comparison falls back to intervals and says so


def validation_classes(job_dir: Path, indices: np.ndarray | None = None) -> int | None:
    """How many classes the job's validation queries hold (from its stored embeddings' labels)."""
    path = job_dir / EMBEDDINGS_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            labels = data["labels"]
            if indices is not None and "indices" in data.files:
                labels = labels[np.isin(data["indices"], indices)]
            return int(len(np.unique(labels))) or None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None
