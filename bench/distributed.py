"""One job on 2 ranks (Gloo, CPU processes) against 1 process with the same global batch, through real workers.

Same spec, same global PK batch (4 classes x 32 images of mnist5k's digits 0-4), cnn, semi-hard triplets, for
each seed; the two run alternately to share the machine's drift. Prints, per seed and overall: training images
per second (train/images_per_second: evaluation excluded) and their ratio, the CPU seconds of each job (all
its processes: the wall-clock ratio moves with whatever else the host runs, CPU time much less), and the validation MAP@R with its 95%
bootstrap interval over the queries, then the seeds' mean and the difference of the means with its standard error.

Threads: by default the worker gives the 1-process job its share of the cores and splits that among the ranks
(same cores, so the ratio is what the collectives cost: all-gather of embeddings, all-reduce of gradients, the
batch and stop broadcasts); `--threads-per-rank 1` gives each process one thread (1 core against 2: the scaling
a second device brings). On one host the ranks also share its memory bandwidth.

Usage: .venv/bin/python bench/distributed.py [--steps 300] [--seeds 0 1 2] [--threads-per-rank N] [--freeze-bn]"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import train_overhead  # noqa: E402
from bench.common import run_in_worker  # noqa: E402

# bench/train_overhead.py's job (the reference loop's), with a PK batch that splits over 2 ranks: 4 x 32 = 128 images.
SPEC = {**train_overhead.SPEC, "classes_per_batch": 4, "samples_per_class": 32, "explorer": False}
MAP = "val/mean_average_precision_at_r"


def one(steps: int, seed: int, devices: int, threads_per_rank: int, freeze_bn: bool) -> dict:
    spec = {**SPEC, "steps": steps, "eval_every": steps, "seed": seed, "devices": devices, "freeze_bn": freeze_bn}
    with tempfile.TemporaryDirectory() as home:
        out = run_in_worker(home, spec, devices=devices, threads=threads_per_rank * devices)
    if out["status"] != "succeeded":
        raise RuntimeError(out["error"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--threads-per-rank",
        type=int,
        default=0,
        help="0: the worker's share of the cores, split among the ranks; N: N threads per process",
    )
    parser.add_argument(
        "--freeze-bn",
        action="store_true",
        help="fixed BatchNorm statistics: on CPU each rank's would be its own part's, the 1-process job's the batch's",
    )
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        single, ranked = (one(args.steps, seed, n, args.threads_per_rank, args.freeze_bn) for n in (1, 2))
        row = {
            "seed": seed,
            "img_per_s_1": round(single["train_img_per_s"]),
            "img_per_s_2_ranks": round(ranked["train_img_per_s"]),
            "ratio": round(ranked["train_img_per_s"] / single["train_img_per_s"], 3),
            # CPU seconds of the whole job (loading, evaluations, every rank): what the ranks cost, whatever else runs.
            "cpu_s_1": round(single["cpu_s"], 1),
            "cpu_s_2_ranks": round(ranked["cpu_s"], 1),
            "map_at_r_1": [round(single[k], 4) for k in (MAP, f"{MAP}_low", f"{MAP}_high")],
            "map_at_r_2_ranks": [round(ranked[k], 4) for k in (MAP, f"{MAP}_low", f"{MAP}_high")],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    a = [r["map_at_r_1"][0] for r in rows]
    b = [r["map_at_r_2_ranks"][0] for r in rows]
    se = (statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5 if len(rows) > 1 else float("nan")
    summary = {
        "median_ratio_2_ranks_over_1": statistics.median(r["ratio"] for r in rows),
        "map_at_r_1_mean": round(statistics.mean(a), 4),
        "map_at_r_2_ranks_mean": round(statistics.mean(b), 4),
        "difference_2_minus_1": round(statistics.mean(b) - statistics.mean(a), 4),
        "difference_standard_error": round(se, 4),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
