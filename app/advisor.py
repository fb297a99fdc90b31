"""The margin advisor: what the evidence of a sweep supports, and where a job's margin sits. Torch-free.

A sweep's recommendation, per loss: the grid point with the best selection metric (at each run's best
checkpoint, seeds averaged), and every point that cannot be told apart from it. Two points are compared
with a paired bootstrap over the same validation queries and seeds (per-query values from each run's
per_query.npz); where a run has no such file the comparison falls back to whether the two points' 95%
intervals overlap, and says so. A point is starred only when it is better than every other point of
its loss beyond that noise. A single job gives no margin number: the rule that did ("median negative -
median positive") returns the job's own margin, since training drives that gap toward it.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from app.distance import LOSS_DISTANCES, Measure

METRICS = ("mean_average_precision_at_r", "r_precision", "precision_at_1")
DEFAULT_SELECT = "mean_average_precision_at_r"
RESAMPLES = 2000
LEVEL = 0.95
Z = 1.959964  # the normal quantile of a two-sided 95% interval
REPLICATES = (
    "seed",
    "fold",
    "loss",
)  # axes that are not grid points: seeds and cross-validation folds are averaged, losses recommended apart


def bare(metric: str) -> str:
    """ "val/mean_average_precision_at_r" -> "mean_average_precision_at_r"."""
    return metric.split("/", 1)[-1]


def metric_of(metrics: dict[str, Any] | None, name: str, suffix: str = "") -> float | None:
    """A value from a metrics dict whose keys may or may not carry the split prefix."""
    if not metrics:
        return None
    for key in (f"{bare(name)}{suffix}", f"val/{bare(name)}{suffix}", f"test/{bare(name)}{suffix}"):
        value = metrics.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
    return None


def in_loss_measure(loss: str, kind: Measure) -> bool:
    """A margin is a value of the loss's own measure: it can be read off a histogram only in that measure."""
    return LOSS_DISTANCES[loss][0] == kind


def margin_lines(loss: str, margin: float, positive_median: float | None, loss_params: dict[str, Any], kind: Measure) -> list[dict]:
    """Where the margin sits on a histogram's axis, per loss (nothing for losses without a margin)."""
    if not in_loss_measure(loss, kind):
        return []
    if loss == "contrastive":
        lines = [{"x": margin, "label": f"negative margin {margin:g}"}]
        if loss_params.get("pos_margin"):
            lines.append({"x": float(loss_params["pos_margin"]), "label": f"positive margin {loss_params['pos_margin']:g}"})
        return lines
    if loss == "triplet" and positive_median is not None:
        return [{"x": positive_median + margin, "label": f"median positive + margin {margin:g}"}]
    if loss == "circle":
        return [{"x": margin, "label": f"Δn = m = {margin:g}"}, {"x": 1 - margin, "label": f"Δp = 1 − m = {1 - margin:g}"}]
    return []


# -- one run's evidence --------------------------------------------------------


@dataclass
class RunEvidence:
    """What one finished run contributes: its selection metric at its best step, with the run's own interval."""

    job_id: int
    seed: int
    fold: int  # cross-validation fold (0 without folds): runs of different folds score different queries
    value: float
    low: float | None
    high: float | None
    step: int | None
    at_best: bool  # False: the job recorded no best checkpoint, its last evaluation stands in
    test: tuple[float, float | None, float | None] | None  # the locked test at the best step
    per_query: tuple[np.ndarray, np.ndarray] | None = None  # (dataset indices, per-query values), sorted by index


