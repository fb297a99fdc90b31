"""After the last step a job says what it is doing; a cancelled job keeps its last evaluation and the explorer opens it."""

from __future__ import annotations

import json
import re

import httpx
import numpy as np
import torch

from tests.conftest import wait_for
from tests.trainer.test_worker import job, submit, wait_status, wait_step


def test_the_layout_phase_is_reported_until_the_job_ends(procs):
    url = procs.server()
    procs.worker()
    created = submit(url, name="phases", steps=20, explorer=True)
    wait_step(url, created["id"], 20)
    seen: list[str] = []

    def ended() -> dict | None:
        now = job(url, created["id"])
        if now["phase"] and now["phase"] not in seen:
            seen.append(now["phase"])
        return now if now["status"] != "running" else None

    done = wait_for(ended, 180, 0.1, "the job to end")
    assert done["status"] == "succeeded" and done["phase"] is None
    percents = [int(m[1]) for p in seen if (m := re.fullmatch(r"laying out embeddings: (\d+)%", p))]
    assert percents, seen
    assert percents == sorted(percents) and all(0 <= p <= 100 for p in percents)


def test_a_cancelled_job_keeps_its_last_evaluation(procs, home):
    url = procs.server()
    procs.worker()
    created = submit(url, name="cancel me", steps=5000, eval_every=15, explorer=True)
    running = wait_step(url, created["id"], 20)
    assert httpx.post(f"{url}/api/jobs/{created['id']}/cancel", timeout=30).status_code == 200
    done = wait_status(url, created["id"], ("cancelled", "failed", "succeeded"), timeout=180)
    assert done["status"] == "cancelled" and done["progress"]["step"] >= running["progress"]["step"]

    log = " ".join(line["message"] for line in httpx.get(f"{url}/api/jobs/{created['id']}/logs", timeout=30).json())
    m = re.search(r"cancelled at step (\d+); keeping the checkpoint and embeddings of the evaluation at step (\d+)", log)
    assert m, log
    stopped, evaluated = int(m[1]), int(m[2])
    assert stopped == done["progress"]["step"] and evaluated == stopped - stopped % 15 and evaluated >= 15

    job_dir = home / "jobs" / str(created["id"])
    assert torch.load(job_dir / "checkpoint.pt", weights_only=True)["step"] == evaluated
    kept = np.load(job_dir / "embeddings.npz")
    assert kept["embeddings"].shape == (len(kept["labels"]), 128)
    series = httpx.get(f"{url}/api/jobs/{created['id']}/metrics", timeout=30).json()["series"]
    assert series["val/mean_average_precision_at_r"]["step"][-1] == evaluated

    # The explorer opens it: its layout is of the evaluated model, on the same validation images.
    points = httpx.get(f"{url}/api/jobs/{created['id']}/embedding", timeout=60)
    assert points.status_code == 200, points.text
    with np.load(job_dir / "projection.npz") as z:
        assert json.loads(str(z["meta"]))["step"] == evaluated
        assert np.allclose(z["embeddings"][z["split"] == 0], kept["embeddings"], atol=1e-5)
    page = httpx.get(f"{url}/jobs/{created['id']}/explore", timeout=30)
    assert page.status_code == 200
