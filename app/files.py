"""Every path under EMBEDLAB_HOME, and atomic writes (temp file beside the target, fsync, rename).

Torch-free: the trainer writes through it and the API reads through it, so the two cannot disagree on a name.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# A job's files under EMBEDLAB_HOME/jobs/<id>/ (written by the worker, served by the API).
CHECKPOINT_FILE = "checkpoint.pt"  # the last evaluated state (resuming starts from it)
BEST_CHECKPOINT_FILE = "best.pt"  # the state with the best validation select_metric: explorer, exports, image queries
PER_QUERY_FILE = "per_query.npz"  # per-query validation values at the best step, for paired comparisons between jobs
EMBEDDINGS_FILE = "embeddings.npz"
DISTANCES_FILE = "distances.json"
PER_QUERY_FILE = "per_query.npz"  # each validation query's retrieval metrics at the best step (paired comparisons)
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


def collections_dir(home: Path) -> Path:
    """Imported embeddings (app/explorer/collections.py): one folder per collection, temp folders while importing."""
    return home / "collections"


def collection_dir(home: Path, collection_id: int) -> Path:
    return collections_dir(home) / str(collection_id)


def datasets_dir(home: Path) -> Path:
    """Always a data root: image folders placed here need no EMBEDLAB_DATA_ROOTS."""
    return home / "datasets"


def cache_dir(home: Path) -> Path:
    """Decoded image folders (memory-mapped) live under it; safe to delete."""
    return home / "cache"


def thumbnail_cache_dir(home: Path) -> Path:
    """The explorer's thumbnails of image-folder files, bounded in size (app/explorer/thumbnails.py)."""
    return cache_dir(home) / "thumbnails"


def numba_cache_dir(home: Path) -> Path:
    return cache_dir(home) / "numba"


def weights_dir(home: Path) -> Path:
    return home / "weights"


class DiskFull(OSError):
    """A write that did not fit: says what was being written and how much room is left (an OSError with ENOSPC)."""

    def __init__(self, what: str, free: int | None, need: int | None = None):
        """`free` None: the disk is not this host's to measure (a PostgreSQL server's)."""
        self.what, self.free, self.need = what, free, need
        room = [f"free {human_bytes(free)}"] if free is not None else []
        room += [f"needs {human_bytes(need)}"] if need is not None else []
        super().__init__(errno.ENOSPC, f"disk full while writing {what}" + (f" ({', '.join(room)})" if room else ""))

    def __str__(self) -> str:
        return self.strerror

    def __reduce__(self):  # survives pickling (a job run in a child process reports it to its worker)
        return (DiskFull, (self.what, self.free, self.need))


def human_bytes(n: float) -> str:
    unit = "B"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            break
        n /= 1000
    return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"


LOW_BYTES = 1_000_000_000


@dataclass(frozen=True)
class DiskSpace:
    free_bytes: int  # as an unprivileged writer sees it
    total_bytes: int
    low: bool  # under 10% or 1 GB free, whichever is less: jobs that write image caches or checkpoints may not fit


def disk_space(path: Path) -> DiskSpace:
    """The filesystem holding `path` (or its nearest existing parent)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    usage = shutil.disk_usage(path)
    return DiskSpace(usage.free, usage.total, usage.free < min(LOW_BYTES, usage.total // 10))


def free_bytes(path: Path) -> int:
    return disk_space(path).free_bytes


def is_disk_full(exc: BaseException | None) -> bool:
    """ENOSPC or EDQUOT anywhere in the exception's chain, SQLite's SQLITE_FULL, or PostgreSQL's disk_full (53100).

    Chained causes matter: torch.save and SQLAlchemy wrap the OSError or driver error they met.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if getattr(exc, "sqlite_errorname", None) == "SQLITE_FULL" or "database or disk is full" in str(exc):
            return True
        if getattr(exc, "sqlstate", None) == "53100":  # psycopg: could not extend file
            return True
        exc = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__
    return False


def disk_full_reason(exc: BaseException, home: Path, database: str = "the database", database_dir: Path | None = None) -> str | None:
    """The message a job fails with when `exc` came from a full disk, None otherwise.

    A database error names `database`, with the room left in `database_dir` (the SQLite file's folder; None for a server's).
    """
    if isinstance(exc, DiskFull):
        return str(exc)
    if not is_disk_full(exc):
        return None
    if type(exc).__module__.startswith("sqlalchemy"):
        return str(DiskFull(database, free_bytes(database_dir) if database_dir else None))
    return str(DiskFull(getattr(exc, "filename", None) or f"a file under {home}", free_bytes(home)))


def ensure_room(path: Path, need: int, what: str) -> None:
    """Refuse a write of `need` bytes at `path` before it starts (a memory-mapped file that runs out of disk dies of SIGBUS)."""
    free = free_bytes(path)
    if need > free:
        raise DiskFull(what, free, need)


def preallocate(fd: int, size: int, what: str, path: Path) -> None:
    """Reserve the blocks of a file that will be written through a memory map, so a full disk is an error, not SIGBUS."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(what, free_bytes(path), size) from e
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a filesystem without fallocate: the free-space check stands alone
            raise


def temp_prefix(name: str) -> str:
    """Temp files carry host and pid, so a later writer can tell a dead process's leftovers from a live one's."""
    return f".{name}.{socket.gethostname()}-{os.getpid()}-"


def remove_leftovers(folder: Path, name: str) -> None:
    """Delete temp files and folders of `name` left by processes of this host that died (kill -9, SIGBUS) mid-write."""
    host = socket.gethostname()
    for stale in folder.glob(f".{name}.{host}-*-*"):
        pid = stale.name[len(f".{name}.{host}-") :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic_write(path: Path, write: Callable[[Path], None], commit_ok: Callable[[], bool] = lambda: True) -> bool:
    """Write to a temp file beside `path`, then rename over it if `commit_ok()` still holds.

    A failed write or a refused commit (lease lost) leaves the previous file intact and no temp file behind;
    a full disk raises DiskFull naming `path` and the room left once the partial file is gone.
    """
    tmp_path: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(path.parent, path.name)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path.name), suffix=".tmp")
        os.close(fd)
        tmp_path = Path(tmp)
        write(tmp_path)
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        if not commit_ok():
            return False
        os.replace(tmp_path, path)
        return True
    except Exception as e:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
        if is_disk_full(e) and not isinstance(e, DiskFull):
            raise DiskFull(str(path), free_bytes(path.parent)) from e
        raise
    finally:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)


def save_json(path: Path, data: Any, commit_ok: Callable[[], bool] = lambda: True) -> bool:
    return atomic_write(path, lambda p: p.write_text(json.dumps(data, separators=(",", ":"))), commit_ok)
