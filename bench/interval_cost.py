"""What the 95% intervals cost: the bootstrap's share of one validation evaluation.

An evaluation as trainer/train.py runs it (embed the validation part, per-query P@1 / R-Precision /
AP@R from one kNN, the seeded bootstrap, the validation loss, the distance histograms), timed with and
without `bootstrap_interval` (also against the evaluation without its validation loss, the stricter
reading), on the bundled datasets' default split with an untrained cnn.
Median of repeats; the bootstrap is timed on the same per-query values.

Usage: .venv/bin/python bench/interval_cost.py [--repeats 7] [--threads 2] [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from app.config import Settings  # noqa: E402
from app.distance import job_distance  # noqa: E402
from app.evidence import bootstrap_interval  # noqa: E402
from app.spec import JobSpec, job_split  # noqa: E402
from trainer.data import fixed_val_batches, load_images  # noqa: E402
from trainer.diagnostics import distance_histograms  # noqa: E402
from trainer.evaluate import RETRIEVAL, batch_loss, embed, per_query_retrieval  # noqa: E402
from trainer.losses import build_loss  # noqa: E402
from trainer.nets import build_net  # noqa: E402


def measure(dataset: str, repeats: int, device: torch.device) -> dict:
    spec = JobSpec(dataset=dataset)
    settings = Settings()
    data = load_images(spec, settings, lambda *_: None)
    val = data.subset(job_split(data.labels.numpy(), spec).val)
    model = build_net(spec, data.images.shape[1], settings).to(device)
    loss_fn, miner = build_loss(spec)
    batches = fixed_val_batches(val.labels.numpy(), spec)
    rest, loss, boot = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        emb = embed(model, val.images, device)
        per_query, _ = per_query_retrieval(emb, val.labels, job_distance(spec))
        distance_histograms(emb, val.labels, job_distance(spec), seed=spec.split_seed)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        batch_loss(model, loss_fn, miner, val.images, val.labels, batches, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        bootstrap_interval(np.stack([per_query[m] for m in RETRIEVAL], axis=1), spec.split_seed)
        t3 = time.perf_counter()
        rest.append(t1 - t0)
        loss.append(t2 - t1)
        boot.append(t3 - t2)
    r, v, b = statistics.median(rest), statistics.median(loss), statistics.median(boot)
    return {
        "dataset": dataset,
        "queries": len(val),
        "evaluation_s": round(r + v + b, 4),
        "bootstrap_s": round(b, 4),
        "bootstrap_share_percent": round(100 * b / (r + v + b), 2),
        "share_without_val_loss_percent": round(100 * b / (r + b), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for dataset in ("digits", "mnist5k"):
        print(measure(dataset, args.repeats, torch.device(args.device)), flush=True)


if __name__ == "__main__":
    main()
