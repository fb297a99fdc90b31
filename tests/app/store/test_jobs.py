"""The queue: exactly-once claims under contention, leases, retries, cancel."""

from __future__ import annotations

import multiprocessing as mp
import time
from collections import Counter
from pathlib import Path

import pytest

from app.config import Settings
from app.spec import JobSpec
from app.store import jobs, metrics
from app.store.db import get_engine
from app.store.metrics import Point

CPU = ("auto", "cpu")


def submit(engine, n: int = 1, **spec) -> list[int]:
    return [j.id for j in jobs.submit_many(engine, [JobSpec(dataset="digits", **spec)] * n, owner="t", max_attempts=3)]


def claim(engine, worker="w", lease=30.0):
    return jobs.claim(engine, worker, devices=CPU, lease_seconds=lease, run_device="cpu")


def _claim_loop(url: str, worker: str, out) -> None:
    engine = get_engine(url)
    ran = []
    idle = 0
    while idle < 20:
        c = jobs.claim(engine, worker, devices=CPU, lease_seconds=30, run_device="cpu")
        if c is None:
            idle += 1
            time.sleep(0.01)
            continue
        assert jobs.finish(engine, c.job_id, c.token, "succeeded")
        ran.append(c.job_id)
    out.put(ran)


def test_each_job_is_claimed_exactly_once_by_competing_processes(engine, settings):
    ids = submit(engine, 120)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_loop, args=(settings.db_url, f"w{i}", out)) for i in range(4)]
    for p in procs:
        p.start()
    ran = [job for _ in procs for job in out.get(timeout=120)]
    for p in procs:
        p.join(30)
    counts = Counter(ran)
    assert sorted(counts) == sorted(ids)
    assert set(counts.values()) == {1}
    assert {jobs.get(engine, i).status for i in ids} == {"succeeded"}


def test_claim_order_is_priority_then_age(engine):
    low, high, low2 = submit(engine, 1)[0], submit(engine, 1, priority=5)[0], submit(engine, 1)[0]
    assert [claim(engine).job_id for _ in range(3)] == [high, low, low2]
    assert claim(engine) is None


def test_cuda_jobs_wait_for_a_cuda_worker(engine):
    submit(engine, 1, device="cuda")
    assert claim(engine) is None
    assert jobs.claim(engine, "g", devices=("auto", "cpu", "cuda"), lease_seconds=5, run_device="cuda:0") is not None


def test_a_job_on_n_devices_waits_for_a_worker_with_n_free(engine):
    """A 2-device job is passed over by 1-device workers (the 1-device job behind it is theirs) and taken by a 2-device one."""
    wide, narrow = submit(engine, devices=2, classes_per_batch=4)[0], submit(engine)[0]
    assert claim(engine).job_id == narrow
    assert claim(engine) is None
    taken = jobs.claim(engine, "w2", devices=CPU, lease_seconds=30, run_device="cpu", free_devices=2)
    assert taken.job_id == wide and jobs.get(engine, wide).devices == 2


def test_a_worker_with_busy_devices_holds_back_for_the_wide_job_first_in_line(engine):
    """A 2-device worker with one device busy does not pass over the 2-device job for the 1-device job behind it;
    once both are free it takes the wide job, named by its device count."""
    labels = {1: "cuda:0", 2: "cuda:0,1"}
    wide, narrow = submit(engine, devices=2, classes_per_batch=4)[0], submit(engine)[0]
    take = lambda free: jobs.claim(engine, "w2", devices=CPU, lease_seconds=30, run_device=labels, free_devices=free, all_devices=2)  # noqa: E731
    assert take(1) is None
    assert take(2).job_id == wide and jobs.get(engine, wide).run_device == "cuda:0,1"
    assert take(0) is None
    assert take(1).job_id == narrow and jobs.get(engine, narrow).run_device == "cuda:0"


def test_expired_lease_is_requeued_and_the_stale_worker_cannot_finish(engine):
    [job_id] = submit(engine)
    stale = claim(engine, "stale", lease=0.2)
    assert stale.attempt == 1
    assert metrics.append(engine, job_id, stale.attempt, stale.token, [Point("train/loss", 1, 0.5, time.time())])
    time.sleep(0.3)
    assert jobs.requeue_expired(engine) == [job_id]
    row = jobs.get(engine, job_id)
    assert row.status == "queued" and "lease expired" in row.error
    fresh = claim(engine, "fresh")
    assert fresh.job_id == job_id and fresh.attempt == 2
    # The stale worker wakes up: every write it tries is refused.
    assert jobs.heartbeat(engine, job_id, stale.token, step=5, steps_per_second=1.0, lease_seconds=30) == "lost"
    assert not metrics.append(engine, job_id, stale.attempt, stale.token, [Point("train/loss", 2, 0.4, time.time())])
    assert not jobs.finish(engine, job_id, stale.token, "succeeded")
    assert jobs.get(engine, job_id).status == "running"
    assert jobs.finish(engine, job_id, fresh.token, "succeeded")
    assert jobs.get(engine, job_id).status == "succeeded"
    assert metrics.series(engine, job_id)["train/loss"] == {"step": [1], "value": [0.5]}


