"""One job through embedlab's worker against the plain reference loop, in one run.

The reference is ../shared/reference/pml_loop.py run as it is (PyTorch +
pytorch-metric-learning, mnist5k, train on digits 0-4, evaluate on 5-9). The worker
runs the same configuration as a queued job, with logging, evaluation every 100 steps,
checkpoints and heartbeats on. Runs alternate to share the machine's drift; the ratio
of medians is printed.

Usage: .venv/bin/python bench/train_overhead.py [--steps 300] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT.parent / "shared" / "reference" / "pml_loop.py"


def reference(steps: int) -> dict:
    out = subprocess.run([sys.executable, str(REFERENCE), "triplet", "0.2", str(steps), "cnn"], capture_output=True, text=True, check=True, cwd=tempfile.gettempdir())
    return json.loads(out.stdout.strip().splitlines()[-1])


def worker(steps: int) -> dict:
    spec = {"dataset": "mnist5k", "split": "classes", "val_fraction": 0.5, "backbone": "cnn", "embedding_dim": 128, "normalize": True,
            "loss": "triplet", "margin": 0.2, "miner": "semihard", "classes_per_batch": 5, "samples_per_class": 16,
            "optimizer": "adam", "lr": 0.001, "steps": steps, "eval_every": 100, "seed": 0}
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "EMBEDLAB_HOME": home, "EMBEDLAB_DEMO": "false"}
        code = (
            "import json,sys; from app.config import Settings; from app.spec import JobSpec; from app.store import jobs, metrics;"
            "from app.store.db import get_engine, init_db; s=Settings(); e=get_engine(s.db_url); init_db(e);"
            f"j=jobs.submit(e, JobSpec.model_validate(json.loads({json.dumps(json.dumps(spec))})));"
            "from trainer.worker import Worker; Worker(s).run(max_jobs=1, exit_when_idle=True);"
            "r=jobs.get(e, j['id']); ser=metrics.series(e, j['id'], ['train/images_per_second']);"
            "print(json.dumps({'status': r['status'], 'error': r['error'], 'train_img_per_s': ser['train/images_per_second']['value'][-1], **r['summary']}))"
        )
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=ROOT)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["status"] == "succeeded", result
        return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ref, ours = [], []
    for i in range(args.repeats):
        pair = [("reference", reference), ("worker", worker)]
        for name, fn in pair if i % 2 == 0 else pair[::-1]:
            r = fn(args.steps)
            (ref if name == "reference" else ours).append(r)
            print(f"  run {i + 1} {name:9s}: {r['train_img_per_s']:8.1f} img/s  MAP@R {r.get('mean_average_precision_at_r', r.get('val/mean_average_precision_at_r')):.4f}", flush=True)
    ref_speed = statistics.median(r["train_img_per_s"] for r in ref)
    our_speed = statistics.median(r["train_img_per_s"] for r in ours)
    print(json.dumps({
        "steps": args.steps, "repeats": args.repeats,
        "reference_img_per_s": round(ref_speed, 1), "worker_img_per_s": round(our_speed, 1),
        "ratio": round(our_speed / ref_speed, 3), "target": 0.97,
        "reference_map_at_r": [r["mean_average_precision_at_r"] for r in ref],
        "worker_map_at_r": [round(r["val/mean_average_precision_at_r"], 4) for r in ours],
        "reference_p_at_1": [r["precision_at_1"] for r in ref],
        "worker_p_at_1": [round(r["val/precision_at_1"], 4) for r in ours],
    }, indent=1))


if __name__ == "__main__":
    main()
