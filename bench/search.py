"""A 16-trial TPE + ASHA margin search against an 8-margin x 2-seed grid, counted in training steps.

On mnist5k (cnn, triplet, semi-hard mining), the search's best validation MAP@R (at each trial's best step after
step 0) should fall within the noise band of the grid's recommended point, spending at most 40% of the grid's
training steps. Both sides run on one fresh server (`embedlab serve --workers N`) against a throwaway EMBEDLAB_HOME,
the grid first. Steps are read from the jobs (the steps each one actually trained; the search's own budget count is
printed beside), wall time beside them. Each side's recommendation is the API's, by one set of rules: a sweep's
(GET /api/sweeps/{id}), and the same rules over the search's completed trials (GET /api/searches/{id}): the best
point, the points within noise of it (paired bootstrap over validation queries and seeds), and its locked test
score with a 95% interval. The noise band is the grid's recommended point's 95% interval.

Usage: .venv/bin/python bench/search.py [--dataset mnist5k] [--steps 1000] [--eval-every 100] [--trials 16] [--workers 2]
       [--margins 8] [--seeds 0,1]      (a quick check: --dataset digits --steps 60 --eval-every 10 --trials 4 --margins 2)
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import home_env, served  # noqa: E402

METRIC = "mean_average_precision_at_r"


def wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(2.0)
    raise TimeoutError(f"{what} did not happen in {timeout:.0f}s")


def interval(d: dict | None) -> str:
    return "-" if not d else f"{d['mean']:.4f} [{d['low']:.4f}, {d['high']:.4f}]"


def recommendation(detail: dict) -> dict:
    """The sweep recommender's reading (a sweep's, or a search's over its completed trials): one loss here."""
    recs = [r for r in detail.get("recommendations") or [] if r["loss"] == "triplet"]
    if not recs:
        raise RuntimeError(f"no recommendation in {detail.get('id')}: {detail.get('recommendations')}")
    return recs[0]


def side(rec: dict) -> dict:
    """What the report shows of one side: the recommended margin, the set within noise of it, the best point's
    validation interval (its noise band) and its locked test score, read once at the end."""
    return {
        "margin": rec["margin"],
        "within_noise": sorted([rec["margin"], *[t["margin"] for t in rec["tied"]]]),
        "starred": rec["starred"],
        "validation": {k: rec["best"][k] for k in ("mean", "low", "high")},
        "interval": rec["best"]["interval"],
        "locked_test": rec["locked_test"],
        "statement": rec["statement"],
        "test_used": rec["test_used"],
    }


def run_grid(url: str, base: dict, margins: list[float], seeds: list[int]) -> dict:
    t0 = time.perf_counter()
    sweep = httpx.post(
        f"{url}/api/sweeps", json={"name": "bench grid", "base": base, "grid": {"margin": margins}, "seeds": seeds}, timeout=120
    )
    sweep.raise_for_status()
    sid = sweep.json()["id"]
    done = wait(lambda: _ended_sweep(url, sid), 24 * 3600, "the grid")
    wall = time.perf_counter() - t0
    rec = recommendation(httpx.get(f"{url}/api/sweeps/{sid}", timeout=600).json())
    return {
        "wall_s": wall,
        "steps": sum(j["progress"]["step"] for j in done["job_list"]),  # the steps each job actually trained
        "jobs": len(done["job_list"]),
        "statuses": sorted({j["status"] for j in done["job_list"]}),
        "points": {p["margin"]: {"validation": interval(p), "test": interval(p["test"])} for p in rec["points"]},
        **side(rec),
    }


def _ended_sweep(url: str, sweep_id: int) -> dict | None:
    sweep = httpx.get(f"{url}/api/sweeps/{sweep_id}", timeout=600).json()
    return sweep if all(j["status"] not in ("queued", "running") for j in sweep["job_list"]) else None


