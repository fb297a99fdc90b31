"""A margin sweep run by embedlab's workers against the plain reference script at the same settings.

For each loss and margin, MAP@R of the sweep's runs (mean and spread over seeds) beside the
reference script's (../shared/reference/pml_loop.py, run as it is, seed 0), and the time the
sweep took with 1 and with 2 workers.

Usage: .venv/bin/python bench/sweep_reference.py [--margins 0.1,0.4,0.7,1.0] [--losses triplet,circle] [--seeds 0,1] [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import REFERENCE_MINER, reference, run_sweeps  # noqa: E402


def run_sweep(losses: list[str], margins: list[float], seeds: list[int], steps: int, workers: int) -> tuple[float, list[dict]]:
    sweeps = [
        {
            "base": {"dataset": "mnist5k", "steps": steps, "eval_every": steps, "loss": loss, "miner": REFERENCE_MINER[loss]},
            "grid": {"margin": margins},
            "seeds": seeds,
        }
        for loss in losses
    ]
    with tempfile.TemporaryDirectory() as home:
        return run_sweeps(home, sweeps, workers)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--margins", default="0.1,0.4,0.7,1.0")
    parser.add_argument("--losses", default="triplet,circle")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    margins = [float(m) for m in args.margins.split(",")]
    losses, seeds = args.losses.split(","), [int(s) for s in args.seeds.split(",")]

    plain = {}
    for loss in losses:
        for m in margins:
            plain[(loss, m)] = reference(loss, m, args.steps)["mean_average_precision_at_r"]
    one_worker_s, _ = run_sweep(losses, margins, seeds, args.steps, workers=1)
    two_workers_s, jobs = run_sweep(losses, margins, seeds, args.steps, workers=2)

    print(f"{'loss':8s} {'margin':>6s} {'reference':>10s} {'embedlab mean':>14s} {'min':>7s} {'max':>7s}")
    for loss in losses:
        for m in margins:
            values = [
                j["summary"]["val/mean_average_precision_at_r"]
                for j in jobs
                if j["spec"]["loss"] == loss and j["spec"]["margin"] == m and j["status"] == "succeeded"
            ]
            print(f"{loss:8s} {m:6.2f} {plain[(loss, m)]:10.4f} {statistics.fmean(values):14.4f} {min(values):7.4f} {max(values):7.4f}")
    print(
        json.dumps(
            {
                "jobs": len(jobs),
                "sweep_1_worker_s": round(one_worker_s, 1),
                "sweep_2_workers_s": round(two_workers_s, 1),
                "failed": sum(j["status"] != "succeeded" for j in jobs),
            }
        )
    )


if __name__ == "__main__":
    main()
