"""What the store returns: a job's status type and frozen rows of jobs, sweeps and workers.

Callers read attributes (`job.status`), checked by type checkers, instead of dict keys; a row is
not a mapping (`as_dict()` makes one for JSON). A row is a snapshot: it never changes when the
database does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any, Literal, Self, get_args

# pruned: a search's pruner stopped the trial early (its metrics and checkpoints are kept).
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "pruned"]
TerminalStatus = Literal["succeeded", "failed", "cancelled", "pruned"]
STATUSES: tuple[JobStatus, ...] = get_args(JobStatus)
TERMINAL: tuple[TerminalStatus, ...] = get_args(TerminalStatus)


class Row:
    """A frozen dataclass built from a result row's mapping (extra columns are ignored)."""

    @classmethod
    def of(cls, mapping: Mapping[str, Any]) -> Self:
        return cls(**{f.name: mapping[f.name] for f in fields(cls)})  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class JobRow(Row):
    id: int
    name: str
    owner: str
    sweep_id: int | None
    search_id: int | None
    trial_number: int | None
    spec: dict[str, Any]
    dataset: str
    loss: str
    margin: float
    device: str
    devices: int
    priority: int
    status: JobStatus
    attempts: int
    max_attempts: int
    not_before: datetime | None
    lease_token: str | None
    lease_expires_at: datetime | None
    worker_id: str | None
    run_device: str | None
    cancel_requested: bool
    step: int
    total_steps: int
    steps_per_second: float | None
    phase: str | None  # after the steps: "laying out embeddings: 40%"
    summary: dict[str, float | None]
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True)
class SweepRow(Row):
    id: int
    name: str
    owner: str
    spec: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class SearchRow(Row):
    id: int
    name: str
    owner: str
    spec: dict[str, Any]
    study_name: str
    status: str
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class WorkerRow(Row):
    id: str
    host: str
    pid: int
    device: str
    devices: int
    version: str
    current_job_id: int | None
    started_at: datetime
    last_heartbeat: datetime
    stopped_at: datetime | None


@dataclass(frozen=True)
class RunningJob(Row):
    """A job a worker runs now, and on what ("cuda:0,1", "cpu x2")."""

    job_id: int
    devices: int
    run_device: str | None


CollectionStatus = Literal["laying out", "ready", "failed"]


@dataclass(frozen=True)
class CollectionRow(Row):
    id: int
    name: str
    owner: str
    status: CollectionStatus
    points: int
    dims: int
    classes: int
    space: str
    images: str | None
    source: dict[str, Any]
    error: str | None
    created_at: datetime
    finished_at: datetime | None
