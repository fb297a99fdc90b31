"""The search driver: Optuna's sampler and pruner on embedlab's own queue.

The study lives in embedlab's database (Optuna's RDBStorage on the same URL; its tables come from
migration 0004). `advance` is the only place that asks the sampler or tells the study: it runs under a
per-search lock (searches.advancing_until), from the server's periodic loop and right after a trial's job
ends, so two processes never ask twice or tell a trial twice. Workers only report intermediate values and
ask the pruner (`TrialReporter`), at each evaluation of the selection metric on validation.
"""

from __future__ import annotations

import logging
import math
import uuid
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import RDBStorage
from optuna.trial import TrialState
from sqlalchemy import Engine
from sqlalchemy.orm import scoped_session, sessionmaker

from app.config import Settings
from app.search_spec import Range, SearchSpec, numeric_kind
from app.store import metrics, searches
from app.store.db import _sqlite_setup
from app.store.rows import JobRow, SearchRow

log = logging.getLogger("embedlab.search")
optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


@lru_cache(maxsize=8)
def storage_for(url: str) -> RDBStorage:
    """Optuna's storage on embedlab's database. Its tables exist already (migration 0004), and its schema check is
    skipped because embedlab's alembic_version table holds embedlab's revision, not Optuna's."""
    sqlite = url.startswith("sqlite")
    kwargs: dict[str, Any] = {"connect_args": {"timeout": 30, "check_same_thread": False}} if sqlite else {"pool_pre_ping": True}
    storage = RDBStorage(url, engine_kwargs=kwargs, skip_table_creation=True, skip_compatibility_check=True)
    if sqlite:  # the same WAL, busy timeout and immediate write transactions as embedlab's own connections
        _sqlite_setup(storage.engine)
        storage.engine.dispose()
        storage.engine = storage.engine.execution_options(write=True)  # type: ignore[assignment]
        storage.scoped_session = scoped_session(sessionmaker(bind=storage.engine))
    return storage


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def make_sampler(spec: SearchSpec, told: int) -> optuna.samplers.BaseSampler:
    # A fresh sampler per advance. The grid's seed only shuffles the grid (trial i takes point i), so it stays fixed;
    # the others' seed moves with the trials already asked, so two asks never replay one draw.
    if spec.sampler == "grid":
        return optuna.samplers.GridSampler(spec.grid(), seed=spec.sampler_seed)
    seed = spec.sampler_seed + 7919 * told
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(3, spec.trials // 4)), constant_liar=spec.parallel > 1)


def make_pruner(spec: SearchSpec) -> optuna.pruners.BasePruner:
    base = spec.job_spec({}, spec.seeds[0], "base")
    if spec.pruner == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=base.eval_every, reduction_factor=3)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=base.eval_every, max_resource=base.steps, reduction_factor=3)
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=min(5, max(2, spec.trials // 4)), n_warmup_steps=base.eval_every)
    return optuna.pruners.NopPruner()


def distributions(spec: SearchSpec) -> dict[str, BaseDistribution]:
    out: dict[str, BaseDistribution] = {}
    for name, dim in spec.space.items():
        if isinstance(dim, list):
            out[name] = CategoricalDistribution(dim)
        elif numeric_kind(name) is int:
            out[name] = IntDistribution(int(dim.low), int(dim.high), log=dim.log)
        else:
            out[name] = FloatDistribution(dim.low, dim.high, log=dim.log)
    return out


def load_study(engine: Engine, row: SearchRow, spec: SearchSpec | None = None) -> optuna.Study:
    """The study with the search's pruner. Its sampler is set only to ask: a sampler's hooks at tell time do
    not apply here (the grid sampler's would call study.stop(), which only works inside study.optimize)."""
    spec = spec or SearchSpec.model_validate(row.spec)
    return optuna.load_study(
        study_name=row.study_name, storage=storage_for(_url(engine)), sampler=optuna.samplers.RandomSampler(), pruner=make_pruner(spec)
    )


def create(engine: Engine, spec: SearchSpec, *, owner: str, settings: Settings) -> SearchRow:
    """The search's row and its study; the first trials are queued at once."""
    study_name = f"embedlab-{uuid.uuid4().hex}"
    optuna.create_study(study_name=study_name, storage=storage_for(_url(engine)), direction="maximize")
    row = searches.create(engine, name=spec.name, owner=owner, spec=spec.model_dump(mode="json"), study_name=study_name)
    advance(engine, row.id, settings)
    return row


def best_point(engine: Engine, job: JobRow, select: str) -> tuple[float, int] | None:
    """(value, step) of the selection metric on validation at the job's best trained step: the job's own `best`
    when it reports one after step 0, else the best of its validation series after step 0. Step 0 is left out:
    every trial of a seed starts from the same untrained network, so its value says nothing of the setting."""
    best = (job.summary or {}).get("best") if isinstance(job.summary, dict) else None
    if isinstance(best, dict) and (best.get("step") or 0) > 0 and (best.get("metrics") or {}).get(select) is not None:
        return float(best["metrics"][select]), int(best["step"])
    series = metrics.series(engine, job.id, [f"val/{select}"], max_points=100_000)[f"val/{select}"]
    points = [(v, s) for s, v in zip(series["step"], series["value"]) if v is not None and s > 0]
    return max(points) if points else None


def objective(engine: Engine, job: JobRow, select: str) -> float | None:
    point = best_point(engine, job, select)
    return point[0] if point else None


def _tell(engine: Engine, study: optuna.Study, trial: optuna.trial.FrozenTrial, jobs: list[JobRow], select: str) -> None:
    """Tell the study how a trial ended, once all its jobs have: pruned, failed, or the mean of its seeds' objectives."""
    statuses = {j.status for j in jobs}
    if "pruned" in statuses:
        study.tell(trial.number, state=TrialState.PRUNED)
    elif statuses != {"succeeded"}:
        study.tell(trial.number, state=TrialState.FAIL)
    else:
        values = [objective(engine, j, select) for j in jobs]
        if any(v is None or not math.isfinite(v) for v in values):
            study.tell(trial.number, state=TrialState.FAIL)
        else:
            study.tell(trial.number, sum(values) / len(values))  # type: ignore[arg-type]


def advance(engine: Engine, search_id: int, settings: Settings) -> bool:
    """Tell the study about trials whose jobs all ended, then ask for new trials while fewer than `parallel` are
    active and the budget is not spent. Returns False when another process holds the search."""
    row = searches.get(engine, search_id)
    if row is None or row.finished_at is not None or not searches.lock(engine, search_id):
        return False
    try:
        spec = SearchSpec.model_validate(row.spec)
        study = load_study(engine, row, spec)
        by_trial: dict[int, list[JobRow]] = {}
        for job in searches.trial_jobs(engine, search_id):
            by_trial.setdefault(job.trial_number, []).append(job)  # type: ignore[arg-type]
        trials = study.get_trials(deepcopy=False)
        for trial in trials:
            if trial.state != TrialState.RUNNING:
                continue
            jobs = by_trial.get(trial.number, [])
            if not jobs:  # asked, but the process died before its jobs were written
                study.tell(trial.number, state=TrialState.FAIL)
            elif any(j.status == "pruned" for j in jobs) and not all(j.ended for j in jobs):
                searches.stop_jobs(engine, search_id, trial.number)  # one seed was pruned: the trial is
            elif all(j.ended for j in jobs):
                _tell(engine, study, trial, jobs, spec.select_metric)
        trials = study.get_trials(deepcopy=False)
        active = sum(t.state == TrialState.RUNNING for t in trials)
        if row.status == "running":
            study.sampler = make_sampler(spec, len(trials))
            space = distributions(spec)
            while active < spec.parallel and len(trials) < spec.trials:
                trial = study.ask(space)
                label = " ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items())
                specs = [spec.job_spec(dict(trial.params), seed, f"#{trial.number} {label}") for seed in spec.seeds]
                searches.add_trial(engine, search_id, trial.number, specs, owner=row.owner, max_attempts=settings.max_attempts)
                trials = study.get_trials(deepcopy=False)
                active += 1
        if active == 0 and (row.status != "running" or len(trials) >= spec.trials):
            searches.settle(engine, search_id, "finished" if row.status == "running" else row.status)
        return True
    finally:
        searches.unlock(engine, search_id)


def advance_all(engine: Engine, settings: Settings) -> None:
    for search_id in searches.unsettled(engine):
        try:
            advance(engine, search_id, settings)
        except Exception:  # one broken search must not stop the others
            log.exception("advancing search %s failed", search_id)


def cancel(engine: Engine, search_id: int, settings: Settings) -> None:
    searches.stop_jobs(engine, search_id)
    advance(engine, search_id, settings)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class TrialReporter:
    """The worker's side of a trial: report the selection metric at each evaluation, and say when to prune."""

    def __init__(self, engine: Engine, job: JobRow, row: SearchRow):
        self.engine, self.job, self.row = engine, job, row
        self.spec = SearchSpec.model_validate(row.spec)
        self.name = f"val/{self.spec.select_metric}"
        self._trial: optuna.Trial | None = None

    @classmethod
    def for_job(cls, engine: Engine, job_id: int) -> TrialReporter | None:
        from app.store import jobs

        job = jobs.get(engine, job_id)
        if job is None or job.search_id is None:
            return None
        row = searches.get(engine, job.search_id)
        return cls(engine, job, row) if row is not None else None

    def report(self, name: str, step: int, value: float) -> bool:
        """True when the pruner stops this trial here. Step 0 (the untrained network) is not reported: it says nothing of the setting."""
        if name != self.name or step <= 0 or not math.isfinite(value):
            return False
        try:
            if self._trial is None:
                study = load_study(self.engine, self.row, self.spec)
                trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, self.job.trial_number)
                self._trial = optuna.Trial(study, trial_id)
            self._trial.report(value, step)
            return step < self.job.total_steps and self._trial.should_prune()  # a finished run is not pruned
        except Exception:  # the study refused (e.g. the trial was already told): training goes on, the driver decides
            log.exception("reporting trial %s of search %s failed", self.job.trial_number, self.row.id)
            return False

    def ended(self, settings: Settings) -> None:
        """Right after the trial's job ended: tell the study and queue the next trial without waiting for the server's loop."""
        try:
            advance(self.engine, self.row.id, settings)
        except Exception:
            log.exception("advancing search %s failed", self.row.id)


@dataclass(frozen=True)
class TrialView:
    number: int
    state: str
    params: dict[str, Any]
    value: float | None
    best_step: int | None
    steps: int
    pruned_at: int | None
    job_ids: list[int]
    statuses: list[str]
    intermediate: dict[int, float]


def trial_views(engine: Engine, row: SearchRow) -> list[TrialView]:
    """Each trial as the search page shows it: the study's state and params, the jobs' value at the best step and steps spent."""
    spec = SearchSpec.model_validate(row.spec)
    study = load_study(engine, row, spec)
    by_trial: dict[int, list[JobRow]] = {}
    for job in searches.trial_jobs(engine, row.id):
        by_trial.setdefault(job.trial_number, []).append(job)  # type: ignore[arg-type]
    out = []
    for trial in study.get_trials(deepcopy=False):
        jobs = by_trial.get(trial.number, [])
        points = [p for p in (best_point(engine, j, spec.select_metric) for j in jobs) if p is not None]
        values, best_steps = [v for v, _ in points], [s for _, s in points]
        pruned = [j.step for j in jobs if j.status == "pruned"]
        out.append(
            TrialView(
                number=trial.number,
                state=trial.state.name.lower(),
                params=dict(trial.params),
                value=trial.value if trial.state == TrialState.COMPLETE else (sum(values) / len(values) if values else None),
                best_step=max(best_steps) if best_steps else None,
                steps=sum(j.step for j in jobs),
                pruned_at=min(pruned) if pruned else None,
                job_ids=[j.id for j in jobs],
                statuses=[j.status for j in jobs],
                intermediate={int(k): float(v) for k, v in trial.intermediate_values.items()},
            )
        )
    return out


def importance(engine: Engine, row: SearchRow) -> dict[str, float] | None:
    """Optuna's fANOVA importance of each parameter over the completed trials, when more than one parameter varies."""
    spec = SearchSpec.model_validate(row.spec)
    if len(spec.space) < 2:
        return None
    study = load_study(engine, row, spec)
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if len(done) < 3 or any(len({repr(t.params.get(n)) for t in done}) < 2 for n in spec.space):
        return None  # too few trials, or a parameter that has not varied yet
    return {
        k: float(v)
        for k, v in optuna.importance.get_param_importances(study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)).items()
    }


def budget(spec: SearchSpec, views: list[TrialView]) -> dict[str, Any]:
    """Training steps spent against the same number of trials trained to the end (a grid of the same resolution)."""
    steps = spec.job_spec({}, spec.seeds[0], "base").steps if "steps" not in spec.space else None
    spent = sum(v.steps for v in views)
    full = steps * spec.trials * len(spec.seeds) if steps else None
    return {"steps_spent": spent, "grid_steps": full, "fraction": spent / full if full else None}


__all__ = ["Range", "SearchSpec", "TrialReporter", "advance", "advance_all", "budget", "cancel", "create", "trial_views"]
