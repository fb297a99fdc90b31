"""Faults survived with real processes: paused workers, a killed server, failing jobs, bad data, a full disk."""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from sqlalchemy import select

from app.spec import JobSpec
from app.store import joblogs, jobs
from app.store.db import get_engine
from app.store.models import Metric
from tests.conftest import wait_for
from tests.trainer.test_worker import job, submit, wait_status, wait_step
from trainer import artifacts
from trainer.worker import Worker

pytestmark = pytest.mark.slow


def process_family(pid: int) -> list[int]:
    """`pid` and its descendants, from /proc (every thread's children)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for task in Path(f"/proc/{p}/task").iterdir():
            todo += [int(c) for c in (task / "children").read_text().split()]
    return found


def test_a_paused_worker_cannot_write_after_its_lease_was_taken_over(procs, settings):
    url = procs.server()
    paused = procs.worker()
    # Long enough that the worker is still training when it is paused (it trains ~60 steps/s alone).
    created = submit(url, steps=400, eval_every=200)
    wait_step(url, created["id"], 5)
    family = process_family(paused.pid)  # the worker and the attempt process it forked for the job
    for pid in family:
        os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: job(url, created["id"])["status"] == "queued", 30, 0.2, "the lease to expire")
        taken_over_at = time.time()
        procs.worker()
        wait_for(lambda: job(url, created["id"])["attempts"] == 2, 60, 0.2, "a second worker to claim")
    finally:
        for pid in family:
            os.kill(pid, signal.SIGCONT)
    done = wait_status(url, created["id"], ("succeeded", "failed"), timeout=240)
    assert done["status"] == "succeeded" and done["attempts"] == 2
    engine = get_engine(settings.db_url)
    with engine.connect() as conn:
        late = conn.execute(
            select(Metric.step).where(Metric.job_id == created["id"], Metric.attempt == 1, Metric.wall_time > taken_over_at + 0.5)
        ).all()
    assert late == []  # the stale worker's points were refused
    steps = httpx.get(f"{url}/api/jobs/{created['id']}/metrics", params={"names": "train/loss", "max_points": 100000}).json()["series"][
        "train/loss"
    ]["step"]
    assert steps == list(range(1, 401))
    assert paused.poll() is None  # it survived losing the job and went back to polling


def test_killing_the_api_server_loses_nothing(procs):
    url = procs.server()
    procs.worker()
    created = submit(url, steps=300, eval_every=100)
    wait_step(url, created["id"], 10)
    server = procs.procs[0]
    server.kill()
    server.wait()
    time.sleep(3)  # the worker trains on, writing to the database
    url = procs.server()
    done = wait_status(url, created["id"], ("succeeded", "failed"), timeout=240)
    assert done["status"] == "succeeded" and done["attempts"] == 1
    steps = httpx.get(f"{url}/api/jobs/{created['id']}/metrics", params={"names": "train/loss", "max_points": 100000}).json()["series"][
        "train/loss"
    ]["step"]
    assert steps == list(range(1, 301))


def folder(root, classes: int = 3, per_class: int = 10, size: int = 16):
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / f"class{c}" / f"{i}.png")
    return root


IMAGE_JOB = {
    "dataset": "imagefolder",
    "split": "samples",
    "classes_per_batch": 2,
    "samples_per_class": 4,
    "val_fraction": 0.34,
    "image_size": 16,
    "steps": 20,
    "eval_every": 10,
}


def test_a_job_failing_on_every_attempt_backs_off_then_fails(engine, settings):
    data = folder(settings.data_root_paths[0] / "vanishing")
    created = jobs.submit(engine, JobSpec.model_validate({**IMAGE_JOB, "dataset_path": str(data)}), max_attempts=3)
    for f in data.rglob("*.png"):
        f.unlink()
    started = time.monotonic()
    Worker(settings, threads=1).run(max_jobs=3)
    row = jobs.get(engine, created.id)
    assert row.status == "failed" and row.attempts == 3
    assert "failed on all 3 attempts" in row.error and "class folder" in row.error
    assert time.monotonic() - started >= 0.5 + 1.0  # backoff 0.5 s, then 1 s
    assert sum(line["level"] == "error" for line in joblogs.lines(engine, created.id)) == 3


def test_corrupt_and_fake_images_are_skipped_and_counted(engine, settings):
    data = folder(settings.data_root_paths[0] / "messy")
    (data / "class0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    (data / "class1" / "notes.jpg").write_text("not an image")
    created = jobs.submit(engine, JobSpec.model_validate({**IMAGE_JOB, "dataset_path": str(data)}))
    Worker(settings, threads=1).run(max_jobs=1, exit_when_idle=True)
    row = jobs.get(engine, created.id)
    assert row.status == "succeeded", row.error
    log = " ".join(line["message"] for line in joblogs.lines(engine, created.id))
    assert "skipped 2 unreadable file(s) of 32" in log and "broken.png" in log


def test_a_full_disk_keeps_the_last_good_checkpoint(engine, settings, monkeypatch):
    created = jobs.submit(
        engine, JobSpec(dataset="digits", steps=20, eval_every=10, classes_per_batch=4, samples_per_class=8), max_attempts=1
    )
    real_save, saves = torch.save, []

    def save_then_fill_the_disk(obj, f, *a, **kw):
        saves.append(obj.get("step") if isinstance(obj, dict) else None)
        if len(saves) >= 3:  # step 0's best.pt and checkpoint.pt are written, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", save_then_fill_the_disk)
    Worker(settings, threads=1).run(max_jobs=1, exit_when_idle=True)
    row = jobs.get(engine, created.id)
    job_dir = settings.job_dir(created.id)
    assert row.status == "failed" and row.error.startswith(f"disk full while writing {job_dir}/checkpoint.pt (free "), row.error
    assert artifacts.load_checkpoint(job_dir)["step"] == 0  # the step-0 checkpoint, intact
    assert artifacts.load_checkpoint(job_dir, artifacts.BEST_CHECKPOINT)["step"] == 0
    assert [p.name for p in job_dir.iterdir() if p.name.endswith(".tmp")] == []