def test_lease_expiry_after_last_attempt_fails_the_job(engine):
    [job_id] = jobs.submit_many(engine, [JobSpec(dataset="digits")], owner="t", max_attempts=1)
    job_id = job_id.id
    claim(engine, lease=0.1)
    time.sleep(0.2)
    jobs.requeue_expired(engine)
    row = jobs.get(engine, job_id)
    assert row.status == "failed" and "lease expired" in row.error and row.finished_at


def test_retry_with_backoff_then_fail(engine):
    [job_id] = submit(engine)
    first = claim(engine)
    assert jobs.retry_or_fail(engine, job_id, first.token, error="OSError: boom", backoff_seconds=0.3) == "queued"
    assert claim(engine) is None  # backing off
    time.sleep(0.35)
    second = claim(engine)
    assert second.attempt == 2
    assert jobs.retry_or_fail(engine, job_id, second.token, error="OSError: boom", backoff_seconds=0.01) == "queued"
    time.sleep(0.05)
    third = claim(engine)
    assert jobs.retry_or_fail(engine, job_id, third.token, error="OSError: boom", backoff_seconds=0.01) == "failed"
    row = jobs.get(engine, job_id)
    assert row.status == "failed" and "all 3 attempts" in row.error and "boom" in row.error
    assert claim(engine) is None


def test_cancel_queued_and_running(engine):
    queued, running = submit(engine, 2)
    c = claim(engine)
    assert c.job_id == queued  # oldest first
    queued, running = running, queued
    assert jobs.cancel(engine, queued).status == "cancelled"
    row = jobs.cancel(engine, running)
    assert row.status == "running" and row.cancel_requested
    assert jobs.heartbeat(engine, running, c.token, step=3, steps_per_second=None, lease_seconds=30) == "cancel"
    assert jobs.finish(engine, running, c.token, "cancelled")
    assert jobs.get(engine, running).status == "cancelled"


def test_release_requeues_without_failing(engine):
    [job_id] = submit(engine)
    c = claim(engine)
    assert jobs.release(engine, job_id, c.token, step=42)
    row = jobs.get(engine, job_id)
    assert row.status == "queued" and row.step == 42 and row.error is None
    assert claim(engine).attempt == 2


def test_sqlite_on_a_network_filesystem_is_refused(tmp_path):
    from app.store.db import filesystem_type, sqlite_location_problem

    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/vda / ext4 rw 0 0\nserver:/export /mnt/share nfs4 rw 0 0\n")
    assert filesystem_type(Path("/mnt/share/embedlab"), str(mounts)) == "nfs4"
    assert filesystem_type(Path("/mnt/shared"), str(mounts)) == "ext4"
    assert sqlite_location_problem(f"sqlite:///{tmp_path}/x.db", str(mounts)) is None
    assert sqlite_location_problem("postgresql+psycopg://h/db", str(mounts)) is None
    problem = sqlite_location_problem("sqlite:////mnt/share/embedlab/embedlab.db", str(mounts))
    assert problem is not None and "network filesystem (nfs4)" in problem and "PostgreSQL" in problem


def test_serve_and_worker_refuse_sqlite_on_a_network_filesystem(tmp_path, monkeypatch, capsys):
    import typer

    from app import cli
    from app.store import db

    mounts = tmp_path / "mounts"
    mounts.write_text(f"/dev/vda / ext4 rw 0 0\nserver:/export {tmp_path / 'share'} nfs rw 0 0\n")
    monkeypatch.setattr(db, "MOUNTS", str(mounts))
    with pytest.raises(typer.Exit) as refused:
        cli.open_database(Settings(home=tmp_path / "share" / "home"))
    assert refused.value.exit_code == 1
    assert "network filesystem (nfs)" in capsys.readouterr().err
    assert not (tmp_path / "share" / "home" / "embedlab.db").exists()  # refused before SQLite created the file


def test_sqlite_refuses_a_second_host(engine, settings):
    from app.store import workers
    from app.store.db import is_sqlite
    from trainer.worker import Worker

    worker = Worker(settings)
    workers.register(engine, "elsewhere:1:x", host="elsewhere", pid=1, device="cpu", version="0")
    assert workers.other_hosts_alive(engine, "here", 30) == ["elsewhere"]
    if is_sqlite(engine):
        with pytest.raises(SystemExit, match="several hosts"):
            worker.run(max_jobs=1, exit_when_idle=True)
