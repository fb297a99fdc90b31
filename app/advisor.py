"""The margin advisor: what the evidence says about the margin. Pure Python, no torch.

Two sources of evidence, each reported with the rule that turned it into a number:
a finished sweep (the margin with the best mean MAP@R across seeds, per loss), and a
single finished job (the distance distributions of its validation pairs).
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from app.distance import LOSS_DISTANCES, Measure

TARGET = "val/mean_average_precision_at_r"


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


def suggest_from_distances(loss: str, margin: float, final: dict[str, Any]) -> dict:
    """A margin suggested by one job's final validation distances (`final["kind"]`), with the rule and its inputs."""
    if not in_loss_measure(loss, final["kind"]):
        return {"margin": None, "evidence": {}, "rule": f"these histograms are in {final['kind']}, not in {loss}'s own measure"}
    pos_med, neg_med, pos_p90 = final.get("positive_median"), final.get("negative_median"), final.get("positive_p90")
    if pos_med is None or neg_med is None:
        return {"margin": None, "rule": "no positive or negative validation pairs", "evidence": {}}
    evidence = {"positive_median": pos_med, "negative_median": neg_med, "positive_p90": pos_p90, "overlap": final.get("overlap"), "current_margin": margin}
    if loss == "triplet":
        gap = neg_med - pos_med
        return {
            "margin": round(max(0.05, gap), 3), "evidence": evidence,
            "rule": "median negative distance − median positive distance (at least 0.05): with this margin a typical "
                    "validation triplet sits at the boundary between easy and semi-hard, so the loss keeps pushing on it "
                    "without making every triplet hard",
        }
    if loss == "contrastive":
        return {
            "margin": round(pos_p90, 3), "evidence": evidence,
            "rule": "90th percentile of positive-pair distances: negatives closer than where most positives lie are pushed out",
        }
    if loss == "circle":
        return {"margin": None, "evidence": evidence,
                "rule": "circle loss's m sets both decision points (Δp = 1 − m, Δn = m); choose it from a sweep, not from one run"}
    return {"margin": None, "evidence": evidence, "rule": f"{loss} has no margin"}


def recommend_from_sweep(jobs: list[dict], axes: list[str]) -> list[dict]:
    """Per loss: the grid point with the best mean MAP@R across seeds, with its spread and how many runs it rests on.

    Grid points are grouped by every axis but the seed; only succeeded jobs count.
    """
    groups: dict[tuple, list[float]] = defaultdict(list)
    for job in jobs:
        value = (job.get("metrics") or {}).get(TARGET)
        if job["status"] != "succeeded" or value is None:
            continue
        key = tuple((axis, job["spec"].get(axis)) for axis in axes if axis != "seed")
        groups[(job["spec"]["loss"], key)].append(value)
    best: dict[str, dict] = {}
    for (loss, key), values in groups.items():
        mean = statistics.fmean(values)
        if loss not in best or mean > best[loss]["mean"]:
            point = dict(key)
            best[loss] = {"loss": loss, "margin": point.get("margin"), "point": point, "mean": mean, "min": min(values),
                          "max": max(values), "runs": len(values)}
    for rec in best.values():
        rec["rule"] = f"highest mean {TARGET} across seeds among the finished runs of the sweep ({rec['runs']} run(s) at this point)"
    return sorted(best.values(), key=lambda r: r["loss"])
