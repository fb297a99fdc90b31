"""The store answers with frozen, typed rows: a job's status is one of the JobStatus values at every stage."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from app.spec import JobSpec, SweepSpec
from app.store import jobs, sweeps, workers
from app.store.rows import STATUSES, TERMINAL, JobRow, JobStatus, SweepRow, WorkerRow


def test_statuses_come_from_the_type():
    assert STATUSES == typing.get_args(JobStatus) == ("queued", "running", "succeeded", "failed", "cancelled", "pruned")
    assert set(TERMINAL) < set(STATUSES) and "running" not in TERMINAL


def test_job_rows_are_frozen_and_follow_the_job(engine):
    made = jobs.submit(engine, JobSpec(dataset="digits", steps=5), owner="ann")
    assert isinstance(made, JobRow) and made.status == "queued" and made.owner == "ann" and made.spec["steps"] == 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.status = "running"  # type: ignore[misc]
    claim = jobs.claim(engine, "w", devices=("auto", "cpu"), lease_seconds=30, run_device="cpu")
    running = jobs.get(engine, made.id)
    assert running.status == "running" and not running.ended and running.worker_id == "w"
    assert made.status == "queued"  # a row is a snapshot
    assert jobs.finish(engine, made.id, claim.token, "succeeded")
    done = jobs.get(engine, made.id)
    assert done.status in STATUSES and done.ended and done.finished_at is not None
    rows, total = jobs.list_jobs(engine, status="succeeded")
    assert total == 1 and rows == [done]


def test_sweep_and_worker_rows(engine):
    sweep = SweepSpec(name="s", base={"dataset": "digits", "steps": 5}, grid={"margin": [0.1, 0.2]})
    row, job_ids = sweeps.create(engine, sweep, sweep.expand(), owner="bo", max_attempts=3)
    assert isinstance(row, SweepRow) and row.owner == "bo" and len(job_ids) == 2
    assert sweeps.get(engine, row.id) == row and sweeps.list_sweeps(engine) == ([row], 1)
    assert sweeps.status_counts(engine, [row.id]) == {row.id: {"queued": 2}}
    workers.register(engine, "h:1", host="h", pid=1, device="cpu", version="0")
    (worker,) = workers.list_workers(engine)
    assert isinstance(worker, WorkerRow) and worker.host == "h" and worker.stopped_at is None
