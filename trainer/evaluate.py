"""Embeddings and retrieval metrics of a part of the split (validation during training, test at the end)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

from app.distance import Distance
from app.evidence import bootstrap_interval
from trainer.data import Rows

RETRIEVAL = ("precision_at_1", "r_precision", "mean_average_precision_at_r")


def inference_batch(images: torch.Tensor | Rows) -> int:
    """Large batches for throughput, bounded by image area so the first layers' activations stay
    near 256 MB: 1,024 images at 28x28, 512 at 64x64, 64 at 224x224."""
    return max(64, min(1024, 2**21 // (images.shape[-1] * images.shape[-2])))


@torch.inference_mode()
def embed(model: torch.nn.Module, images: torch.Tensor | Rows, device: torch.device, batch_size: int | None = None) -> torch.Tensor:
    batch_size = batch_size or inference_batch(images)
    was_training = model.training
    model.eval()
    out = torch.cat(
        [model(images[i : i + batch_size].to(device, non_blocking=True)).float().cpu() for i in range(0, len(images), batch_size)]
    )
    model.train(was_training)
    return out


class ChunkedKNN:
    """Exact kNN for AccuracyCalculator: similarity blocks by matrix product, then topk.

    Excludes each query from its own results by masking the diagonal before topk, rather
    than searching k+1 and removing the match afterwards (the slow part at large k, which
    MAP@R needs: k is the size of the largest class). Cosine similarity when the job's distance
    normalises (it ranks alike to L2 on the unit sphere), negative squared L2 otherwise: both
    rank neighbours as the loss measures them.
    """

    def __init__(self, distance: Distance, rows_per_block: int = 2048):
        self.cosine, self.rows = distance.normalized, rows_per_block

    def __call__(self, query: torch.Tensor, k: int, reference: torch.Tensor, ref_includes_query: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cosine:
            query, reference = torch.nn.functional.normalize(query, dim=1), torch.nn.functional.normalize(reference, dim=1)
        ref_sq = (reference * reference).sum(1)
        k = min(k, len(reference) - (1 if ref_includes_query else 0))
        values, indices = [], []
        for start in range(0, len(query), self.rows):
            q = query[start : start + self.rows]
            sim = q @ reference.T if self.cosine else 2 * (q @ reference.T) - ref_sq - (q * q).sum(1, keepdim=True)
            if ref_includes_query:
                rows = torch.arange(len(q))
                sim[rows, rows + start] = -torch.inf
            v, i = torch.topk(sim, k, dim=1)
            values.append(v)
            indices.append(i)
        return torch.cat(values), torch.cat(indices)


def accuracy_calculator(distance: Distance, **options) -> AccuracyCalculator:
    """pytorch-metric-learning's calculator for P@1, R-Precision and MAP@R, with the block kNN.

    k="max_bin_count": these three metrics read only the first R neighbours (R = the query's class
    size), so searching further (the library's default k is every reference) changes no value and
    costs a full sort plus float64 tensors of N x N: 6.7 GB at 10,000 images, against 1.4 GB.
    """
    return AccuracyCalculator(include=RETRIEVAL, k="max_bin_count", knn_func=ChunkedKNN(distance), **options)


@dataclass(frozen=True)
class Scores:
    """Retrieval metrics of one embedding of a part: means, their 95% intervals, and the per-query values behind them."""

    metrics: dict[str, float]  # name, name_low, name_high for each of RETRIEVAL
    per_query: dict[str, np.ndarray]  # name -> float64 value of each scored query, aligned with `queries`
    queries: np.ndarray  # row numbers of the scored queries (images whose class has no other image are not scored)


def per_query_retrieval(embeddings: torch.Tensor, labels: torch.Tensor, distance: Distance) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """P@1, R-Precision and AP@R of each image querying all the others (pytorch-metric-learning's definitions).

    Their means are AccuracyCalculator's values (tests/trainer/test_evaluate.py checks it); computed from one
    exact kNN of the R nearest neighbours (R = the query's class size - 1), so the per-query values that the
    intervals and the paired comparisons need come at no extra search. Lone queries (R = 0) are left out, as
    the library does.
    """
    labels = labels.long()
    _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    relevant = counts[inverse] - 1  # R of each query
    keep = relevant > 0
    k = int(relevant.max()) if len(labels) else 0
    if k == 0:
        empty = np.zeros(0)
        return {name: empty for name in RETRIEVAL}, np.zeros(0, dtype=np.int64)
    _, neighbours = ChunkedKNN(distance)(embeddings, k, embeddings, True)
    hits = (labels[neighbours] == labels[:, None])[keep]  # (queries, k): neighbour j has the query's class
    r = relevant[keep]
    in_r = torch.arange(hits.shape[1])[None, :] < r[:, None]  # the first R neighbours
    hits_r = hits & in_r
    ranks = torch.arange(1, hits.shape[1] + 1, dtype=torch.float64)
    precision_at_hits = torch.cumsum(hits_r, dim=1).double() * hits_r / ranks
    values = {
        "precision_at_1": hits[:, 0].double(),
        "r_precision": hits_r.sum(1).double() / r,
        "mean_average_precision_at_r": precision_at_hits.sum(1) / r,
    }
    return {name: v.numpy() for name, v in values.items()}, torch.nonzero(keep).flatten().numpy()


def score(embeddings: torch.Tensor, labels: torch.Tensor, distance: Distance, seed: int) -> Scores:
    """Per-query values, their means and seeded 95% percentile-bootstrap intervals over the queries."""
    per_query, queries = per_query_retrieval(embeddings, labels, distance)
    table = np.stack([per_query[name] for name in RETRIEVAL], axis=1)
    low, high = bootstrap_interval(table, seed)
    metrics: dict[str, float] = {}
    for j, name in enumerate(RETRIEVAL):
        metrics[name] = float(table[:, j].mean()) if len(table) else float("nan")
        metrics[f"{name}_low"], metrics[f"{name}_high"] = float(low[j]), float(high[j])
    return Scores(metrics, per_query, queries)


def retrieval_metrics(embeddings: torch.Tensor, labels: torch.Tensor, distance: Distance) -> dict[str, float]:
    """P@1, R-Precision and MAP@R (pytorch-metric-learning's definitions), each image querying all the others."""
    per_query, _ = per_query_retrieval(embeddings, labels, distance)
    return {name: float(v.mean()) for name, v in per_query.items()}


@torch.inference_mode()
def batch_loss(
    model, loss_fn, miner, images: torch.Tensor | Rows, labels: torch.Tensor, batches: list[np.ndarray], device: torch.device
) -> float | None:
    """Mean loss over fixed validation batches (model in eval mode: no batch-norm updates)."""
    if not batches:
        return None
    was_training = model.training
    model.eval()
    total = 0.0
    for rows in batches:
        rows_t = torch.as_tensor(rows)
        emb = model(images[rows_t].to(device, non_blocking=True)).float()
        y = labels[rows_t].to(device)
        total += float(loss_fn(emb, y, miner(emb, y)) if miner else loss_fn(emb, y))
    model.train(was_training)
    return total / len(batches)
