"""Margin evidence under embedlab's protocol: two triplet margin sweeps with disjoint seeds, read through the API.

A real `embedlab serve` (no embedded workers) over a throwaway EMBEDLAB_HOME takes two sweeps by
POST /api/sweeps (mnist5k, cnn, triplet loss with semi-hard mining, the default class-disjoint
train / validation / locked test split; one sweep per seed set); ONE worker process
(`worker --threads 1 --device cpu`) runs every job; then GET /api/sweeps/{id} gives each sweep's
recommendation: the best margin, the margins within noise of it (paired bootstrap), whether one is
starred, and the locked test score. Printed per sweep: every margin's validation and locked test
MAP@R with 95% intervals (seeds averaged, at each run's best checkpoint), the recommended set,
whether the two sets overlap, pml's default margin (0.05) and FaceNet's (0.2) beside it, and the
wall time. The explorer's layout is off (`explorer: false`): it is no part of the evidence.

Usage: PYTHONPATH=. .venv/bin/python bench/protocol.py [--margins 0.02,0.05,0.1,0.2,0.4,0.8]
           [--seeds-a 0,1,2] [--seeds-b 3,4,5] [--steps 1000] [--eval-every 100] [--port 8771] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import REFERENCE_MINER, ROOT, home_env  # noqa: E402
from bench.load import start_server  # noqa: E402

METRIC = "mean_average_precision_at_r"
REFERENCE_MARGINS = {0.05: "pml default", 0.2: "FaceNet"}


def interval(d: dict | None) -> str:
    return "-" if not d else f"{d['mean']:.4f} [{d['low']:.4f}, {d['high']:.4f}]"


def recommended(rec: dict) -> list[float]:
    return sorted([rec["margin"], *[t["margin"] for t in rec["tied"]]])


def run(args: argparse.Namespace) -> dict:
    margins = [float(m) for m in args.margins.split(",")]
    seed_sets = [[int(s) for s in part.split(",")] for part in (args.seeds_a, args.seeds_b)]
    base = {
        "dataset": "mnist5k",
        "backbone": "cnn",
        "loss": "triplet",
        "miner": REFERENCE_MINER["triplet"],
        "steps": args.steps,
        "eval_every": args.eval_every,
        "explorer": False,
    }
    with tempfile.TemporaryDirectory() as home:
        server = start_server(home, args.port, workers=0)
        url = f"http://127.0.0.1:{args.port}"
        try:
            ids = []
            for seeds in seed_sets:
                r = httpx.post(
                    f"{url}/api/sweeps",
                    json={"name": f"margins seeds {seeds}", "base": base, "grid": {"margin": margins}, "seeds": seeds},
                    timeout=60,
                )
                if r.status_code != 201 and r.status_code != 200:
                    raise RuntimeError(f"POST /api/sweeps: {r.status_code} {r.text}")
                ids.append(r.json()["id"])
            t0 = time.perf_counter()
            worker = subprocess.run(
                [sys.executable, "-m", "app.cli", "worker", "--threads", "1", "--device", "cpu", "--exit-when-idle"],
                env=home_env(home),
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wall = time.perf_counter() - t0
            details = [httpx.get(f"{url}/api/sweeps/{i}", timeout=600).json() for i in ids]
        finally:
            server.terminate()
            server.wait(30)
    return {"margins": margins, "seed_sets": seed_sets, "base": base, "wall_s": wall, "worker_rc": worker.returncode, "sweeps": details}


def sweep_wall(detail: dict) -> float:
    jobs = [j for j in detail["job_list"] if j.get("started_at") and j.get("finished_at")]
    if not jobs:
        return 0.0
    start = min(datetime.fromisoformat(j["started_at"]) for j in jobs)
    end = max(datetime.fromisoformat(j["finished_at"]) for j in jobs)
    return (end - start).total_seconds()


def report(result: dict) -> None:
    sets = []
    for detail, seeds in zip(result["sweeps"], result["seed_sets"]):
        jobs = detail["job_list"]
        failed = [j["id"] for j in jobs if j["status"] != "succeeded"]
        no_gain = sum(bool(j.get("no_gain")) for j in jobs)
        base = [j["baseline"]["metrics"][METRIC] for j in jobs if j.get("baseline")]
        rec = next((r for r in detail["recommendations"] if r["loss"] == "triplet"), None)
        print(
            f"\n## sweep {detail['id']}: seeds {seeds}: {len(jobs)} jobs, {len(failed)} not succeeded {failed or ''}, "
            f"{no_gain} flagged no_gain, {sweep_wall(detail):.0f} s of worker time; untrained (step 0) validation {METRIC} "
            f"{min(base, default=float('nan')):.4f}-{max(base, default=float('nan')):.4f}"
        )
        if rec is None:
            print("no recommendation")
            continue
        chosen = recommended(rec)
        sets.append(set(chosen))
        print(f"| margin | validation {METRIC} (seeds averaged) | locked test {METRIC} | best steps | |")
        print("|---|---|---|---|---|")
        for p in rec["points"]:
            tags = [
                t
                for t in (
                    "recommended" if p["margin"] == rec["margin"] else "",
                    "within noise" if p["margin"] in chosen and p["margin"] != rec["margin"] else "",
                    REFERENCE_MARGINS.get(p["margin"], ""),
                )
                if t
            ]
            print(f"| {p['margin']:g} | {interval(p)} | {interval(p['test'])} | {p['steps']} | {', '.join(tags)} |")
        print(f"recommended set: {chosen}; starred: {rec['starred']}; locked test of {rec['margin']:g}: {interval(rec['locked_test'])}")
        print(f"statement: {rec['statement']}")
        print(f"test used: {rec['test_used']}")
        for c in rec["comparisons"]:
            if c.get("diff_low") is not None:
                print(
                    f"  best - margin {c['margin']:g}: {c['diff']:+.4f} [{c['diff_low']:+.4f}, {c['diff_high']:+.4f}] "
                    f"({'distinguishable' if c['distinguishable'] else 'within noise'})"
                )
    if len(sets) == 2:
        print(f"\nrecommended sets overlap: {bool(sets[0] & sets[1])} (common: {sorted(sets[0] & sets[1])})")
    print(f"wall time, both sweeps, one worker x 1 thread: {result['wall_s']:.0f} s; worker exit code {result['worker_rc']}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--margins", default="0.02,0.05,0.1,0.2,0.4,0.8")
    parser.add_argument("--seeds-a", default="0,1,2")
    parser.add_argument("--seeds-b", default="3,4,5")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--port", type=int, default=8771)
    parser.add_argument("--json", help="also write the sweeps' API answers here")
    args = parser.parse_args()
    print("command: " + shlex.join([Path(sys.executable).name, *sys.argv]), flush=True)
    result = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    report(result)


if __name__ == "__main__":
    main()
