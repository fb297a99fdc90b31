"""Searches: Optuna's sampler and pruner on embedlab's queue, with real server and worker processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import httpx
import optuna
import pytest

from app import files
from app.search import objective, storage_for
from app.store import jobs as job_store
from app.store import searches
from app.store.db import get_engine
from tests.conftest import wait_for

TINY = {"dataset": "digits", "backbone": "cnn", "explorer": False, "classes_per_batch": 3, "samples_per_class": 8}


def search_body(**over) -> dict:
    body = {
        "base": {**TINY, "steps": 60, "eval_every": 5},
        "space": {"margin": {"low": 0.01, "high": 1.0, "log": True}},
        "trials": 2,
        "parallel": 1,
    }
    return {**body, **over}


@pytest.mark.parametrize(
    "body, field",
    [
        (search_body(space={"margin": {"low": 0.5, "high": 0.5}}), "space.margin"),
        (search_body(space={"margin": {"low": 0.8, "high": 0.1}}), "space.margin"),
        (search_body(space={"margin": {"low": 0.0, "high": 1.0, "log": True}}), "space.margin.low"),
        (search_body(space={"marginn": {"low": 0.1, "high": 1.0}}), "space.marginn"),
        (search_body(space={"loss": {"low": 0.1, "high": 1.0}}), "space.loss"),
        (search_body(space={"loss": []}), "space.loss"),
        (search_body(space={"embedding_dim": {"low": 2.5, "high": 64}}), "space.embedding_dim"),
        (search_body(space={"margin": {"low": 0.1, "high": 1000.0}}), "space.margin"),  # above the field's own limit
        (search_body(space={"seed": [0, 1]}), "space.seed"),
        (search_body(trials=1000), "trials"),
        (search_body(base={**TINY, "steps": 50, "eval_every": 50}), "base.eval_every"),
        (search_body(space={"steps": {"low": 20, "high": 200}}, base={**TINY, "eval_every": 50}), "space.steps"),
        (search_body(space={"eval_every": {"low": 5, "high": 60}}), "space.eval_every"),  # base steps 60
        (search_body(pruner="median", space={"eval_every": [10, 100]}, base={**TINY, "steps": 50}), "space.eval_every"),
        (search_body(sampler="grid"), "space.margin.points"),
        (search_body(sampler="grid", space={"loss": ["triplet", "circle"]}, trials=3), "trials"),
        (search_body(pruner="sometimes"), "pruner"),
        (search_body(budget=3), "budget"),
        (search_body(base={**TINY, "lossy": 1}), "base.lossy"),
    ],
)
def test_bad_searches_are_refused_naming_the_field(client, body, field):
    r = client.post("/api/searches", json=body)
    assert r.status_code == 422, r.text
    assert field in [d["field"] for d in r.json()["detail"]], r.json()
    assert client.get("/api/searches").json()["total"] == 0  # nothing half-created


def test_eval_every_at_steps_is_fine_without_a_pruner(client):
    r = client.post("/api/searches", json=search_body(base={**TINY, "steps": 50, "eval_every": 50}, pruner="none"))
    assert r.status_code == 201, r.text
    assert len(r.json()["job_ids"]) == 1  # parallel 1: one trial queued at once


def test_cancel_stops_queued_trials_and_asks_for_no_more(client):
    created = client.post("/api/searches", json=search_body(trials=6, parallel=3)).json()
    assert len(created["job_ids"]) == 3
    r = client.post(f"/api/searches/{created['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    detail = client.get(f"/api/searches/{created['id']}").json()
    assert [t["state"] for t in detail["trial_list"]] == ["fail"] * 3  # told once, no new trial asked
    assert detail["status_counts"] == {"cancelled": 3} and detail["finished_at"] is not None


def search(url: str, search_id: int) -> dict:
    return httpx.get(f"{url}/api/searches/{search_id}", timeout=30).json()


@pytest.mark.slow
def test_pruning_stops_a_running_trial_and_frees_its_worker(procs, settings, tmp_path):
    """Trial 0 (128-d) trains to the end; trials 1 and 2 (2-d and 3-d embeddings, far worse) are pruned at their
    first evaluation by ASHA, and the one worker goes on to the next trial each time."""
    url = procs.server()
    procs.worker()
    body = search_body(space={"embedding_dim": [128, 2, 3]}, sampler="grid", sampler_seed=5, trials=3, pruner="asha")
    spec_file = tmp_path / "search.json"
    spec_file.write_text(json.dumps(body))
    cli = subprocess.run(
        [sys.executable, "-m", "app.cli", "search", str(spec_file), "--wait", "--server", url],
        env=procs.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr
    created = {"id": int(cli.stdout.strip())}
    assert "trial 1 pruned: {'embedding_dim': 2}" in cli.stderr and "70 training steps (39% of 180" in cli.stderr
    done = search(url, created["id"])
    assert done["status"] == "finished"
    trials = done["trial_list"]
    assert [t["params"]["embedding_dim"] for t in trials] == [128, 2, 3]
    assert [t["state"] for t in trials] == ["complete", "pruned", "pruned"]
    assert [t["statuses"] for t in trials] == [["succeeded"], ["pruned"], ["pruned"]]
    assert [t["pruned_at"] for t in trials] == [None, 5, 5] and [t["steps"] for t in trials] == [60, 5, 5]
    engine = get_engine(settings.db_url)
    pruned = [job_store.get(engine, t["job_ids"][0]) for t in trials[1:]]
    first = job_store.get(engine, trials[0]["job_ids"][0])
    assert {j.worker_id for j in pruned} == {first.worker_id}  # the same worker took the next trials
    for job in pruned:  # a pruned trial keeps its metrics and its checkpoint
        curve = httpx.get(f"{url}/api/jobs/{job.id}/metrics", params={"names": "val/mean_average_precision_at_r"}).json()["series"]
        assert curve["val/mean_average_precision_at_r"]["step"] == [0, 5]
        assert (files.job_dir(settings.home_path, job.id) / files.CHECKPOINT_FILE).is_file()
    # What the pruner saw: trial 1 reported below trial 0 at step 5.
    assert trials[1]["intermediate"]["5"] < trials[0]["intermediate"]["5"]
    assert done["best"]["number"] == 0 and done["best"]["value"] == pytest.approx(objective(engine, first, "mean_average_precision_at_r"))
    # The step accounting the benchmark relies on: steps actually trained, against the same trials trained to the end.
    assert done["budget"] == {"steps_spent": 70, "grid_steps": 180, "fraction": pytest.approx(70 / 180)}


@pytest.mark.slow
def test_the_study_matches_the_jobs_after_a_worker_is_killed_mid_trial(procs, settings):
    url = procs.server()
    victim = procs.worker()
    body = search_body(base={**TINY, "steps": 300, "eval_every": 50}, pruner="none", trials=2, parallel=1)
    created = httpx.post(f"{url}/api/searches", json=body, timeout=30).json()
    first = created["job_ids"][0]
    wait_for(lambda: httpx.get(f"{url}/api/jobs/{first}").json()["progress"]["step"] >= 80, 120, 0.1, "the first trial to train")
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    procs.worker()  # takes the trial over once its lease expires
    done = wait_for(lambda: (s := search(url, created["id"]))["status"] == "finished" and s, 300, 0.5, "the search to finish")
    engine = get_engine(settings.db_url)
    row = searches.get(engine, created["id"])
    study = optuna.load_study(study_name=row.study_name, storage=storage_for(settings.db_url))
    jobs = searches.trial_jobs(engine, created["id"])
    # One job per trial, each trial told once and complete, with the value its job reached.
    assert sorted(j.trial_number for j in jobs) == [t.number for t in study.trials] == [0, 1]
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    killed = next(j for j in jobs if j.id == first)
    assert killed.status == "succeeded" and killed.attempts == 2
    for job in jobs:
        assert study.trials[job.trial_number].value == pytest.approx(objective(engine, job, "mean_average_precision_at_r"))
        assert sorted(study.trials[job.trial_number].intermediate_values) == [50, 100, 150, 200, 250, 300]
    assert done["budget"]["steps_spent"] == 600
