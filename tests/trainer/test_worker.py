"""The worker end to end: real server and worker processes, jobs submitted over HTTP."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import httpx
import pytest
import torch

from tests.conftest import postgres_database, wait_for

# explorer off: the end-of-job UMAP layout has tests of its own (tests/trainer/test_project.py, tests/e2e/test_explorer.py).
TINY = {"dataset": "digits", "steps": 30, "eval_every": 10, "classes_per_batch": 4, "samples_per_class": 8, "explorer": False}


def submit(url: str, **spec) -> dict:
    r = httpx.post(f"{url}/api/jobs", json={**TINY, **spec}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()


def job(url: str, job_id: int) -> dict:
    return httpx.get(f"{url}/api/jobs/{job_id}", timeout=30).json()


def wait_status(url: str, job_id: int, statuses: tuple[str, ...], timeout: float = 120) -> dict:
    return wait_for(lambda: (j := job(url, job_id))["status"] in statuses and j, timeout, 0.2, f"job {job_id} to be {statuses}")


def wait_step(url: str, job_id: int, step: int, timeout: float = 120) -> dict:
    return wait_for(lambda: (j := job(url, job_id))["progress"]["step"] >= step and j, timeout, 0.2, f"job {job_id} to reach step {step}")


def test_a_job_trains_end_to_end(procs, home):
    url = procs.server()
    procs.worker()
    created = submit(url, name="e2e")
    done = wait_status(url, created["id"], ("succeeded", "failed"))
    assert done["status"] == "succeeded", done["error"]
    assert done["progress"] == {"step": 30, "total": 30} and done["attempts"] == 1 and done["device"] == "cpu"
    assert done["started_at"] and done["finished_at"] >= done["started_at"]
    for name in ("val/precision_at_1", "val/r_precision", "val/mean_average_precision_at_r", "val/loss"):
        assert 0 <= done["metrics"][name] <= 1.5, name
    series = httpx.get(f"{url}/api/jobs/{created['id']}/metrics").json()["series"]
    assert series["train/loss"]["step"] == list(range(1, 31))
    assert series["val/mean_average_precision_at_r"]["step"] == [0, 10, 20, 30]

    ckpt = torch.load(home / "jobs" / str(created["id"]) / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 30 and ckpt["spec"]["name"] == "e2e" and "model" in ckpt and "optimizer" in ckpt
    emb = httpx.get(f"{url}/api/jobs/{created['id']}/download/embeddings")
    assert emb.status_code == 200
    import io

    import numpy as np

    z = np.load(io.BytesIO(emb.content))
    assert z["embeddings"].shape == (len(z["labels"]), 128) and set(np.unique(z["labels"])) == {5, 6, 7}  # validation classes
    assert np.allclose(np.linalg.norm(z["embeddings"], axis=1), 1, atol=1e-4)
    logs = httpx.get(f"{url}/api/jobs/{created['id']}/logs").json()
    assert any("training images" in line["message"] for line in logs)


def test_cancel_a_running_job_keeps_its_metrics(procs):
    url = procs.server()
    procs.worker()
    created = submit(url, steps=100_000, eval_every=1000)
    wait_step(url, created["id"], 5)
    assert httpx.post(f"{url}/api/jobs/{created['id']}/cancel").json()["cancel_requested"]
    # The worker stops within a step, then lays out the step-0 evaluation it keeps for the explorer before it ends the job.
    ended = wait_status(url, created["id"], ("cancelled", "failed", "succeeded"), timeout=120)
    assert ended["status"] == "cancelled"
    assert len(httpx.get(f"{url}/api/jobs/{created['id']}/metrics").json()["series"]["train/loss"]["step"]) >= 5


def test_nan_loss_fails_with_the_step_named(procs):
    url = procs.server()
    procs.worker()
    # A loss parameter that overflows at once (gamma 1e38) is refused at submit; a learning rate far too high
    # for unnormalised embeddings and a strong weight decay diverges within a few dozen steps instead.
    created = submit(
        url,
        loss="contrastive",
        miner="none",
        normalize=False,
        margin=100,
        embedding_dim=4096,
        optimizer="sgd",
        lr=10,
        weight_decay=1,
        steps=100,
        eval_every=100,
    )
    ended = wait_status(url, created["id"], ("failed", "succeeded"))
    assert ended["status"] == "failed" and re.search(r"loss became nan at step \d+", ended["error"]) and ended["attempts"] == 1
    # what was written before the failure (the step-0 evaluation) is still there
    assert httpx.get(f"{url}/api/jobs/{created['id']}/metrics").json()["series"]["val/precision_at_1"]["step"] == [0]


@pytest.mark.slow
def test_sigterm_requeues_and_the_next_worker_resumes_from_the_checkpoint(procs):
    url = procs.server()
    first = procs.worker()
    created = submit(url, steps=100_000, eval_every=20)
    wait_step(url, created["id"], 45)
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0
    requeued = job(url, created["id"])
    assert requeued["status"] == "queued" and requeued["progress"]["step"] >= 45
    procs.worker()
    resumed = wait_step(url, created["id"], requeued["progress"]["step"] + 1)
    assert resumed["attempts"] == 2
    logs = httpx.get(f"{url}/api/jobs/{created['id']}/logs").json()
    assert any(f"resumed from the checkpoint at step {requeued['progress']['step']}" in line["message"] for line in logs)
    series = httpx.get(f"{url}/api/jobs/{created['id']}/metrics", params={"names": "train/loss"}).json()["series"]["train/loss"]
    assert series["step"][:5] == [1, 2, 3, 4, 5]  # not restarted: earlier points kept, one value per step
    assert len(series["step"]) == len(set(series["step"]))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, procs):
    """Run the processes of a test on SQLite, then on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield
        return
    with postgres_database() as url:
        procs.env["EMBEDLAB_DATABASE_URL"] = url
        yield
        procs.stop_all()  # before the database is dropped


