"""The demo jobs of an empty database: a short one first, then the long live one; never queued twice."""

from __future__ import annotations

from app.demo import queue_demo
from app.spec import JobSpec, check_spec
from app.store import jobs


def test_an_empty_database_gets_the_quick_job_first(engine, settings):
    settings.demo = True
    ids = queue_demo(engine, settings)
    assert len(ids) == 2
    first, second = (jobs.get(engine, i) for i in ids)
    assert first.dataset == "digits" and first.total_steps < second.total_steps
    assert second.dataset == "mnist5k" and second.total_steps == 1500
    for row in (first, second):
        check_spec(JobSpec.model_validate(row.spec), settings)  # both pass the API's own checks
    assert jobs.queue_positions(engine, ids) == {ids[0]: 1, ids[1]: 2}
    claimed = jobs.claim(engine, "w", devices=("auto",), lease_seconds=60, run_device="cpu")
    assert claimed.job_id == ids[0]
    assert queue_demo(engine, settings) == []  # a database with jobs gets none


def test_demo_off(engine, settings):
    settings.demo = False
    assert queue_demo(engine, settings) == [] and jobs.list_jobs(engine)[1] == 0
