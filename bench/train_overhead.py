"""One job through embedlab's worker against the plain reference loop, in one run.

The reference is ../shared/reference/pml_loop.py run as it is (PyTorch +
pytorch-metric-learning, mnist5k, train on digits 0-4, evaluate on 5-9; no test part). The worker
runs the same configuration as a queued job, with logging, evaluation every 100 steps,
checkpoints and heartbeats on. Runs alternate to share the machine's drift; the ratio
of medians is printed.

Usage: .venv/bin/python bench/train_overhead.py [--steps 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import reference, run_in_worker  # noqa: E402

SPEC = {
    "dataset": "mnist5k",
    "split": "classes",
    "val_fraction": 0.5,
    "test_fraction": 0,
    "backbone": "cnn",
    "embedding_dim": 128,
    "normalize": True,
    "loss": "triplet",
    "margin": 0.2,
    "miner": "semihard",
    "classes_per_batch": 5,
    "samples_per_class": 16,
    "optimizer": "adam",
    "lr": 0.001,
    "eval_every": 100,
    "seed": 0,
}


def worker(steps: int) -> dict:
    with tempfile.TemporaryDirectory() as home:
        result = run_in_worker(home, {**SPEC, "steps": steps})
    assert result["status"] == "succeeded", result
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ref, ours = [], []
    for i in range(args.repeats):
        pair = [("reference", lambda: reference("triplet", 0.2, args.steps)), ("worker", lambda: worker(args.steps))]
        for name, fn in pair if i % 2 == 0 else pair[::-1]:
            r = fn()
            (ref if name == "reference" else ours).append(r)
            print(
                f"  run {i + 1} {name:9s}: {r['train_img_per_s']:8.1f} img/s  MAP@R {r.get('mean_average_precision_at_r', r.get('val/mean_average_precision_at_r')):.4f}",
                flush=True,
            )
    ref_speed = statistics.median(r["train_img_per_s"] for r in ref)
    our_speed = statistics.median(r["train_img_per_s"] for r in ours)
    print(
        json.dumps(
            {
                "steps": args.steps,
                "repeats": args.repeats,
                "reference_img_per_s": round(ref_speed, 1),
                "worker_img_per_s": round(our_speed, 1),
                "ratio": round(our_speed / ref_speed, 3),
                "target": 0.97,
                "reference_map_at_r": [r["mean_average_precision_at_r"] for r in ref],
                "worker_map_at_r": [round(r["val/mean_average_precision_at_r"], 4) for r in ours],
                "reference_p_at_1": [r["precision_at_1"] for r in ref],
                "worker_p_at_1": [round(r["val/precision_at_1"], 4) for r in ours],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
