"""Atomic file writes (temp file beside the target, fsync, rename), without torch: shared by the trainer and the API."""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


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