def run_evidence(job: dict, metric: str, per_query: dict[str, np.ndarray] | None) -> RunEvidence | None:
    """`job`: {id, status, spec, summary}; None when the run did not succeed or has no value for `metric`."""
    if job.get("status") != "succeeded":
        return None
    summary = job.get("summary") or {}
    best = summary.get("best") if isinstance(summary.get("best"), dict) else None
    source = best.get("metrics") if best else summary
    value = metric_of(source, metric)
    if value is None:
        return None
    test_best = ((summary.get("test") or {}).get("best") or {}).get("metrics")
    test_value = metric_of(test_best, metric)
    test = (test_value, metric_of(test_best, metric, "_low"), metric_of(test_best, metric, "_high")) if test_value is not None else None
    pq = None
    if per_query is not None and "indices" in per_query:
        values = next((per_query[k] for k in (bare(metric), f"val/{bare(metric)}") if k in per_query), None)
        if values is not None and len(values) == len(per_query["indices"]):
            order = np.argsort(per_query["indices"], kind="stable")
            pq = (np.asarray(per_query["indices"])[order], np.asarray(values, dtype=np.float64)[order])
    return RunEvidence(
        job_id=int(job["id"]),
        seed=int(job["spec"].get("seed", 0)),
        fold=int(job["spec"].get("fold") or 0),
        value=value,
        low=metric_of(source, metric, "_low"),
        high=metric_of(source, metric, "_high"),
        step=best.get("step") if best else None,
        at_best=best is not None,
        test=test,
        per_query=pq,
    )


# -- statistics ----------------------------------------------------------------


def mean_interval(values: list[float], lows: list[float | None], highs: list[float | None]) -> tuple[float, float, float]:
    """Mean over seeds; 95% interval from the runs' own bootstrap bounds (their half-widths averaged: the runs share
    their validation queries, so query noise does not average out) combined with the spread across seeds."""
    mean = statistics.fmean(values)
    lo_hw = [v - lo for v, lo in zip(values, lows) if lo is not None]
    hi_hw = [hi - v for v, hi in zip(values, highs) if hi is not None]
    seed_hw = Z * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    lo = math.hypot(statistics.fmean(lo_hw), seed_hw) if lo_hw else seed_hw
    hi = math.hypot(statistics.fmean(hi_hw), seed_hw) if hi_hw else seed_hw
    return mean, mean - lo, mean + hi


def paired_matrix(runs_a: list[RunEvidence], runs_b: list[RunEvidence] | None = None) -> tuple[np.ndarray, int, int] | None:
    """Per-query values (or differences a - b) as a seeds x queries matrix over the seeds and queries both share.

    None when a run lacks per-query values, or the two sets share no seed or no query."""
    by_seed_a = {r.seed: r for r in runs_a}
    by_seed_b = {r.seed: r for r in runs_b} if runs_b is not None else None
    seeds = sorted(set(by_seed_a) & set(by_seed_b)) if by_seed_b is not None else sorted(by_seed_a)
    involved = [by_seed_a[s] for s in seeds] + ([by_seed_b[s] for s in seeds] if by_seed_b is not None else [])
    if not seeds or any(r.per_query is None for r in involved):
        return None
    common = involved[0].per_query[0]
    for r in involved[1:]:
        common = np.intersect1d(common, r.per_query[0], assume_unique=True)
    if not len(common):
        return None

    def rows(by_seed: dict[int, RunEvidence]) -> np.ndarray:
        return np.stack([by_seed[s].per_query[1][np.searchsorted(by_seed[s].per_query[0], common)] for s in seeds])

    matrix = rows(by_seed_a) - (rows(by_seed_b) if by_seed_b is not None else 0.0)
    return matrix, len(seeds), len(common)


@lru_cache(maxsize=2)
def query_counts(n_queries: int, seed: int, resamples: int) -> np.ndarray:
    """How often each query is drawn in each resample (resamples x queries). The same draws serve every comparison over
    the same number of queries (common random numbers): one matrix product per comparison instead of a fresh gather."""
    picks = np.random.default_rng(seed).integers(0, n_queries, size=(resamples, n_queries))
    picks += np.arange(resamples)[:, None] * n_queries
    return np.bincount(picks.ravel(), minlength=resamples * n_queries).reshape(resamples, n_queries).astype(np.float32)


