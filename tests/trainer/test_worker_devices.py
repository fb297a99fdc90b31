"""A worker's devices shared among its jobs: real server and worker processes (`embedlab worker --devices 2` on CPU),
jobs submitted over HTTP, what runs when observed through the API (the store's rows)."""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from tests.conftest import wait_for
from tests.trainer.test_worker import job, submit, wait_status, wait_step

LONG = {"steps": 100_000, "eval_every": 1000}


def running_at_once(url: str, *job_ids: int, timeout: float = 120) -> list[dict]:
    """The jobs, each seen `running` in one read of the jobs list."""

    def all_running() -> list[dict] | None:
        rows = {j["id"]: j for j in httpx.get(f"{url}/api/jobs", params={"status": "running"}, timeout=30).json()["jobs"]}
        return [rows[i] for i in job_ids] if all(i in rows for i in job_ids) else None

    return wait_for(all_running, timeout, 0.2, f"jobs {job_ids} to run at once")


def worker_row(url: str) -> dict:
    [row] = httpx.get(f"{url}/api/workers", timeout=30).json()
    return row


def test_a_two_device_worker_runs_two_one_device_jobs_at_once(procs):
    url = procs.server()
    procs.worker("--devices", "2")
    first, second = submit(url, steps=60), submit(url, steps=60)
    running_at_once(url, first["id"], second["id"])
    # The workers API names each job the worker runs now and what it holds (found while both still run: retried).
    both = wait_for(lambda: len((w := worker_row(url))["running"]) == 2 and w, 60, 0.2, "the worker to list both jobs")
    assert [(r["job_id"], r["devices"], r["run_device"]) for r in both["running"]] == [(first["id"], 1, "cpu"), (second["id"], 1, "cpu")]
    for created in (first, second):
        done = wait_status(url, created["id"], ("succeeded", "failed"))
        assert done["status"] == "succeeded" and done["attempts"] == 1, done["error"]
    assert worker_row(url)["running"] == []


def test_a_two_device_job_waits_for_both_devices_then_runs_alone(procs):
    url = procs.server()
    procs.worker("--devices", "2")
    busy = submit(url, **LONG)
    wait_step(url, busy["id"], 3)
    wide = submit(url, devices=2, steps=30)
    narrow = submit(url, steps=30)
    time.sleep(3)  # several polls of the worker, one device free all along
    assert job(url, wide["id"])["status"] == "queued"
    assert job(url, narrow["id"])["status"] == "queued"  # held back: not passing the 2-device job that is first in line
    httpx.post(f"{url}/api/jobs/{busy['id']}/cancel", timeout=30)
    assert wait_status(url, busy["id"], ("cancelled", "failed"))["status"] == "cancelled"
    running = wait_status(url, wide["id"], ("running", "succeeded", "failed"))
    assert running["status"] == "running" and job(url, narrow["id"])["status"] == "queued"  # alone on both devices
    done = wait_status(url, wide["id"], ("succeeded", "failed"))
    assert done["status"] == "succeeded" and done["device"] == "cpu x2", done["error"]
    assert wait_status(url, narrow["id"], ("succeeded", "failed"))["status"] == "succeeded"


def test_cancelling_one_of_two_concurrent_jobs_leaves_the_other_to_succeed(procs):
    url = procs.server()
    procs.worker("--devices", "2")
    doomed, kept = submit(url, **LONG), submit(url, steps=150, eval_every=50)
    running_at_once(url, doomed["id"], kept["id"])
    httpx.post(f"{url}/api/jobs/{doomed['id']}/cancel", timeout=30)
    assert wait_status(url, doomed["id"], ("cancelled", "failed", "succeeded"))["status"] == "cancelled"
    assert job(url, kept["id"])["status"] == "running"
    done = wait_status(url, kept["id"], ("succeeded", "failed"))
    assert done["status"] == "succeeded" and done["attempts"] == 1, done["error"]


@pytest.mark.slow
def test_sigterm_requeues_every_running_attempt(procs):
    url = procs.server()
    worker = procs.worker("--devices", "2")
    a, b = submit(url, **LONG), submit(url, **LONG)
    running_at_once(url, a["id"], b["id"])
    wait_step(url, a["id"], 3), wait_step(url, b["id"], 3)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0
    for created in (a, b):
        requeued = job(url, created["id"])
        assert requeued["status"] == "queued" and requeued["progress"]["step"] >= 3, requeued


def test_an_attempt_is_shown_on_the_devices_it_holds(settings):
    """The job's run_device (the job page's Device): one CPU process "cpu", N of them "cpu xN", GPUs by index."""
    import torch

    from trainer.worker import Worker

    worker = Worker(settings, devices=2)
    assert [worker.run_device(s) for s in ([0], [1], [0, 1])] == ["cpu", "cpu", "cpu x2"]
    worker.device, worker.devices = torch.device("cuda:2"), [torch.device("cuda:2"), torch.device("cuda:3")]  # as on a GPU host
    assert [worker.run_device(s) for s in ([0], [1], [0, 1])] == ["cuda:2", "cuda:3", "cuda:2,3"]
