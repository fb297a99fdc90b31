"""GET /api/sweeps/{id}/layouts on a sweep of really trained tiny digits jobs: its states, the cache, the alignment."""

from __future__ import annotations

import threading
import time

import numpy as np

from app.config import Settings
from app.files import EMBEDDINGS_FILE, LAYOUTS_FILE
from trainer.worker import Worker

# explorer off: the comparison reads embeddings.npz, which every succeeded job writes
BASE = {"dataset": "digits", "steps": 20, "eval_every": 20, "classes_per_batch": 4, "samples_per_class": 8, "explorer": False}


def wait_ready(client, sweep_id: int, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(f"/api/sweeps/{sweep_id}/layouts")
        if r.status_code == 200:
            return r.json()
        assert r.status_code == 202 and r.json() == {"status": "computing"}, r.text
        time.sleep(0.5)
    raise AssertionError("the layouts were not ready in time")


def fits_running(sweep_id: int) -> int:
    return sum(t.name == f"sweep-layout-{sweep_id}" for t in threading.enumerate())


def test_layouts_of_a_trained_sweep(client, settings: Settings):
    made = client.post("/api/sweeps", json={"name": "cmp", "base": BASE, "grid": {"margin": [0.1, 0.4, 0.8]}}).json()
    sweep_id = made["id"]
    assert client.get("/api/sweeps/99999/layouts").status_code == 404

    Worker(settings, threads=2).run(max_jobs=1, exit_when_idle=False)
    one = client.get(f"/api/sweeps/{sweep_id}/layouts")
    assert one.status_code == 409
    assert "at least 2 succeeded jobs" in one.json()["detail"] and "1 of 3" in one.json()["detail"]

    Worker(settings, threads=2).run(max_jobs=2, exit_when_idle=True)
    first = client.get(f"/api/sweeps/{sweep_id}/layouts")
    assert first.status_code == 202 and first.json() == {"status": "computing"}
    assert client.get(f"/api/sweeps/{sweep_id}/layouts").status_code == 202
    assert fits_running(sweep_id) == 1  # asked twice, one fit
    body = wait_ready(client, sweep_id)

    job_ids = sorted(made["job_ids"])
    assert body["status"] == "ready" and body["job_ids"] == job_ids and body["skipped"] == []
    assert sorted(body["layouts"]) == sorted(str(i) for i in job_ids)
    index, label = np.array(body["points"]["index"]), np.array(body["points"]["label"])
    assert len(index) == body["common_points"] == 542  # digits 5-7: the validation part, smaller than the bound
    assert body["class_names"][:10] == [str(c) for c in range(10)]

    # Row i is the same image in every job: its dataset index and label are each job's own.
    for job_id in job_ids:
        with np.load(settings.job_dir(job_id) / EMBEDDINGS_FILE) as z:
            stored = dict(zip(z["indices"].tolist(), z["labels"].tolist()))
        assert [stored[i] for i in index.tolist()] == label.tolist()
        xy = body["layouts"][str(job_id)]
        assert len(xy["x"]) == len(xy["y"]) == len(index) and np.isfinite(xy["x"]).all()

    # Aligned: an image sits far closer to its own place in another job's panel than to a random other image's.
    xy = [np.column_stack([body["layouts"][str(i)]["x"], body["layouts"][str(i)]["y"]]) for i in job_ids]
    shuffle = np.random.default_rng(0).permutation(len(index))
    for a, b in [(xy[0], xy[1]), (xy[0], xy[-1])]:
        same = np.median(np.linalg.norm(a - b, axis=1))
        other = np.median(np.linalg.norm(a - b[shuffle], axis=1))
        assert same < 0.4 * other, (same, other)

    # Cached: the next call answers at once from the file, nothing refitted.
    cache = settings.sweep_dir(sweep_id) / LAYOUTS_FILE
    written = cache.stat().st_mtime_ns
    again = client.get(f"/api/sweeps/{sweep_id}/layouts")
    assert again.status_code == 200 and again.json() == body
    assert fits_running(sweep_id) == 0 and cache.stat().st_mtime_ns == written