def bootstrap_samples(matrix: np.ndarray, seed: int = 0, resamples: int = RESAMPLES) -> np.ndarray:
    """Bootstrap means of a seeds x queries matrix: seeds and queries both resampled (the same queries for every seed:
    they are the same images), so run-to-run noise counts as well as the sample of queries."""
    n_seeds, n_queries = matrix.shape
    seeds = np.random.default_rng(seed + 1).multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=resamples)  # resamples x seeds
    per_seed = query_counts(n_queries, seed, resamples) @ matrix.T.astype(np.float32)  # resamples x seeds: sums over drawn queries
    return (seeds * per_seed).sum(axis=1) / (n_seeds * n_queries)


def bootstrap_mean(blocks: list[np.ndarray] | np.ndarray, seed: int = 0, resamples: int = RESAMPLES) -> tuple[float, float, float]:
    """Mean over folds (blocks; one without cross-validation) of each fold's seeds x queries mean, with a 95% percentile
    interval. Every fold is kept in every resample (they partition the classes); within a fold, seeds and queries are resampled."""
    blocks = [blocks] if isinstance(blocks, np.ndarray) else blocks
    stats = np.mean([bootstrap_samples(b, seed + i, resamples) for i, b in enumerate(blocks)], axis=0)
    alpha = (1 - LEVEL) / 2
    return float(np.mean([b.mean() for b in blocks])), float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def paired_blocks(runs_a: list[RunEvidence], runs_b: list[RunEvidence] | None = None) -> tuple[list[np.ndarray], int, int] | None:
    """paired_matrix per cross-validation fold (the folds both sets ran); None when any fold cannot be paired."""
    folds = sorted({r.fold for r in runs_a} & ({r.fold for r in runs_b} if runs_b is not None else {r.fold for r in runs_a}))
    blocks, seeds, queries = [], 0, 0
    for fold in folds:
        found = paired_matrix([r for r in runs_a if r.fold == fold], [r for r in runs_b if r.fold == fold] if runs_b is not None else None)
        if found is None:
            return None
        blocks.append(found[0])
        seeds, queries = max(seeds, found[1]), queries + found[2]
    return (blocks, seeds, queries) if blocks else None


# -- a sweep's recommendation ------------------------------------------------------


@dataclass
class Point:
    loss: str
    point: dict[str, Any]
    runs: list[RunEvidence] = field(default_factory=list)

    @property
    def margin(self) -> float | None:
        return self.point.get("margin")

    def summary(self) -> dict[str, Any]:
        blocks = paired_blocks(self.runs)
        if blocks is not None:
            mean, low, high = bootstrap_mean(blocks[0])
            mean = statistics.fmean(r.value for r in self.runs)  # the runs' own values: the point estimate all tables show
            interval = "bootstrap over seeds and validation queries"
        else:
            mean, low, high = mean_interval([r.value for r in self.runs], [r.low for r in self.runs], [r.high for r in self.runs])
            interval = "the runs' bootstrap bounds combined with the spread across seeds"
        tests = [r.test for r in self.runs if r.test is not None]
        test = None
        if tests:
            t_mean, t_low, t_high = mean_interval([t[0] for t in tests], [t[1] for t in tests], [t[2] for t in tests])
            test = {"mean": t_mean, "low": t_low, "high": t_high, "runs": len(tests)}
        return {
            "point": self.point,
            "margin": self.margin,
            "mean": mean,
            "low": low,
            "high": high,
            "interval": interval,
            "runs": len(self.runs),
            "seeds": sorted(r.seed for r in self.runs),
            "job_ids": [r.job_id for r in self.runs],
            "steps": [r.step for r in self.runs],
            "at_best": all(r.at_best for r in self.runs),
            "test": test,
        }


