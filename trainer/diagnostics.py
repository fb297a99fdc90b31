"""What the margin does to a batch and to the validation set.

Everything is measured in the job's distance (app/distance.py), the one its loss optimises.
Triplet hardness uses FaceNet's definitions: easy d(a,n) >= d(a,p) + m,
semi-hard d(a,p) < d(a,n) < d(a,p) + m, hard d(a,n) <= d(a,p). For pair losses, the fraction
of active pairs (those the loss still pushes on). Distance histograms of positive and negative
validation pairs show where the margin sits against the data.
"""

from __future__ import annotations

import numpy as np
import torch
from pytorch_metric_learning.distances import BaseDistance, CosineSimilarity, LpDistance

from app.distance import Distance

HIST_BINS = 60
MAX_HIST_POINTS = 4000  # above this, pairs come from a fixed random subset of the validation set


def loss_distance(loss_fn: torch.nn.Module, net_normalizes: bool) -> Distance:
    """The Distance a pytorch-metric-learning loss object actually measures with (for checking app.distance)."""
    d: BaseDistance = loss_fn.distance
    normalized = net_normalizes or d.normalize_embeddings
    if isinstance(d, CosineSimilarity):
        return Distance("cosine_similarity", normalized)
    if isinstance(d, LpDistance) and d.p == 2 and d.power == 1:
        return Distance("l2", normalized)
    raise ValueError(f"no Distance for {d!r}")


def pair_matrix(emb: torch.Tensor, distance: Distance) -> torch.Tensor:
    """All pairwise values of the job's measure: L2 distances, or cosine similarities."""
    e = emb.float()
    if distance.normalized:
        e = torch.nn.functional.normalize(e, dim=1)
    if distance.similarity:
        return e @ e.T
    sq = (e * e).sum(1)
    return (sq[:, None] + sq[None, :] - 2 * (e @ e.T)).clamp_min(0).sqrt()


@torch.no_grad()
def triplet_hardness(emb: torch.Tensor, labels: torch.Tensor, margin: float, distance: Distance) -> dict[str, float]:
    """Fractions of easy, semi-hard and hard among all (a, p, n) triplets of the batch."""
    d = pair_matrix(emb, distance)
    if distance.similarity:
        d = 1 - d  # work in a distance: cosine distance
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos, neg = same & ~eye, ~same
    valid = pos[:, :, None] & neg[:, None, :]  # [a, p, n]
    total = int(valid.sum())
    if total == 0:
        return {}
    gap = d[:, None, :] - d[:, :, None]  # d(a,n) - d(a,p)
    hard = int((valid & (gap <= 0)).sum())
    easy = int((valid & (gap >= margin)).sum())
    return {"triplets_easy": easy / total, "triplets_semihard": (total - easy - hard) / total, "triplets_hard": hard / total}


@torch.no_grad()
def active_pairs(
    emb: torch.Tensor, labels: torch.Tensor, loss: str, margin: float, distance: Distance, pos_margin: float = 0.0
) -> float | None:
    """Fraction of pairs a pair loss still pushes on (contrastive and circle); None for other losses."""
    same = labels[:, None] == labels[None, :]
    off_diag = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos, neg = same & off_diag, ~same
    if loss == "contrastive" and not distance.similarity:
        d = pair_matrix(emb, distance)
        active = (pos & (d > pos_margin)) | (neg & (d < margin))
    elif loss == "circle" and distance.similarity:
        s = pair_matrix(emb, distance)
        active = (pos & (s < 1 - margin)) | (neg & (s > margin))  # not yet past the decision margins Δp, Δn
    else:
        return None
    return float(active.sum()) / float((pos | neg).sum())


def distance_histograms(emb: torch.Tensor, labels: torch.Tensor, distance: Distance, seed: int = 0) -> dict:
    """Histograms (same bins) of positive-pair and negative-pair values, and their overlap in [0, 1].

    Bins span the measure's range: [-1, 1] for cosine similarity, [0, 2] for L2 on the unit
    sphere, [0, the largest distance] for L2 on raw embeddings."""
    if len(labels) > MAX_HIST_POINTS:
        keep = torch.as_tensor(np.random.default_rng(seed).choice(len(labels), MAX_HIST_POINTS, replace=False))
        emb, labels = emb[keep], labels[keep]
    d = pair_matrix(emb, distance)
    upper = torch.triu(torch.ones_like(d, dtype=torch.bool), diagonal=1)
    same = labels[:, None] == labels[None, :]
    pos, neg = d[upper & same].numpy(), d[upper & ~same].numpy()
    low, high = (-1.0, 1.0) if distance.similarity else (0.0, 2.0 if distance.normalized else max(float(d.max()), 1e-6))
    edges = np.linspace(low, high, HIST_BINS + 1)
    pos_counts, _ = np.histogram(pos, edges)
    neg_counts, _ = np.histogram(neg, edges)
    overlap = float(np.minimum(pos_counts / max(1, pos_counts.sum()), neg_counts / max(1, neg_counts.sum())).sum())
    return {
        "kind": distance.measure,
        "edges": edges.tolist(),
        "positive": pos_counts.tolist(),
        "negative": neg_counts.tolist(),
        "overlap": overlap,
        "positive_median": float(np.median(pos)) if len(pos) else None,
        "negative_median": float(np.median(neg)) if len(neg) else None,
        "positive_p90": float(np.percentile(pos, 90)) if len(pos) else None,
    }
