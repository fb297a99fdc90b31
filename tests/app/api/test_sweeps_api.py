"""Sweeps over HTTP: grid expansion, the job limit, cancel, the margin evidence of a finished job."""

from __future__ import annotations

from app.config import Settings
from app.store import jobs
from trainer.worker import Worker

BASE = {"dataset": "digits", "steps": 20, "eval_every": 10, "classes_per_batch": 4, "samples_per_class": 8}


def test_one_axis_sweep(client):
    r = client.post("/api/sweeps", json={"name": "m", "base": BASE, "grid": {"margin": [0.1, 0.2, 0.3]}})
    assert r.status_code == 201, r.text
    body = r.json()
    assert len(body["job_ids"]) == 3
    detail = client.get(f"/api/sweeps/{body['id']}").json()
    assert [j["spec"]["margin"] for j in detail["job_list"]] == [0.1, 0.2, 0.3]
    assert detail["axes"] == ["margin"] and detail["status_counts"] == {"queued": 3}
    assert {j["sweep_id"] for j in detail["job_list"]} == {body["id"]}
    assert client.get("/api/sweeps").json()["sweeps"][0]["jobs"] == 3


def test_several_axes_and_seeds_share_one_split(client):
    r = client.post("/api/sweeps", json={"base": BASE, "grid": {"margin": [0.4, 0.5], "loss": ["triplet", "circle"]}, "seeds": [0, 1]})
    assert r.status_code == 201, r.text
    detail = client.get(f"/api/sweeps/{r.json()['id']}").json()
    runs = {(j["spec"]["loss"], j["spec"]["margin"], j["spec"]["seed"]) for j in detail["job_list"]}
    assert len(runs) == 8
    assert {j["spec"]["split_seed"] for j in detail["job_list"]} == {0}
    assert detail["name"] == "sweep margin, loss"


def test_limits_and_bad_axes(client):
    big = client.post("/api/sweeps", json={"base": BASE, "grid": {"margin": [i / 100 for i in range(101)]}, "seeds": [0, 1]})
    assert big.status_code == 422
    [err] = big.json()["detail"]
    assert err["field"] == "grid" and "202 jobs" in err["reason"] and "limit is 200" in err["reason"]
    bad_axis = client.post("/api/sweeps", json={"base": BASE, "grid": {"marign": [0.1]}})
    assert bad_axis.json()["detail"][0]["field"] == "grid.marign"
    bad_value = client.post("/api/sweeps", json={"base": BASE, "grid": {"margin": [0.1, -1]}})
    assert bad_value.status_code == 422 and bad_value.json()["detail"][0]["field"] == "grid.margin"
    bad_base = client.post("/api/sweeps", json={"base": {**BASE, "classes_per_batch": 9}, "grid": {"margin": [0.1]}})
    assert bad_base.json()["detail"][0]["field"] == "base.classes_per_batch"
    assert client.get("/api/jobs").json()["total"] == 0  # nothing half-created


def test_cancel_sweep_cancels_queued_and_stops_running(client, engine):
    r = client.post("/api/sweeps", json={"base": BASE, "grid": {"margin": [0.1, 0.2, 0.3]}}).json()
    running = jobs.claim(engine, "w", devices=("auto", "cpu"), lease_seconds=30, run_device="cpu")
    assert client.post(f"/api/sweeps/{r['id']}/cancel").status_code == 200
    detail = client.get(f"/api/sweeps/{r['id']}").json()
    by_id = {j["id"]: j for j in detail["job_list"]}
    assert by_id[running.job_id]["cancel_requested"] and by_id[running.job_id]["status"] == "running"
    assert sorted(j["status"] for j in detail["job_list"] if j["id"] != running.job_id) == ["cancelled", "cancelled"]
    assert client.post("/api/sweeps/999/cancel").status_code == 404


def test_finished_sweep_recommends_and_job_shows_distances(client, settings: Settings):
    r = client.post("/api/sweeps", json={"base": BASE, "grid": {"margin": [0.1, 0.4]}}).json()
    Worker(settings, threads=1).run(max_jobs=2, exit_when_idle=True)
    detail = client.get(f"/api/sweeps/{r['id']}").json()
    assert detail["status_counts"] == {"succeeded": 2}
    [rec] = detail["recommendations"]
    best = max(p["mean"] for p in rec["points"])
    assert (
        rec["loss"] == "triplet"
        and rec["best"]["mean"] == best
        and [p["margin"] for p in rec["points"]] == [0.1, 0.4]
        and rec["best"]["runs"] == 1
        and "mean" in rec["rule"]
    )
    assert len(rec["comparisons"]) == 1 and rec["statement"] and rec["test_used"]

    job_id = r["job_ids"][0]
    d = client.get(f"/api/jobs/{job_id}/distances").json()
    assert [e["step"] for e in d["evaluations"]] == [0, 10, 20]
    last = d["evaluations"][-1]
    n_val = 542  # digits 5-7, the validation part
    assert sum(last["positive"]) + sum(last["negative"]) == n_val * (n_val - 1) // 2
    assert 0 <= last["overlap"] <= 1 and last["margin_lines"][0]["x"] > last["positive_median"]
    assert "suggestion" not in d  # one job's distances echo its own margin: no number is read off them
    series = client.get(
        f"/api/jobs/{job_id}/metrics", params={"names": "train/triplets_easy,train/triplets_semihard,train/triplets_hard"}
    ).json()["series"]
    fractions = [sum(v) for v in zip(*(s["value"] for s in series.values()))]
    assert len(fractions) == 20 and all(abs(f - 1) < 1e-6 for f in fractions)
    assert client.get("/api/jobs/999/distances").status_code == 404
