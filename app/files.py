"""Every path under EMBEDLAB_HOME, and atomic writes (temp file beside the target, fsync, rename).

Torch-free: the trainer writes through it and the API reads through it, so the two cannot disagree on a name.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

# A job's files under EMBEDLAB_HOME/jobs/<id>/ (written by the worker, served by the API).
CHECKPOINT_FILE = "checkpoint.pt"  # the last evaluated state (resuming starts from it)
BEST_CHECKPOINT_FILE = "best.pt"  # the state with the best validation select_metric: explorer, exports, image queries
PER_QUERY_FILE = "per_query.npz"  # per-query validation values at the best step, for paired comparisons between jobs
EMBEDDINGS_FILE = "embeddings.npz"
DISTANCES_FILE = "distances.json"
PROJECTION_FILE = "projection.npz"  # the explorer's 2-D layout, its per-class table and UMAP's transform state
# A sweep's derived files under EMBEDLAB_HOME/sweeps/<id>/.
LAYOUTS_FILE = "layouts.json"


def database_file(home: Path) -> Path:
    return home / "embedlab.db"


def job_dir(home: Path, job_id: int) -> Path:
    return home / "jobs" / str(job_id)


def sweep_dir(home: Path, sweep_id: int) -> Path:
    """What the API derives from a sweep's jobs (the aligned layouts)."""
    return home / "sweeps" / str(sweep_id)


def datasets_dir(home: Path) -> Path:
    """Always a data root: image folders placed here need no EMBEDLAB_DATA_ROOTS."""
    return home / "datasets"


def cache_dir(home: Path) -> Path:
    """Decoded image folders (memory-mapped) live under it; safe to delete."""
    return home / "cache"


def numba_cache_dir(home: Path) -> Path:
    return cache_dir(home) / "numba"


def weights_dir(home: Path) -> Path:
    return home / "weights"


def atomic_write(path: Path, write: Callable[[Path], None], commit_ok: Callable[[], bool] = lambda: True) -> bool:
    """Write to a temp file beside `path`, then rename over it if `commit_ok()` still holds.

    A failed write (full disk) or a refused commit (lease lost) leaves the previous file intact.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        if not commit_ok():
            return False
        os.replace(tmp_path, path)
        return True
    finally:
        tmp_path.unlink(missing_ok=True)


def save_json(path: Path, data: Any, commit_ok: Callable[[], bool] = lambda: True) -> bool:
    return atomic_write(path, lambda p: p.write_text(json.dumps(data, separators=(",", ":"))), commit_ok)
