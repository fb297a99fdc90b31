"""The search driver against SQLite and PostgreSQL: trials are queued jobs, each told to the study once."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from app import search
from app.search_spec import SearchSpec
from app.store import jobs, metrics, searches
from app.store.db import get_engine, init_db

SPEC = {
    "base": {"dataset": "digits", "steps": 40, "eval_every": 10},
    "space": {"margin": {"low": 0.01, "high": 1.0, "log": True}},
    "trials": 3,
    "parallel": 2,
    "pruner": "median",
}


def run_trial(engine, values: dict[int, float], status: str = "succeeded") -> jobs.Claim:
    """Claim the next job, write its validation series and end it as `status`, as a worker would."""
    claim = jobs.claim(engine, "w", devices=("auto",), lease_seconds=60, run_device="cpu")
    points = [metrics.Point("val/mean_average_precision_at_r", step, v, 0.0) for step, v in values.items()]
    assert metrics.append(engine, claim.job_id, claim.attempt, claim.token, points)
    assert jobs.finish(engine, claim.job_id, claim.token, status, step=max(values))
    return claim


def test_trials_are_jobs_and_each_is_told_once(settings):
    engine = get_engine(settings.db_url)
    init_db(engine)
    row = search.create(engine, SearchSpec.model_validate(SPEC), owner="ana", settings=settings)
    queued = searches.trial_jobs(engine, row.id)
    assert [(j.trial_number, j.status, j.owner) for j in queued] == [(0, "queued", "ana"), (1, "queued", "ana")]  # parallel 2
    assert 0.01 <= queued[0].margin <= 1.0 and queued[0].spec["margin"] == queued[0].margin

    run_trial(engine, {0: 0.7, 10: 0.61, 20: 0.64, 30: 0.6, 40: 0.58})
    assert searches.lock(engine, row.id)  # another process is advancing: this one does nothing
    assert search.advance(engine, row.id, settings) is False
    searches.unlock(engine, row.id)
    assert search.advance(engine, row.id, settings) is True
    assert search.advance(engine, row.id, settings) is True  # again: nothing told twice, nothing asked twice
    study = optuna.load_study(study_name=row.study_name, storage=search.storage_for(settings.db_url))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.RUNNING, TrialState.RUNNING]
    assert study.trials[0].value == 0.64  # the best trained step's value: not the last one, nor the untrained network's
    assert len(searches.trial_jobs(engine, row.id)) == 3

    run_trial(engine, {0: 0.5, 10: 0.3}, status="pruned")
    run_trial(engine, {0: 0.5, 10: 0.2}, status="failed")
    search.advance(engine, row.id, settings)
    study = optuna.load_study(study_name=row.study_name, storage=search.storage_for(settings.db_url))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]
    done = searches.get(engine, row.id)
    assert done.status == "finished" and done.finished_at is not None
    views = search.trial_views(engine, done)
    assert [(v.value, v.best_step, v.steps, v.pruned_at) for v in views] == [(0.64, 20, 40, None), (0.3, 10, 10, 10), (0.2, 10, 10, None)]
    assert search.budget(SearchSpec.model_validate(SPEC), views) == {"steps_spent": 60, "grid_steps": 120, "fraction": 0.5}


def test_a_worker_reports_and_the_pruner_answers(settings):
    engine = get_engine(settings.db_url)
    init_db(engine)
    spec = {**SPEC, "parallel": 1, "trials": 2, "pruner": "asha"}
    row = search.create(engine, SearchSpec.model_validate(spec), owner="local", settings=settings)
    first = searches.trial_jobs(engine, row.id)[0]
    reporter = search.TrialReporter.for_job(engine, first.id)
    assert reporter.report("val/mean_average_precision_at_r", 0, 0.9) is False  # step 0 is not reported
    assert reporter.report("val/loss", 10, 0.1) is False  # not the selection metric
    assert reporter.report("val/mean_average_precision_at_r", 10, 0.7) is False  # alone at its rung: promoted
    run_trial(engine, {10: 0.7, 40: 0.8})
    search.advance(engine, row.id, settings)
    second = searches.trial_jobs(engine, row.id)[1]
    assert search.TrialReporter.for_job(engine, second.id).report("val/mean_average_precision_at_r", 10, 0.2) is True  # below trial 0
    assert search.TrialReporter.for_job(engine, first.id) is not None and jobs.get(engine, second.id).trial_number == 1


def test_parameter_importance_when_two_parameters_vary(settings):
    engine = get_engine(settings.db_url)
    init_db(engine)
    spec = {
        **SPEC,
        "space": {"margin": {"low": 0.01, "high": 1.0, "log": True}, "lr": {"low": 1e-4, "high": 1e-2, "log": True}},
        "trials": 4,
        "parallel": 4,
        "sampler": "random",
    }
    row = search.create(engine, SearchSpec.model_validate(spec), owner="local", settings=settings)
    assert search.importance(engine, row) is None  # nothing completed yet
    for job in searches.trial_jobs(engine, row.id):
        run_trial(engine, {40: job.spec["margin"]})  # the value follows the margin only
    search.advance(engine, row.id, settings)
    ranked = search.importance(engine, searches.get(engine, row.id))
    assert set(ranked) == {"margin", "lr"} and ranked["margin"] > ranked["lr"]
