"""A full disk with real processes on a real 8 MB filesystem (tmpfs) holding EMBEDLAB_HOME and its SQLite file:
jobs fail naming the disk, retries are kept, workers wait instead of dying, the API refuses writes with 503 and keeps reading."""

from __future__ import annotations

import os
import re
import shutil
import signal
import time

import httpx
import pytest

from app.config import Settings
from app.spec import JobSpec
from app.store import joblogs, jobs
from app.store.db import get_engine, init_db
from tests.conftest import wait_for
from tests.trainer.test_worker import TINY, job, submit, wait_status

pytestmark = pytest.mark.slow


def log_text(proc) -> str:
    with open(proc.log_path, errors="replace") as f:
        return f.read()


def test_a_job_that_fills_the_disk_fails_at_once_and_the_queue_waits_for_space(procs, env, small_disk):
    home = small_disk.path
    settings = Settings(home=home)
    engine = get_engine(settings.db_url)
    init_db(engine)
    big = JobSpec.model_validate({**TINY, "steps": 20, "explorer": False, "embedding_dim": 2048})  # a 4.3 MB checkpoint
    small = JobSpec.model_validate({**TINY, "steps": 20, "explorer": False})  # 1.3 MB checkpoints
    first = jobs.submit(engine, big, max_attempts=3)
    second = jobs.submit(engine, small, max_attempts=3)
    small_disk.fill(leave=3_000_000)  # room for the database's writes, not for the big checkpoint
    procs.env = {**env, "EMBEDLAB_HOME": str(home)}
    worker = procs.worker()

    failed = wait_for(lambda: (j := jobs.get(engine, first.id)).status in ("failed", "succeeded") and j, 120, 0.2, "the first job to end")
    assert failed.status == "failed" and failed.attempts == 1, failed  # failed at once: no retry ate freed space
    assert re.match(rf"disk full while writing {re.escape(str(home))}/jobs/{first.id}/(best|checkpoint)\.pt \(free ", failed.error), (
        failed.error
    )
    assert any(line["message"] == failed.error for line in joblogs.lines(engine, first.id))
    assert [p.name for p in settings.job_dir(first.id).iterdir() if p.name.endswith(".tmp")] == []  # partial file removed

    # The disk stays full: the worker takes nothing, so the next job keeps all its attempts, and it says why once.
    wait_for(lambda: "not taking jobs" in log_text(worker), 30, 0.2, "the worker to say it waits for space")
    time.sleep(4)
    waiting = jobs.get(engine, second.id)
    assert waiting.status == "queued" and waiting.attempts == 0, waiting
    assert log_text(worker).count("not taking jobs") == 1 and worker.poll() is None

    small_disk.free()
    done = wait_for(lambda: (j := jobs.get(engine, second.id)).status in ("failed", "succeeded") and j, 120, 0.2, "the second job to end")
    assert done.status == "succeeded" and done.attempts == 1, done.error
    assert "taking jobs again" in log_text(worker)


def test_a_full_database_disk_answers_503_keeps_reads_and_workers_wait(procs, env, small_disk):
    home = small_disk.path
    procs.env = {**env, "EMBEDLAB_HOME": str(home)}
    url = procs.server(workers=1)
    serve = procs.procs[-1]
    before = submit(url, name="stored before the disk filled", steps=10, explorer=False)
    stored = wait_status(url, before["id"], ("succeeded", "failed"))
    assert stored["status"] == "succeeded", stored["error"]
    series = httpx.get(f"{url}/api/jobs/{before['id']}/metrics", timeout=30).json()["series"]
    worker_pid = httpx.get(f"{url}/api/workers", timeout=30).json()[0]["pid"]

    small_disk.fill()
    refused = httpx.post(f"{url}/api/jobs", json={**TINY, "name": "while full"}, timeout=30)
    assert refused.status_code == 503 and refused.headers["content-type"] == "application/json", refused.text
    assert "disk is full" in refused.json()["detail"] and refused.headers["retry-after"]
    # Reads go on: the job list, the stored job, its metrics, and the workers page's figures.
    assert [j["id"] for j in httpx.get(f"{url}/api/jobs", timeout=30).json()["jobs"]] == [before["id"]]
    assert job(url, before["id"])["status"] == "succeeded"
    assert httpx.get(f"{url}/api/jobs/{before['id']}/metrics", timeout=30).json()["series"] == series
    disk = httpx.get(f"{url}/api/workers/disk", timeout=30).json()
    assert disk["total_bytes"] == shutil.disk_usage(home).total == 8 << 20
    assert disk["free_bytes"] < 100_000 and disk["low"]

    # A worker that cannot start on the full disk waits and says why once, instead of being restarted every few seconds.
    os.kill(worker_pid, signal.SIGKILL)
    wait_for(
        lambda: "cannot register the worker: disk full while writing the database" in log_text(serve),
        90,
        0.2,
        "the new worker to say why it waits",
    )
    time.sleep(8)
    text = log_text(serve)
    assert text.count("cannot register the worker") == 1, text[-3000:]
    assert f"database {home}/embedlab.db" in text
    assert text.count(" on cpu, ") == 2  # the first worker and its one replacement: no restart loop

    small_disk.free()
    after = wait_for(
        lambda: (
            (r := httpx.post(f"{url}/api/jobs", json={**TINY, "steps": 10, "explorer": False}, timeout=30)).status_code == 201 and r.json()
        ),
        30,
        0.5,
        "submissions to be accepted again",
    )
    done = wait_status(url, after["id"], ("succeeded", "failed"))
    assert done["status"] == "succeeded", done["error"]
    assert "register the worker: the database takes writes again" in log_text(serve)
    assert job(url, before["id"])["status"] == "succeeded"  # nothing stored before was lost


def test_a_job_running_when_the_database_disk_fills_fails_naming_it_once_it_can_be_written(procs, env, small_disk):
    home = small_disk.path
    settings = Settings(home=home)
    engine = get_engine(settings.db_url)
    init_db(engine)
    running = jobs.submit(engine, JobSpec.model_validate({**TINY, "steps": 2000, "eval_every": 1000, "explorer": False}), max_attempts=3)
    procs.env = {**env, "EMBEDLAB_HOME": str(home)}
    worker = procs.worker()
    wait_for(lambda: jobs.get(engine, running.id).step >= 5, 120, 0.2, "the job to train")

    small_disk.fill()  # metric points, log lines, heartbeats: nothing can be written now
    wait_for(lambda: "cannot record that job" in log_text(worker), 30, 0.2, "the worker to say it waits for the database")
    time.sleep(3)
    assert worker.poll() is None and jobs.get(engine, running.id).status == "running"  # nothing could be stored yet

    small_disk.free()
    ended = wait_for(lambda: (j := jobs.get(engine, running.id)).status != "running" and j, 90, 0.2, "the failure to be recorded")
    assert ended.status == "failed" and ended.attempts == 1, ended
    assert ended.error == f"disk full while writing the database {home}/embedlab.db (free 0 B)"
    assert [line["message"] for line in joblogs.lines(engine, running.id) if line["level"] == "error"] == [ended.error]
    assert log_text(worker).count("cannot record that job") == 1 and worker.poll() is None
