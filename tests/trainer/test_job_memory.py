"""A job cannot take its worker down: a memory ceiling per attempt, a refusal at submit, and no
process outliving the one that started it (real server, worker and attempt processes)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from app.config import Settings
from app.store import jobs
from app.store.db import get_engine
from tests.conftest import wait_for
from tests.trainer.test_worker import submit, wait_status, wait_step

# 8 x 20 images, no miner: NT-Xent's [positive x negative pairs] matrices (3,040 x 22,400 floats)
# need ~1.5 GB; the API's ceiling (the host's) lets it in, the worker's 1.8 GB does not.
GREEDY = {"loss": "ntxent", "miner": "none", "classes_per_batch": 8, "samples_per_class": 20, "split": "samples"}


def children(pid: int) -> list[int]:
    """Processes whose parent is `pid`, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def gone(pid: int) -> bool:
    """Ended: no such process, or a zombie nobody reaped yet."""
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def test_a_job_over_its_memory_ceiling_fails_with_the_reason_and_the_worker_goes_on(procs):
    url = procs.server()
    worker = procs.start("worker", "--threads", "1", "--device", "cpu", env={**procs.env, "EMBEDLAB_JOB_MEMORY_MB": "1800"})
    greedy = submit(url, **GREEDY)
    failed = wait_status(url, greedy["id"], ("failed", "succeeded"))
    assert failed["status"] == "failed" and failed["attempts"] == 1, failed  # not retried: the same spec would fail again
    assert failed["error"].startswith("out of memory at ") and "the loss (ntxent) asked for" in failed["error"], failed["error"]
    assert "8 x 20 batch" in failed["error"] and "1.8 GB" in failed["error"] and "try a smaller batch" in failed["error"]
    # The same worker takes the next job: NT-Xent with the default semi-hard miner fits (unique pairs, trainer.losses).
    assert worker.poll() is None
    fits = submit(url, dataset="digits", loss="ntxent", steps=5, eval_every=5)
    done = wait_status(url, fits["id"], ("failed", "succeeded"))
    assert done["status"] == "succeeded", done["error"]
    assert done["worker"] == failed["worker"] and worker.poll() is None


def test_a_spec_estimated_over_the_ceiling_is_refused_at_submit(home):
    from fastapi.testclient import TestClient

    from app.main import create_app

    with TestClient(create_app(Settings(home=home, demo=False, job_memory_mb=4000))) as client:
        r = client.post("/api/jobs", json={"dataset": "digits", **GREEDY, "classes_per_batch": 10, "samples_per_class": 60})
        assert r.status_code == 422, r.text
        error = r.json()["detail"][0]
        assert error["field"] == "classes_per_batch"
        for named in ("'ntxent'", "'none'", "10 x 60 batch (classes_per_batch x samples_per_class)", "over the 3.9 GB"):
            assert named in error["reason"], error["reason"]
        assert client.post("/api/jobs", json={"dataset": "digits", "loss": "ntxent"}).status_code == 201  # the spec fits


def test_kill_9_of_serve_takes_its_workers_and_their_jobs_down(procs, settings):
    url = procs.server(workers=1)
    serve = procs.procs[0]
    created = submit(url, steps=100_000, eval_every=1000)
    wait_step(url, created["id"], 3)
    [worker] = children(serve.pid)
    [attempt] = children(worker)
    serve.send_signal(signal.SIGKILL)
    serve.wait()
    wait_for(lambda: gone(worker) and gone(attempt), 30, 0.2, "the worker and its attempt to end with serve")
    # The worker got SIGTERM: it checkpointed and requeued its job (not counted as a failure).
    row = jobs.get(get_engine(settings.db_url), created["id"])
    assert row.status == "queued" and row.step >= 3


def test_an_attempt_dies_with_its_worker(procs):
    url = procs.server()
    worker = procs.worker()
    created = submit(url, steps=100_000, eval_every=1000)
    wait_step(url, created["id"], 3)
    [attempt] = children(worker.pid)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    wait_for(lambda: gone(attempt), 10, 0.1, "the attempt to end with its worker")
