"""The margin advisor on fabricated sweep results: what is starred, what is called noise, which test was used."""

from __future__ import annotations

import numpy as np

from app.advisor import bootstrap_mean, margin_lines, recommend_from_sweep

M = "mean_average_precision_at_r"
QUERIES = 400


def test_margin_lines_per_loss():
    assert margin_lines("contrastive", 0.8, 0.3, {}, "l2")[0]["x"] == 0.8
    assert margin_lines("triplet", 0.2, 0.5, {}, "l2")[0]["x"] == 0.7
    assert [line["x"] for line in margin_lines("circle", 0.25, None, {}, "cosine_similarity")] == [0.25, 0.75]
    assert margin_lines("ntxent", 0.2, 0.5, {}, "cosine_similarity") == []


def test_a_margin_is_drawn_only_on_its_losss_own_measure():
    """A triplet margin is an L2 distance: on a cosine-similarity axis it would sit at a meaningless place."""
    assert margin_lines("triplet", 0.2, 0.5, {}, "cosine_similarity") == []
    assert margin_lines("circle", 0.25, None, {}, "l2") == []


def per_query(rng: np.random.Generator, query_effect: np.ndarray, shift: float, noise: float) -> np.ndarray:
    """Per-query values of one run: the queries' own difficulty (shared by every run), a shift, and the run's noise."""
    return np.clip(query_effect + shift + rng.normal(0, noise, len(query_effect)), 0, 1)


def fabricate(
    shifts: dict[float, float],
    seeds=(0, 1),
    noise=0.02,
    loss="triplet",
    status="succeeded",
    per_query_files=True,
    start_id=1,
    fold=None,
    queries_seed=7,
):
    """Jobs (as the store returns them) and their per-query arrays: one run per margin and seed."""
    rng = np.random.default_rng(queries_seed)
    query_effect = rng.uniform(0.1, 0.7, QUERIES)  # hard and easy queries: a large spread that pairing removes
    indices = rng.permutation(10 * QUERIES)[:QUERIES]
    jobs, arrays, job_id = [], {}, start_id
    for margin, shift in shifts.items():
        for seed in seeds:
            values = per_query(rng, query_effect, shift + rng.normal(0, noise / 4), noise)
            mean = float(values.mean())
            half = 1.96 * values.std() / np.sqrt(QUERIES)
            best = {M: mean, f"{M}_low": mean - half, f"{M}_high": mean + half}
            test = {M: mean - 0.01, f"{M}_low": mean - 0.01 - half, f"{M}_high": mean - 0.01 + half}
            jobs.append(
                {
                    "id": job_id,
                    "status": status,
                    "spec": {"loss": loss, "margin": margin, "seed": seed, "fold": fold},
                    "summary": {
                        f"val/{M}": mean,
                        "best": {"step": 100, "metrics": best},
                        "baseline": {"step": 0, "metrics": {M: 0.2}},
                        "test": {"best": {"step": 100, "metrics": test}},
                        "select_metric": M,
                    },
                }
            )
            if per_query_files:
                arrays[job_id] = {"indices": indices, M: values, "seed": np.array(seed)}
            job_id += 1
    return jobs, arrays


def test_points_within_noise_are_not_starred():
    jobs, arrays = fabricate({0.1: 0.300, 0.2: 0.301, 0.4: 0.302})
    (rec,) = recommend_from_sweep(jobs, ["margin"], arrays, validation_classes=5)
    assert not rec["starred"]
    assert len(rec["tied"]) == 2 and {rec["margin"], *(c["margin"] for c in rec["tied"])} == {0.1, 0.2, 0.4}
    assert rec["statement"].startswith("Margins 0.1-0.4 are within noise of each other on these 5 validation classes")
    assert "None is starred" in rec["statement"]
    assert all(c["method"] == "paired bootstrap" for c in rec["comparisons"])
    assert rec["test_used"].startswith("a paired bootstrap of the per-query differences in mean_average_precision_at_r")
    assert rec["validation_queries"] == QUERIES


def test_a_clearly_better_point_is_starred():
    jobs, arrays = fabricate({0.1: 0.30, 0.2: 0.36, 0.4: 0.31})
    (rec,) = recommend_from_sweep(jobs, ["margin"], arrays)
    assert rec["starred"] and rec["margin"] == 0.2 and rec["tied"] == []
    assert rec["statement"] == "Margin 0.2 is better than every other triplet setting beyond the noise on this validation split."
    assert all(c["distinguishable"] and c["diff_low"] > 0 for c in rec["comparisons"])
    test = rec["locked_test"]
    assert test["runs"] == 2 and test["low"] < test["mean"] < test["high"]
    assert abs(test["mean"] - (rec["best"]["mean"] - 0.01)) < 1e-9  # the test values written, not the validation ones


