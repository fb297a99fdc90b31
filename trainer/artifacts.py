"""A job's files under EMBEDLAB_HOME/jobs/<id>/, always written atomically (temp file + rename)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.files import BEST_CHECKPOINT_FILE as BEST_CHECKPOINT  # noqa: F401 - train.py and inference.py name it through this module
from app.files import CHECKPOINT_FILE as CHECKPOINT
from app.files import DISTANCES_FILE as DISTANCES  # noqa: F401 - train.py writes distances through this module
from app.files import EMBEDDINGS_FILE as EMBEDDINGS
from app.files import PER_QUERY_FILE as PER_QUERY
from app.files import atomic_write, save_json  # noqa: F401 - save_json is part of this module's API


def save_checkpoint(job_dir: Path, state: dict[str, Any], commit_ok: Callable[[], bool] = lambda: True, name: str = CHECKPOINT) -> bool:
    """The last state (CHECKPOINT), or the best one (BEST_CHECKPOINT)."""

    def write(p: Path) -> None:
        # Through a Python file: torch.save(state, path) reports a full disk as a bare RuntimeError
        # ("unexpected pos"); with a file object the OSError (ENOSPC) stays in the chain for atomic_write.
        with open(p, "wb") as f:
            torch.save(state, f)

    return atomic_write(job_dir / name, write, commit_ok)


def load_checkpoint(job_dir: Path, name: str = CHECKPOINT) -> dict[str, Any] | None:
    """Only tensors and plain containers: nothing a user wrote is ever unpickled."""
    path = job_dir / name
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def save_per_query(
    job_dir: Path, indices: np.ndarray, values: dict[str, np.ndarray], extra: dict[str, int], commit_ok: Callable[[], bool] = lambda: True
) -> bool:
    """Per-query validation values (aligned with the queries' dataset `indices`) for paired comparisons between jobs."""

    def write(p: Path) -> None:
        with open(p, "wb") as f:
            np.savez(
                f,
                indices=indices.astype(np.int64),
                **{k: v.astype(np.float64) for k, v in values.items()},
                **{k: np.int64(v) for k, v in extra.items()},
            )

    return atomic_write(job_dir / PER_QUERY, write, commit_ok)


def save_embeddings(
    job_dir: Path, embeddings: np.ndarray, labels: np.ndarray, indices: np.ndarray, commit_ok: Callable[[], bool] = lambda: True
) -> bool:
    def write(p: Path) -> None:
        with open(p, "wb") as f:
            np.savez(f, embeddings=embeddings.astype(np.float32), labels=labels.astype(np.int64), indices=indices.astype(np.int64))

    return atomic_write(job_dir / EMBEDDINGS, write, commit_ok)


def load_json(path: Path) -> Any | None:
    return json.loads(path.read_text()) if path.is_file() else None
