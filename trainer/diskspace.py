"""How a worker lives with a full disk (EMBEDLAB_HOME or the SQLite file on it).

- A job that runs out of disk fails at once with "disk full while writing X (free Y)". It is not
  retried: another attempt would fill the same disk again and eat whatever space was freed in
  between (seen: three attempts each refilling a 40 MB disk), and the person who must free space
  learns why now rather than after every attempt and its backoff.
- After a job filled the disk, the worker takes no other job until the free space has grown, so
  a full disk does not fail the queue job after job; the queued jobs keep their attempts.
  A job refused by a size check before it wrote anything (the image cache needs more than
  there is) does not stop the worker: smaller jobs may fit.
- A database write that fails because the disk is full (registering, claiming, recording an
  outcome) is retried with a growing delay, and the reason is logged once, instead of the
  worker exiting and being restarted every few seconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy.engine import make_url

from app.backoff import Backoff
from app.config import Settings
from app.files import DiskFull, disk_full_reason, free_bytes, human_bytes

T = TypeVar("T")
GROWTH = 1 << 20  # free space must grow by this much (1 MiB) before a worker that filled the disk takes jobs again


class DiskGuard:
    def __init__(self, settings: Settings, stopping: threading.Event, log: logging.Logger):
        self.home, self.stopping = settings.home_path, stopping
        url = make_url(settings.db_url)
        sqlite = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
        self.database = f"the database {url.database if sqlite else url.render_as_string(hide_password=True)}"
        self.database_dir = Path(url.database).parent if sqlite else None
        self.backoff = Backoff(log, first=1.0, cap=60.0)
        self.full_at: int | None = None  # free bytes left when a job last filled the disk

    def reason(self, exc: BaseException) -> str | None:
        """ "disk full while writing X (free Y)" when `exc` came from a full disk, else None."""
        return disk_full_reason(exc, self.home, self.database, self.database_dir)

    def job_failed(self, exc: BaseException) -> str | None:
        """The failure message when a job ran out of disk (and stop claiming until there is more), else None."""
        reason = self.reason(exc)
        if reason is not None and not (isinstance(exc, DiskFull) and exc.need is not None and exc.need > exc.free):
            self.full_at = free_bytes(self.home)
        return reason

    def job_ended(self, error: str | None) -> None:
        """In the worker, after an attempt's process ended a job: stop claiming if it failed by filling the disk
        (job_failed ran in that process). A job refused by the size check before it wrote (its message says what
        it needs) left the disk as it was: claiming goes on."""
        if error and error.startswith("disk full while writing") and "needs " not in error:
            self.full_at = free_bytes(self.home)

    def may_claim(self) -> bool:
        """False (after waiting a growing delay) while the disk a job filled has not got more free space."""
        if self.full_at is None:
            return True
        free = free_bytes(self.home)
        if free >= self.full_at + GROWTH:
            self.full_at = None
            self.backoff.succeeded(f"{self.home} has {human_bytes(free)} free: taking jobs")
            return True
        self.stopping.wait(
            self.backoff.failed(
                f"not taking jobs: a job filled the disk of {self.home} ({human_bytes(free)} free); waiting for space to be freed"
            )
        )
        return False

    def retrying(self, write: Callable[[], T], what: str) -> T | None:
        """`write()`, tried again while the disk is full; None when the worker is told to stop meanwhile."""
        while True:
            try:
                value = write()
            except Exception as e:
                reason = self.reason(e)
                if reason is None:
                    raise
                if self.stopping.wait(self.backoff.failed(f"cannot {what}: {reason}")):
                    return None
                continue
            self.backoff.succeeded(f"{what}: the database takes writes")
            return value
