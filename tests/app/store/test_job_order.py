"""The jobs list sorted by any column, and a queued job's place in line, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from app.spec import JobSpec
from app.store import jobs, metrics


def names(engine, sort: str) -> list[str]:
    return [j.name for j in jobs.list_jobs(engine, sort=sort)[0]]


@pytest.fixture
def three(engine) -> dict[str, int]:
    """b: evaluated (MAP@R 0.7) and half done; c: evaluated higher (0.9), a fifth done; a: queued, never evaluated."""
    rows = jobs.submit_many(
        engine, [JobSpec(name=n, margin=m, steps=100) for n, m in (("b", 0.3), ("c", 0.2), ("a", 0.1))], owner="local", max_attempts=1
    )
    ids = {r.name: r.id for r in rows}
    for name, step, mapr in (("b", 50, 0.7), ("c", 20, 0.9)):
        claimed = jobs.claim(engine, "w", devices=("auto",), lease_seconds=60, run_device="cpu")
        assert claimed.job_id == ids[name]
        assert metrics.append(engine, claimed.job_id, 1, claimed.token, [metrics.Point("val/mean_average_precision_at_r", step, mapr, 0)])
        jobs.heartbeat(engine, claimed.job_id, claimed.token, step=step, steps_per_second=1.0, lease_seconds=60)
    return ids


def test_sort_by_any_column_both_ways(engine, three):
    assert names(engine, "-id") == ["a", "c", "b"]  # the default: newest first
    assert names(engine, "name") == ["a", "b", "c"] and names(engine, "-name") == ["c", "b", "a"]
    assert names(engine, "margin") == ["a", "c", "b"] and names(engine, "-margin") == ["b", "c", "a"]
    assert names(engine, "-progress") == ["b", "c", "a"]
    assert names(engine, "status") == ["a", "c", "b"]  # queued < running; ties newest first
    # A job without a value (never evaluated) comes last in either direction.
    assert names(engine, "-metrics.val/mean_average_precision_at_r") == ["c", "b", "a"]
    assert names(engine, "metrics.val/mean_average_precision_at_r") == ["b", "c", "a"]
    page, total = jobs.list_jobs(engine, sort="name", limit=1, offset=1)
    assert [j.name for j in page] == ["b"] and total == 3


def test_every_sort_key_runs(engine, three):
    for sort in jobs.SORTS:
        assert sorted(names(engine, sort)) == ["a", "b", "c"], sort


def test_queue_positions_follow_claim_order(engine):
    rows = jobs.submit_many(engine, [JobSpec(name=str(i), priority=p) for i, p in enumerate((0, 0, 5, 0))], owner="local", max_attempts=1)
    ids = [r.id for r in rows]
    assert jobs.queue_positions(engine, ids) == {ids[2]: 1, ids[0]: 2, ids[1]: 3, ids[3]: 4}
    claimed = jobs.claim(engine, "w", devices=("auto",), lease_seconds=60, run_device="cpu")
    assert claimed.job_id == ids[2]
    jobs.cancel(engine, ids[1])
    assert jobs.queue_positions(engine, ids) == {ids[0]: 1, ids[3]: 2}  # running and cancelled jobs have no place
    assert jobs.queue_positions(engine, []) == {}


def test_retrieval_columns_sort_by_the_best_checkpoint_as_the_list_shows_them(engine, three):
    """c's latest MAP@R (0.9) is above b's (0.7), but b's best checkpoint (0.95) is above c's (0.91): b first."""
    for name, best in (("b", 0.95), ("c", 0.91)):
        row = jobs.get(engine, three[name])
        assert jobs.update_summary(
            engine, row.id, row.lease_token, {"best": {"step": 10, "metrics": {"mean_average_precision_at_r": best}}}
        )
    assert names(engine, "-metrics.val/mean_average_precision_at_r") == ["b", "c", "a"]
