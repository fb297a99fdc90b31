"""A growing delay between tries of something that keeps failing, saying why once.

Used where retrying at a fixed pace turns one fault into a loop: a worker whose database is on a
full disk, `serve` restarting a worker that dies at start. The first failure is logged with its
reason; the same reason again is not repeated; the recovery is logged once.
"""

from __future__ import annotations

import logging


class Backoff:
    def __init__(self, log: logging.Logger, first: float = 1.0, cap: float = 60.0):
        self.log, self.first, self.cap = log, first, cap
        self.failures = 0
        self.reason: str | None = None

    def failed(self, reason: str) -> float:
        """Count a failure; the seconds to wait before the next try (first, 2 x first, ... up to cap)."""
        delay = min(self.cap, self.first * 2**self.failures)
        self.failures += 1
        if reason != self.reason:
            self.log.warning("%s; trying again in %.0f s, then less often (at most every %.0f s) while it lasts", reason, delay, self.cap)
            self.reason = reason
        return delay

    def succeeded(self, what: str) -> None:
        if self.failures:
            self.log.warning("%s again after %d failed tr%s", what, self.failures, "y" if self.failures == 1 else "ies")
        self.failures, self.reason = 0, None