def test_pairing_separates_what_overlapping_intervals_cannot():
    """A small, consistent gain (0.01 on every query) hidden under a large spread between queries: the paired test sees it,
    the unpaired interval check does not, and the recommendation says which test it used."""
    shifts = {0.1: 0.30, 0.2: 0.31}
    jobs, arrays = fabricate(shifts, noise=0.003)
    (paired,) = recommend_from_sweep(jobs, ["margin"], arrays)
    assert paired["starred"] and paired["margin"] == 0.2
    (unpaired,) = recommend_from_sweep(jobs, ["margin"], {})
    assert unpaired["margin"] == 0.2 and not unpaired["starred"]
    assert [c["method"] for c in unpaired["comparisons"]] == ["interval overlap"]
    assert "overlap of the 95% intervals where per-query values are missing (jobs #1, #2, #3, #4)" in unpaired["test_used"]
    assert unpaired["best"]["low"] < unpaired["comparisons"][0]["high"]  # the intervals overlap


def test_each_loss_has_its_own_recommendation_and_running_jobs_are_not_evidence():
    triplet, a = fabricate({0.1: 0.3, 0.2: 0.4})
    circle, b = fabricate({0.25: 0.5, 0.4: 0.5}, loss="circle", start_id=100)
    running, _ = fabricate({0.8: 0.9}, loss="circle", status="running", start_id=200)
    recs = {r["loss"]: r for r in recommend_from_sweep(triplet + circle + running, ["margin", "loss"], {**a, **b})}
    assert recs["triplet"]["margin"] == 0.2 and recs["triplet"]["starred"]
    assert [p["margin"] for p in recs["circle"]["points"]] == [0.25, 0.4]  # the running 0.8 is not there
    assert not recs["circle"]["starred"]


def test_one_seed_says_run_to_run_noise_is_not_measured():
    jobs, arrays = fabricate({0.1: 0.3, 0.2: 0.4}, seeds=(0,))
    (rec,) = recommend_from_sweep(jobs, ["margin"], arrays)
    assert "one seed per point: run-to-run variation is not measured" in rec["test_used"]


def test_a_job_without_a_best_checkpoint_uses_its_last_evaluation_and_says_so():
    jobs = [
        {"id": i, "status": "succeeded", "spec": {"loss": "triplet", "margin": m, "seed": 0}, "summary": {f"val/{M}": v}}
        for i, (m, v) in enumerate([(0.1, 0.3), (0.2, 0.5)], 1)
    ]
    (rec,) = recommend_from_sweep(jobs, ["margin"])
    assert rec["margin"] == 0.2 and "last evaluation stands in" in rec["rule"] and rec["locked_test"] is None


def test_bootstrap_interval_covers_a_known_mean():
    rng = np.random.default_rng(3)
    covered = 0
    for trial in range(60):
        sample = rng.normal(0.5, 0.2, (1, 200))
        _, low, high = bootstrap_mean(sample, seed=trial, resamples=500)
        covered += low <= 0.5 <= high
    assert covered >= 51  # 95% nominal: 57 of 60 expected, 51 leaves room for chance


def test_cross_validation_folds_are_averaged_not_compared():
    """Two folds validate on different classes (different queries): each fold is paired with itself, the folds averaged."""
    fold0, a = fabricate({0.1: 0.30, 0.2: 0.36}, fold=0, queries_seed=1)
    fold1, b = fabricate({0.1: 0.32, 0.2: 0.37}, fold=1, queries_seed=2, start_id=100)
    (rec,) = recommend_from_sweep(fold0 + fold1, ["margin", "fold"], {**a, **b})
    assert [p["margin"] for p in rec["points"]] == [0.1, 0.2] and rec["best"]["runs"] == 4
    assert rec["starred"] and rec["margin"] == 0.2 and rec["comparisons"][0]["method"] == "paired bootstrap"
    assert rec["comparisons"][0]["queries"] == 2 * QUERIES


def test_runs_whose_best_is_the_untrained_network_support_no_margin():
    jobs, arrays = fabricate({0.1: 0.30, 0.2: 0.40})
    for job in jobs:
        job["summary"]["best"]["step"] = 0
    (rec,) = recommend_from_sweep(jobs, ["margin"], arrays)
    assert not rec["starred"] and rec["statement"].startswith("Every triplet run's best checkpoint is its untrained network (step 0)")
