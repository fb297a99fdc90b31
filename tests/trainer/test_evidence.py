"""The evidence a job leaves: a baseline at step 0, the best checkpoint, the locked test part, early stopping.

Jobs run on a real worker against the real database; the test part's isolation is checked through
the metric rows as they were written (their ids give the write order).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from app.datasets import load_catalog
from app.files import BEST_CHECKPOINT_FILE, PER_QUERY_FILE
from app.spec import JobSpec, job_split
from app.store import joblogs, jobs, metrics
from tests.trainer.conftest import LocalRun
from trainer.errors import StopRequested
from trainer.train import train
from trainer.worker import Worker

TINY = {"dataset": "digits", "steps": 30, "eval_every": 10, "classes_per_batch": 4, "samples_per_class": 8, "explorer": False}
SELECTED = ("precision_at_1", "r_precision", "mean_average_precision_at_r")


def run_job(engine, settings, **spec) -> tuple[dict, list[dict], Path]:
    created = jobs.submit(engine, JobSpec.model_validate({**TINY, **spec}))
    Worker(settings, threads=1).run(max_jobs=1, exit_when_idle=True)
    row = jobs.get(engine, created.id)
    assert row.status == "succeeded", row.error
    return row, metrics.since(engine, created.id, 0, limit=100_000), settings.job_dir(created.id)


def series(rows: list[dict], name: str) -> dict[int, float]:
    return {r["step"]: r["value"] for r in rows if r["name"] == name}


def assert_test_read_once_at_the_end(rows: list[dict], summary: dict) -> None:
    test_rows = [r for r in rows if r["name"].startswith("test/")]
    others = [r for r in rows if not r["name"].startswith("test/")]
    assert test_rows and min(r["id"] for r in test_rows) > max(r["id"] for r in others), "test/ rows before the end of training"
    checkpoints = {summary["test"]["best"]["step"], summary["test"]["final"]["step"]}
    for name in (f"test/{m}{s}" for m in SELECTED for s in ("", "_low", "_high")):
        steps = [r["step"] for r in test_rows if r["name"] == name]
        assert sorted(steps) == sorted(checkpoints), name  # exactly one evaluation of the test part per checkpoint


def test_a_job_that_got_worse_is_flagged_and_tests_both_checkpoints(engine, settings, client):
    row, rows, job_dir = run_job(engine, settings, lr=0.05)
    summary = row.summary
    val = series(rows, "val/mean_average_precision_at_r")
    assert sorted(val) == [0, 10, 20, 30] and max(val.values()) == val[0]  # every trained evaluation below the untrained net
    assert summary["baseline"]["step"] == 0 and summary["best"]["step"] == 0
    assert summary["no_gain"].startswith("No gain from training") and "interval" in summary["no_gain"]
    for name in SELECTED:  # the step-0 evaluation carries its interval
        assert series(rows, f"val/{name}_low")[0] <= series(rows, f"val/{name}")[0] <= series(rows, f"val/{name}_high")[0]

    assert_test_read_once_at_the_end(rows, summary)
    assert summary["test"]["best"]["step"] == 0 and summary["test"]["final"]["step"] == 30
    assert summary["test"]["best"]["metrics"] != summary["test"]["final"]["metrics"]  # two checkpoints, two scores
    assert torch.load(job_dir / BEST_CHECKPOINT_FILE, weights_only=True)["step"] == 0
    log = " ".join(line["message"] for line in joblogs.lines(engine, row.id))
    assert "test images in 2 classes" in log and "locked test part" in log

    shown = client.get(f"/api/jobs/{row.id}").json()  # what the API says about the same job
    assert shown["no_gain"] == summary["no_gain"] and shown["best"]["step"] == 0 and shown["test"]["final"]["step"] == 30
    assert shown["select_metric"] == "mean_average_precision_at_r" and shown["stopped_early"] is None
    assert shown["metrics"]["val/mean_average_precision_at_r"] == val[30]  # the latest values stay where they were


def test_the_best_checkpoint_is_the_maximum_of_the_selection_series(engine, settings):
    row, rows, job_dir = run_job(engine, settings, split="samples", select_metric="r_precision")
    summary = row.summary
    selected = series(rows, "val/r_precision")
    best_step = max(selected, key=lambda s: (selected[s], -s))  # the first of equal maxima
    best = torch.load(job_dir / BEST_CHECKPOINT_FILE, weights_only=True)
    assert best["step"] == best_step == summary["best"]["step"] > 0
    assert summary["best"]["metrics"]["r_precision"] == selected[best_step] == best["metrics"]["r_precision"]
    assert summary["no_gain"] is None and summary["baseline"]["metrics"]["r_precision"] == selected[0]
    assert_test_read_once_at_the_end(rows, summary)

    spec = JobSpec.model_validate(row.spec)
    val_rows = set(job_split(load_catalog("digits", None, []).labels, spec).val.tolist())
    with np.load(job_dir / PER_QUERY_FILE) as z:
        assert int(z["step"]) == best_step and int(z["seed"]) == spec.seed
        assert set(z["indices"].tolist()) <= val_rows and len(z["indices"]) == len(z["r_precision"]) == len(z["precision_at_1"])
        assert z["r_precision"].mean() == pytest.approx(selected[best_step], abs=1e-9)


def test_patience_ends_the_job_succeeded_with_the_reason(engine, settings):
    row, rows, _ = run_job(engine, settings, steps=300, eval_every=5, patience=2)
    selected = series(rows, "val/mean_average_precision_at_r")
    best, since, expected = -1.0, 0, None
    for step in sorted(selected):  # the rule, replayed on the written series: 2 evaluations in a row without a new best
        best, since = (selected[step], 0) if selected[step] > best else (best, since + 1)
        if since == 2:
            expected = step
            break
    stop = row.summary["stopped_early"]
    assert expected is not None and stop["step"] == expected < 300 and "patience 2" in stop["reason"]
    assert max(selected) == expected and row.step == expected and max(series(rows, "train/loss")) == expected
    assert row.summary["test"]["final"]["step"] == expected
    assert_test_read_once_at_the_end(rows, row.summary)
    assert any(f"stopped early at step {expected}" in line["message"] for line in joblogs.lines(engine, row.id))


def test_a_resumed_attempt_keeps_the_best_so_far_and_the_baseline(settings, tmp_path):
    spec = JobSpec.model_validate({**TINY, "split": "samples", "steps": 20, "eval_every": 5})
    first = LocalRun(tmp_path / "job", stop_at=12)
    with pytest.raises(StopRequested):
        train(spec, first, settings)
    assert not any(name.startswith("test/") for name in first.metrics)  # stopped before the end: test untouched
    second = LocalRun(tmp_path / "job")
    train(spec, second, settings)
    assert "resumed from the checkpoint at step 12" in second.logs
    selected = {step: v for run in (first, second) for step, v in run.metrics["val/mean_average_precision_at_r"]}
    assert sorted(selected) == [0, 5, 10, 15, 20]
    best_step = max(selected, key=lambda s: (selected[s], -s))
    assert second.summary["best"]["step"] == best_step and second.summary["baseline"]["step"] == 0
    assert second.summary["baseline"]["metrics"]["mean_average_precision_at_r"] == selected[0]
    assert torch.load(tmp_path / "job" / BEST_CHECKPOINT_FILE, weights_only=True)["step"] == best_step
