"""`serve`'s worker supervisor: a worker that keeps dying at start is restarted less and less often, said once."""

from __future__ import annotations

import logging
import subprocess
import time

from app import cli
from tests.conftest import wait_for


class Pool(cli.WorkerPool):
    """The real supervisor over real processes; only the command differs: one that cannot start, then one that can."""

    def __init__(self):
        super().__init__(1, 1)
        self.spawned: list[float] = []
        self.command = ["sh", "-c", "echo 'worker: cannot start' >&2; exit 3"]

    def _spawn(self, index: int) -> subprocess.Popen:
        self.spawned.append(time.monotonic())
        return subprocess.Popen(self.command)


def test_a_worker_failing_at_start_is_restarted_less_and_less_often(monkeypatch, caplog):
    monkeypatch.setattr(cli, "STARTED_SECONDS", 3.0)
    caplog.set_level(logging.INFO, logger="embedlab")
    pool = Pool()
    pool.start()
    try:
        wait_for(lambda: len(pool.spawned) >= 3, 60, 0.1, "three starts")
        gaps = [b - a for a, b in zip(pool.spawned, pool.spawned[1:])]
        # 2 s, then 4 s after each exit (plus up to 1 s until the exit is noticed), where it used to be every 2 s.
        assert all(later > earlier + 1 for earlier, later in zip(gaps, gaps[1:])), gaps
        warnings = [r.getMessage() for r in caplog.records if "exits at start" in r.getMessage()]
        assert len(warnings) == 1 and "exit status 3" in warnings[0] and "trying again in 2 s" in warnings[0], warnings

        pool.command = ["sleep", "60"]  # the cause is gone: the next start stays up, and that is said once
        wait_for(lambda: any("running again after" in r.getMessage() for r in caplog.records), 60, 0.2, "the recovery to be logged")
        assert [r.getMessage() for r in caplog.records if "running again" in r.getMessage()] == [
            "worker 0 running again after 3 failed tries"
        ]
    finally:
        pool.stop(grace=5)