def compare(best: Point, other: Point, best_summary: dict, other_summary: dict) -> dict[str, Any]:
    """Is `other` distinguishable from `best`? A paired bootstrap where both have per-query values, else interval overlap."""
    paired = paired_blocks(best.runs, other.runs)
    if paired is not None:
        blocks, seeds, queries = paired
        diff, low, high = bootstrap_mean(blocks)
        return {
            "method": "paired bootstrap",
            "diff": diff,
            "diff_low": low,
            "diff_high": high,
            "seeds": seeds,
            "queries": queries,
            "distinguishable": low > 0,
        }
    overlap = other_summary["high"] >= best_summary["low"]
    return {
        "method": "interval overlap",
        "diff": best_summary["mean"] - other_summary["mean"],
        "diff_low": None,
        "diff_high": None,
        "seeds": None,
        "queries": None,
        "distinguishable": not overlap,
        "missing": [r.job_id for r in best.runs + other.runs if r.per_query is None],
    }


def point_label(point: dict[str, Any]) -> str:
    """ "margin 0.2" for a margin sweep, "margin=0.2 lr=0.001" when other axes vary too."""
    if list(point) == ["margin"]:
        return f"margin {point['margin']:g}"
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in point.items()) or "the only configuration"


def points_phrase(points: list[dict[str, Any]], all_points: list[dict[str, Any]]) -> str:
    """ "margins 0.1-0.4" when the set is a run of neighbouring margins, else the points listed."""
    if all(list(p) == ["margin"] for p in points):
        margins = sorted(p["margin"] for p in points)
        ordered = sorted(p["margin"] for p in all_points)
        first, last = ordered.index(margins[0]), ordered.index(margins[-1])
        if len(margins) > 2 and ordered[first : last + 1] == margins:
            return f"margins {margins[0]:g}-{margins[-1]:g}"
        return "margins " + ", ".join(f"{m:g}" for m in margins[:-1]) + f" and {margins[-1]:g}"
    return ", ".join(point_label(p) for p in points[:-1]) + f" and {point_label(points[-1])}"


def recommend_from_sweep(
    jobs: list[dict],
    axes: list[str],
    per_query: dict[int, dict[str, np.ndarray]] | None = None,
    select_metric: str = DEFAULT_SELECT,
    validation_classes: int | None = None,
) -> list[dict]:
    """Per loss: the best grid point, the points within noise of it, whether one is starred, the test used, and the
    locked test score of the recommended point. `jobs`: {id, status, spec, summary}; `per_query`: arrays per job id."""
    per_query = per_query or {}
    groups: dict[tuple, Point] = {}
    for job in jobs:
        run = run_evidence(job, select_metric, per_query.get(job["id"]))
        if run is None:
            continue
        point = {axis: job["spec"].get(axis) for axis in axes if axis not in REPLICATES}
        key = (job["spec"]["loss"], tuple(point.items()))
        groups.setdefault(key, Point(job["spec"]["loss"], point)).runs.append(run)
    by_loss: dict[str, list[Point]] = defaultdict(list)
    for p in groups.values():
        by_loss[p.loss].append(p)
    return [recommend_loss(loss, points, select_metric, validation_classes) for loss, points in sorted(by_loss.items())]