def run_search(url: str, base: dict, trials: int, parallel: int, seeds: list[int]) -> dict:
    t0 = time.perf_counter()
    body = {
        "name": "bench search",
        "base": base,
        "space": {"margin": {"low": 0.01, "high": 1.0, "log": True}},
        "trials": trials,
        "parallel": parallel,
        "sampler": "tpe",
        "pruner": "asha",
        "seeds": seeds,
    }
    r = httpx.post(f"{url}/api/searches", json=body, timeout=120)
    r.raise_for_status()
    sid = r.json()["id"]
    done = wait(
        lambda: (d := httpx.get(f"{url}/api/searches/{sid}", timeout=120).json())["status"] != "running" and d, 24 * 3600, "the search"
    )
    wall = time.perf_counter() - t0
    trial_steps = 0  # the steps the trials' jobs actually trained, read from the jobs (the search's own count beside)
    for t in done["trial_list"]:
        for job_id in t["job_ids"]:
            trial_steps += httpx.get(f"{url}/api/jobs/{job_id}", timeout=60).json()["progress"]["step"]
    return {
        "wall_s": wall,
        "budget": done["budget"],
        "steps": trial_steps,
        "best": done["best"],
        "states": [t["state"] for t in done["trial_list"]],
        "trials": [
            {
                "margin": t["params"].get("margin"),
                "state": t["state"],
                "value": t["value"],
                "steps": t["steps"],
                "pruned_at": t["pruned_at"],
            }
            for t in done["trial_list"]
        ],
        **side(recommendation(done)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--margins", type=int, default=8, help="grid margins, log-spaced over 0.05-0.8")
    parser.add_argument("--seeds", default="0,1", help="the grid's seeds (the search runs one seed per trial)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()
    base = {
        "dataset": args.dataset,
        "backbone": "cnn",
        "loss": "triplet",
        "miner": "semihard",
        "steps": args.steps,
        "eval_every": args.eval_every,
        "explorer": False,
    }
    margins = [round(float(m), 4) for m in np.geomspace(0.05, 0.8, args.margins)]
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as home:
        env = home_env(home, EMBEDLAB_MAX_SEARCH_TRIALS=str(max(200, args.trials)))
        with served(env, workers=args.workers, timeout=120) as (url, _server):
            grid = run_grid(url, base, margins, seeds)
            found = run_search(url, base, args.trials, args.workers, [seeds[0]])
    band = grid["validation"]
    best = found["best"]["value"] if found["best"] else float("nan")
    inside = best >= band["low"]  # within the grid best's 95% interval, or above it
    fraction = found["steps"] / grid["steps"]
    print(f"command: {shlex.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"configuration: {base}; grid margins {margins} x seeds {seeds}; search {args.trials} trials TPE + ASHA, seed {seeds[0]}, "
        f"{args.workers} worker(s)"
    )
    print(f"grid:   {grid['jobs']} jobs ({grid['statuses']}), {grid['steps']} training steps, {grid['wall_s']:.0f} s")
    for m, p in sorted(grid["points"].items()):
        print(f"  margin {m:g}: validation {p['validation']}, locked test {p['test']}")
    print(
        f"  recommended margin {grid['margin']:g} (within noise: {grid['within_noise']}, starred {grid['starred']}): validation "
        f"{interval(band)} ({grid['interval']}); locked test {interval(grid['locked_test'])}"
    )
    print(
        f"search: {len(found['trials'])} trials, {found['steps']} training steps (the search counts {found['budget']['steps_spent']}), "
        f"{found['wall_s']:.0f} s"
    )
    for t in found["trials"]:
        print(f"  margin {t['margin']:.4g}: {t['state']}, value {t['value']}, {t['steps']} steps, pruned at {t['pruned_at']}")
    print(
        f"  best trial {found['best']}; recommended margin {found['margin']:g} (within noise: {found['within_noise']}, "
        f"starred {found['starred']}): validation {interval(found['validation'])} ({found['interval']}); "
        f"locked test {interval(found['locked_test'])}"
    )
    print(
        f"target: search best {best:.4f} within the grid best's noise band {interval(band)} or above it: {inside}; "
        f"steps {found['steps']} / {grid['steps']} = {fraction:.1%} <= 40%: {fraction <= 0.4}"
    )
    result = {"base": base, "margins": margins, "seeds": seeds, "grid": grid, "search": found, "steps_fraction": fraction, "inside": inside}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
