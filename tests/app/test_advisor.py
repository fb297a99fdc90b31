"""The margin advisor's rules on fixed inputs."""
from __future__ import annotations

from app.advisor import margin_lines, recommend_from_sweep, suggest_from_distances


def test_margin_lines_per_loss():
    assert margin_lines("contrastive", 0.8, 0.3, {}, "l2")[0]["x"] == 0.8
    assert margin_lines("triplet", 0.2, 0.5, {}, "l2")[0]["x"] == 0.7
    assert [line["x"] for line in margin_lines("circle", 0.25, None, {}, "cosine_similarity")] == [0.25, 0.75]
    assert margin_lines("ntxent", 0.2, 0.5, {}, "cosine_similarity") == []


def test_a_margin_is_drawn_only_on_its_losss_own_measure():
    """A triplet margin is an L2 distance: on a cosine-similarity axis it would sit at a meaningless place."""
    assert margin_lines("triplet", 0.2, 0.5, {}, "cosine_similarity") == []
    assert margin_lines("circle", 0.25, None, {}, "l2") == []
    final = {"kind": "cosine_similarity", "positive_median": 0.9, "negative_median": 0.1, "positive_p90": 0.95, "overlap": 0.1}
    s = suggest_from_distances("triplet", 0.2, final)
    assert s["margin"] is None and "not in triplet's own measure" in s["rule"]


def test_suggestion_says_its_rule_and_evidence():
    final = {"kind": "l2", "positive_median": 0.4, "negative_median": 1.1, "positive_p90": 0.7, "overlap": 0.1}
    s = suggest_from_distances("triplet", 0.2, final)
    assert s["margin"] == 0.7 and "median negative" in s["rule"] and s["evidence"]["current_margin"] == 0.2
    assert suggest_from_distances("contrastive", 1.0, final)["margin"] == 0.7
    assert suggest_from_distances("circle", 0.25, {**final, "kind": "cosine_similarity"})["margin"] is None


def job(loss, margin, seed, value, status="succeeded"):
    return {"status": status, "spec": {"loss": loss, "margin": margin, "seed": seed}, "metrics": {"val/mean_average_precision_at_r": value}}


def test_sweep_recommendation_is_best_mean_across_seeds_per_loss():
    jobs = [job("triplet", 0.1, 0, 0.50), job("triplet", 0.1, 1, 0.30), job("triplet", 0.2, 0, 0.45), job("triplet", 0.2, 1, 0.44),
            job("circle", 0.25, 0, 0.6), job("circle", 0.4, 0, 0.9, status="running")]
    recs = {r["loss"]: r for r in recommend_from_sweep(jobs, ["margin", "loss"])}
    assert recs["triplet"]["margin"] == 0.2 and recs["triplet"]["runs"] == 2
    assert (recs["triplet"]["min"], recs["triplet"]["max"]) == (0.44, 0.45)
    assert recs["circle"]["margin"] == 0.25  # the running job is not evidence yet
