"""How a run ends early. The worker maps each to a job status."""

from __future__ import annotations


class JobFailed(Exception):
    """A failure that another attempt would repeat (NaN loss, unusable data): the job fails at once."""


class StopRequested(Exception):
    """The run must stop between steps: `cancel` (user), `shutdown` (SIGTERM) or `lost` (lease taken over)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
