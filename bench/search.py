"""A 16-trial TPE + ASHA margin search against an 8-margin x 2-seed grid, counted in training steps.

Issue 14's target: on mnist5k (cnn, triplet), the search's best validation MAP@R (at each trial's best step)
falls within the noise band of the grid's best point, spending at most 40% of the grid's training steps.
Both sides run on one fresh server (`embedlab serve --workers N`) against a throwaway EMBEDLAB_HOME; steps are
read from the jobs (steps each one actually trained), wall time is reported beside them. The noise band is the
best grid point's 95% interval when the jobs report one (issue 13's `val/<m>_low/_high`), else the range of its seeds.
The locked test scores are reported when the jobs carry them (issue 13's `test`), else marked missing.

Usage: .venv/bin/python bench/search.py [--dataset mnist5k] [--steps 1000] [--eval-every 100] [--trials 16] [--workers 2]
       [--margins 8] [--seeds 0,1]      (a quick check: --dataset digits --steps 60 --eval-every 10 --trials 4 --margins 2)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, home_env  # noqa: E402
from tests.conftest import free_port  # noqa: E402

METRIC = "mean_average_precision_at_r"


def wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(2.0)
    raise TimeoutError(f"{what} did not happen in {timeout:.0f}s")


def best_of(url: str, job: dict) -> dict:
    """The job's selection metric at its best step after step 0, with the interval there when the job reports one."""
    best = job.get("best")
    if isinstance(best, dict) and (best.get("step") or 0) > 0 and best.get("metrics", {}).get(METRIC) is not None:
        m = best["metrics"]
        return {"value": m[METRIC], "step": best.get("step"), "low": m.get(f"{METRIC}_low"), "high": m.get(f"{METRIC}_high")}
    names = f"val/{METRIC},val/{METRIC}_low,val/{METRIC}_high"
    series = httpx.get(f"{url}/api/jobs/{job['id']}/metrics", params={"names": names, "max_points": 100000}, timeout=60).json()["series"]
    main = series[f"val/{METRIC}"]  # step 0 left out, as the search's objective does (the same untrained network for a seed)
    i = int(np.nanargmax(np.array([np.nan if v is None or s == 0 else v for s, v in zip(main["step"], main["value"])], dtype=float)))
    at = main["step"][i]

    def at_step(name: str) -> float | None:
        s = series.get(name) or {"step": [], "value": []}
        return dict(zip(s["step"], s["value"])).get(at)

    return {"value": main["value"][i], "step": at, "low": at_step(f"val/{METRIC}_low"), "high": at_step(f"val/{METRIC}_high")}


def locked_test(job: dict) -> dict | None:
    test = job.get("test")
    return (test or {}).get("best") if isinstance(test, dict) else None


def run_grid(url: str, base: dict, margins: list[float], seeds: list[int]) -> dict:
    t0 = time.perf_counter()
    sweep = httpx.post(
        f"{url}/api/sweeps", json={"name": "bench grid", "base": base, "grid": {"margin": margins}, "seeds": seeds}, timeout=120
    )
    sweep.raise_for_status()
    sid = sweep.json()["id"]
    done = wait(lambda: _ended_sweep(url, sid), 24 * 3600, "the grid")
    wall = time.perf_counter() - t0
    points: dict[float, list[dict]] = {}
    for job in done["job_list"]:
        if job["status"] == "succeeded":
            points.setdefault(job["spec"]["margin"], []).append({**best_of(url, job), "job": job})
    means = {m: statistics.mean(r["value"] for r in runs) for m, runs in points.items()}
    best_margin = max(means, key=means.get)
    runs = points[best_margin]
    if all(r["low"] is not None for r in runs):
        band = (statistics.mean(r["low"] for r in runs), statistics.mean(r["high"] for r in runs)), "mean 95% interval of its seeds"
    else:
        band = (min(r["value"] for r in runs), max(r["value"] for r in runs)), "range of its seeds"
    return {
        "wall_s": wall,
        "steps": sum(j["progress"]["step"] for j in done["job_list"]),
        "jobs": len(done["job_list"]),
        "means": means,
        "best_margin": best_margin,
        "best_value": means[best_margin],
        "band": band[0],
        "band_kind": band[1],
        "test": [locked_test(r["job"]) for r in runs],
        "recommendations": done.get("recommendations"),
    }


def _ended_sweep(url: str, sweep_id: int) -> dict | None:
    sweep = httpx.get(f"{url}/api/sweeps/{sweep_id}", timeout=60).json()
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
    best = done["best"]
    best_job = httpx.get(f"{url}/api/jobs/{done['trial_list'][best['number']]['job_ids'][0]}", timeout=60).json() if best else None
    return {
        "wall_s": wall,
        "budget": done["budget"],
        "best": best,
        "states": [t["state"] for t in done["trial_list"]],
        "test": locked_test(best_job) if best_job else None,
        "recommendations": done.get("recommendations"),
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
        port = free_port()
        env = home_env(home, EMBEDLAB_MAX_SEARCH_TRIALS=str(max(200, args.trials)))
        server = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", str(args.workers)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait(lambda: _up(url), 120, "the server")
            grid = run_grid(url, base, margins, seeds)
            found = run_search(url, base, args.trials, args.workers, [seeds[0]])
        finally:
            server.terminate()
            server.wait(60)
    inside = found["best"] is not None and found["best"]["value"] >= grid["band"][0]  # within the band, or above it
    fraction = found["budget"]["steps_spent"] / grid["steps"]
    print(
        f"grid:   {len(margins)} margins x {len(seeds)} seeds, {grid['steps']} training steps, {grid['wall_s']:.0f} s; "
        f"best margin {grid['best_margin']} MAP@R {grid['best_value']:.4f} (noise band {grid['band'][0]:.4f}-{grid['band'][1]:.4f}, {grid['band_kind']})"
    )
    print(
        f"search: {args.trials} trials TPE+ASHA, {found['budget']['steps_spent']} training steps ({fraction:.0%} of the grid's), "
        f"{found['wall_s']:.0f} s; best {found['best']}; states {found['states']}"
    )
    print(
        f"locked test: grid {grid['test']}, search {found['test']}"
        if found["test"] or any(grid["test"])
        else "locked test: not reported by these jobs (needs issue 13's test split)"
    )
    print(f"target: best within the grid's noise band or above it: {inside}; steps <= 40% of the grid's: {fraction <= 0.4}")
    print(
        json.dumps(
            {
                "grid": {k: v for k, v in grid.items() if k != "means"} | {"means": {str(k): v for k, v in grid["means"].items()}},
                "search": found,
                "steps_fraction": fraction,
            },
            default=str,
        )
    )


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/jobs", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
