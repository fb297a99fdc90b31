"""A job's files under EMBEDLAB_HOME/jobs/<id>/, always written atomically (temp file + rename)."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.files import atomic_write, save_json  # noqa: F401 - save_json is part of this module's API
from app.files import CHECKPOINT_FILE as CHECKPOINT
from app.files import DISTANCES_FILE as DISTANCES  # noqa: F401 - train.py writes distances through this module
from app.files import EMBEDDINGS_FILE as EMBEDDINGS


def save_checkpoint(job_dir: Path, state: dict[str, Any], commit_ok: Callable[[], bool] = lambda: True) -> bool:
    def write(p: Path) -> None:
        # Through a Python file: torch.save(state, path) reports a full disk as a bare RuntimeError
        # ("unexpected pos"); with a file object the OSError (ENOSPC) stays in the chain for atomic_write.
        with open(p, "wb") as f:
            torch.save(state, f)

    return atomic_write(job_dir / CHECKPOINT, write, commit_ok)


def load_checkpoint(job_dir: Path) -> dict[str, Any] | None:
    """Only tensors and plain containers: nothing a user wrote is ever unpickled."""
    path = job_dir / CHECKPOINT
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def save_embeddings(job_dir: Path, embeddings: np.ndarray, labels: np.ndarray, indices: np.ndarray, commit_ok: Callable[[], bool] = lambda: True) -> bool:
    def write(p: Path) -> None:
        with open(p, "wb") as f:
            np.savez(f, embeddings=embeddings.astype(np.float32), labels=labels.astype(np.int64), indices=indices.astype(np.int64))

    return atomic_write(job_dir / EMBEDDINGS, write, commit_ok)


def load_json(path: Path) -> Any | None:
    return json.loads(path.read_text()) if path.is_file() else None