def recommend_loss(loss: str, points: list[Point], metric: str, validation_classes: int | None) -> dict[str, Any]:
    points = sorted(points, key=lambda p: sorted((k, str(v)) for k, v in p.point.items()))  # ties go to the first point, always the same
    summaries = {id(p): p.summary() for p in points}
    best = max(points, key=lambda p: summaries[id(p)]["mean"])
    comparisons = []
    for p in points:
        if p is best:
            continue
        comparisons.append({**summaries[id(p)], **compare(best, p, summaries[id(best)], summaries[id(p)])})
    tied = [c for c in comparisons if not c["distinguishable"]]
    untrained = all(r.step == 0 for p in points for r in p.runs)  # every best checkpoint is the untrained network
    starred = bool(comparisons) and not tied and not untrained
    name = bare(metric)
    best_label = point_label(best.point)
    tests = sorted({c["method"] for c in comparisons})
    seeds = sorted({r.seed for r in best.runs})
    queries = max((c["queries"] or 0 for c in comparisons), default=0) or None
    where = f"these {validation_classes} validation classes" if validation_classes else "this validation split"
    if not comparisons:
        statement = f"Only {best_label} finished for {loss}: there is nothing to compare it with."
    elif tied:
        phrase = points_phrase([best.point, *[c["point"] for c in tied]], [p.point for p in points])
        statement = (
            f"{phrase[0].upper()}{phrase[1:]} are within noise of each other on {where}; "
            "more seeds or more classes would separate them. None is starred over the others."
        )
    else:
        statement = f"{best_label[0].upper()}{best_label[1:]} is better than every other {loss} setting beyond the noise on {where}."
    if untrained:
        statement = (
            f"Every {loss} run's best checkpoint is its untrained network (step 0): training did not beat it here, "
            "so these runs support no margin. Train longer, on more data, or with another learning rate. " + statement
        )
    used = []
    if "paired bootstrap" in tests:
        used.append(
            f"a paired bootstrap of the per-query differences in {name} over the same validation queries and seeds "
            f"({RESAMPLES:,} resamples of seeds and queries; a point is distinguishable when the 95% interval of its "
            "difference from the best excludes 0)"
        )
    if "interval overlap" in tests:
        missing = sorted({j for c in comparisons for j in c.get("missing", [])})
        used.append(
            f"overlap of the 95% intervals where per-query values are missing (jobs {', '.join(f'#{j}' for j in missing)}): "
            "a cruder check than a paired test"
        )
    if len(seeds) == 1 and comparisons:
        used.append("one seed per point: run-to-run variation is not measured, only the sample of validation queries")
    best_summary = summaries[id(best)]
    return {
        "loss": loss,
        "select_metric": name,
        "margin": best.margin,
        "point": best.point,
        "best": best_summary,
        "starred": starred,
        "tied": tied,
        "comparisons": comparisons,
        "statement": statement,
        "test_used": "; ".join(used) or "no comparison",
        "validation_classes": validation_classes,
        "validation_queries": queries,
        "points": sorted((summaries[id(p)] for p in points), key=lambda s: (s["margin"] is None, s["margin"] or 0)),
        "locked_test": best_summary["test"],
        "rule": f"highest mean {name} at each run's best checkpoint, seeds averaged"
        + ("" if best_summary["at_best"] else " (some runs recorded no best checkpoint: their last evaluation stands in)"),
    }


# -- any jobs, side by side ---------------------------------------------------------


def compare_jobs(
    jobs: list[dict], per_query: dict[int, dict[str, np.ndarray]] | None = None, select_metric: str = DEFAULT_SELECT
) -> dict[str, Any]:
    """Each job against the one with the highest selection metric at its best checkpoint: paired over the validation
    queries both scored when both wrote per-query values (any seeds: a job is its own point), else interval overlap."""
    per_query = per_query or {}
    points = []
    for job in jobs:
        run = run_evidence(job, select_metric, per_query.get(job["id"]))
        if run is not None:
            run.seed, run.fold = 0, 0  # pair job with job, whatever their seeds; different folds share no queries and fall back
            points.append(Point(job["spec"].get("loss", ""), {"job": job["id"]}, [run]))
    if not points:
        return {"select_metric": bare(select_metric), "best_job": None, "rows": []}
    summaries = {id(p): p.summary() for p in points}
    best = max(points, key=lambda p: summaries[id(p)]["mean"])
    rows = []
    for p in points:
        row = {"job_id": p.point["job"], **summaries[id(p)]}
        row.update(
            {"method": None, "diff": 0.0, "diff_low": None, "diff_high": None, "distinguishable": False, "queries": None}
            if p is best
            else compare(best, p, summaries[id(best)], summaries[id(p)])
        )
        row["locked_test"] = summaries[id(p)]["test"]
        del row["test"]
        rows.append(row)
    return {"select_metric": bare(select_metric), "best_job": best.point["job"], "rows": rows}
