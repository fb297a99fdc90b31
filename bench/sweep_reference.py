"""A margin sweep run by embedlab's workers against the plain reference script at the same settings.

For each loss and margin, MAP@R of the sweep's runs (mean and spread over seeds) beside the
reference script's (../shared/reference/pml_loop.py, run as it is, seed 0), and the time the
sweep took with 1 and with 2 workers.

Usage: .venv/bin/python bench/sweep_reference.py [--margins 0.1,0.4,0.7,1.0] [--losses triplet,circle] [--seeds 0,1] [--steps 300]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT.parent / "shared" / "reference" / "pml_loop.py"
# The reference mines semi-hard triplets for triplet loss and uses no miner for circle loss.
MINER = {"triplet": "semihard", "circle": "none", "contrastive": "none"}


def run_sweep(losses: list[str], margins: list[float], seeds: list[int], steps: int, workers: int) -> tuple[float, list[dict]]:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "EMBEDLAB_HOME": home, "EMBEDLAB_DEMO": "false"}
        specs = [{"base": {"dataset": "mnist5k", "steps": steps, "eval_every": steps, "loss": loss, "miner": MINER[loss]},
                  "grid": {"margin": margins}, "seeds": seeds} for loss in losses]
        code = (
            "import json,sys; from app.config import Settings; from app.spec import SweepSpec, check_sweep; from app.store import sweeps;"
            "from app.store.db import get_engine, init_db; s=Settings(); e=get_engine(s.db_url); init_db(e)\n"
            "for raw in json.loads(sys.argv[1]):\n"
            "    sw=SweepSpec.model_validate(raw); sweeps.create(e, sw, check_sweep(sw, s), owner='bench', max_attempts=1)"
        )
        subprocess.run([sys.executable, "-c", code, json.dumps(specs)], env=env, check=True, cwd=ROOT)
        t0 = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--exit-when-idle"], env=env, cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(workers)]
        for p in procs:
            p.wait()
        took = time.perf_counter() - t0
        out = subprocess.run([sys.executable, "-c", "import json; from app.config import Settings; from app.store import jobs; "
                              "from app.store.db import get_engine; print(json.dumps([{'spec': j['spec'], 'status': j['status'], 'summary': j['summary']} "
                              "for j in jobs.list_jobs(get_engine(Settings().db_url), limit=1000)[0]]))"],
                             env=env, capture_output=True, text=True, check=True, cwd=ROOT)
        return took, json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--margins", default="0.1,0.4,0.7,1.0")
    parser.add_argument("--losses", default="triplet,circle")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    margins = [float(m) for m in args.margins.split(",")]
    losses, seeds = args.losses.split(","), [int(s) for s in args.seeds.split(",")]

    reference = {}
    for loss in losses:
        for m in margins:
            out = subprocess.run([sys.executable, str(REFERENCE), loss, str(m), str(args.steps), "cnn"], capture_output=True, text=True,
                                 check=True, cwd=tempfile.gettempdir())
            reference[(loss, m)] = json.loads(out.stdout.strip().splitlines()[-1])["mean_average_precision_at_r"]
    one_worker_s, _ = run_sweep(losses, margins, seeds, args.steps, workers=1)
    two_workers_s, jobs = run_sweep(losses, margins, seeds, args.steps, workers=2)

    print(f"{'loss':8s} {'margin':>6s} {'reference':>10s} {'embedlab mean':>14s} {'min':>7s} {'max':>7s}")
    for loss in losses:
        for m in margins:
            values = [j["summary"]["val/mean_average_precision_at_r"] for j in jobs
                      if j["spec"]["loss"] == loss and j["spec"]["margin"] == m and j["status"] == "succeeded"]
            print(f"{loss:8s} {m:6.2f} {reference[(loss, m)]:10.4f} {statistics.fmean(values):14.4f} {min(values):7.4f} {max(values):7.4f}")
    print(json.dumps({"jobs": len(jobs), "sweep_1_worker_s": round(one_worker_s, 1), "sweep_2_workers_s": round(two_workers_s, 1),
                      "failed": sum(j["status"] != "succeeded" for j in jobs)}))


if __name__ == "__main__":
    main()