@pytest.mark.slow
def test_a_killed_worker_loses_its_lease_and_another_finishes_the_job(procs, store):
    url = procs.server()
    doomed = procs.worker()
    created = submit(url, steps=150, eval_every=50)
    wait_step(url, created["id"], 10)
    doomed.kill()
    doomed.wait()
    assert job(url, created["id"])["status"] == "running"
    procs.worker()
    done = wait_status(url, created["id"], ("succeeded", "failed"), timeout=180)
    assert done["status"] == "succeeded" and done["attempts"] == 2


def test_submit_cli_waits_and_exits_by_outcome(procs, tmp_path):
    url = procs.server()
    procs.worker()
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text('{"dataset": "digits", "steps": 15, "eval_every": 15, "explorer": false}')
    bad.write_text('{"dataset": "digits", "margin": -1}')
    env = {**procs.env, "EMBEDLAB_URL": url}
    refused = subprocess.run([sys.executable, "-m", "app.cli", "submit", str(bad)], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "margin" in refused.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "app.cli", "submit", str(good), "--wait"], env=env, capture_output=True, text=True, timeout=180
    )
    assert ok.returncode == 0, ok.stderr
    job_id = int(ok.stdout.strip())
    assert job(url, job_id)["status"] == "succeeded" and "succeeded" in ok.stderr


def test_the_devices_busy_on_a_host_share_its_cores(settings, engine, monkeypatch):
    """Threads per device: the host's cores among the devices that running jobs hold on it (a 2-rank job holds two)."""
    import socket

    from app.spec import JobSpec
    from app.store import jobs, workers
    from trainer.worker import Worker

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    worker = Worker(settings)
    host = socket.gethostname()
    assert worker.share_per_device() == 8  # alone: every core
    for i, devices in enumerate((1, 2)):
        workers.register(engine, f"{host}:{i}", host=host, pid=i, device="cpu", version="0", devices=2)
        jobs.submit(engine, JobSpec(devices=devices, classes_per_batch=4))
        jobs.claim(engine, f"{host}:{i}", devices=("auto",), lease_seconds=30, run_device="cpu", free_devices=2)
    workers.register(engine, "idle", host=host, pid=9, device="cpu", version="0")
    workers.register(engine, "far:1", host="far", pid=1, device="cpu", version="0")
    jobs.submit(engine, JobSpec())
    jobs.claim(engine, "far:1", devices=("auto",), lease_seconds=30, run_device="cpu")
    assert worker.share_per_device() == 2  # 8 cores, 3 devices busy here (the idle worker and the other host don't count)
    assert Worker(settings, threads=3).share_per_device() == 3


def test_bf16_autocast_path_trains_on_cpu(settings, engine):
    """The mixed-precision path GPUs take by default, exercised on the CPU."""
    from app.spec import JobSpec
    from app.store import jobs
    from trainer.worker import Worker

    created = jobs.submit(
        engine, JobSpec(dataset="digits", steps=20, eval_every=10, classes_per_batch=4, samples_per_class=8, precision="bf16")
    )
    Worker(settings, threads=1).run(max_jobs=1, exit_when_idle=True)
    done = jobs.get(engine, created.id)
    assert done.status == "succeeded", done.error
    assert done.summary["val/precision_at_1"] > 0.5


def test_explorer_off_skips_the_layout_and_says_so(settings, engine):
    """A sweep of many jobs can skip the UMAP layout; the embeddings are still saved and the explorer says why it is empty."""
    from fastapi.testclient import TestClient

    from app.files import EMBEDDINGS_FILE
    from app.main import create_app
    from app.spec import JobSpec
    from app.store import jobs
    from trainer.worker import Worker

    created = jobs.submit(
        engine, JobSpec(dataset="digits", steps=10, eval_every=10, classes_per_batch=4, samples_per_class=8, explorer=False)
    )
    Worker(settings, threads=1).run(max_jobs=1, exit_when_idle=True)
    assert jobs.get(engine, created.id).status == "succeeded"
    assert (settings.job_dir(created.id) / EMBEDDINGS_FILE).is_file()
    with TestClient(create_app(settings)) as client:
        r = client.get(f"/api/jobs/{created.id}/embedding")
        assert r.status_code == 404 and "explorer: false" in r.json()["detail"]
        assert client.get(f"/api/jobs/{created.id}/download/embeddings").status_code == 200
