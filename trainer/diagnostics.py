"""What the margin does to a batch and to the validation set.

Triplet hardness uses FaceNet's definitions with the loss's distance: easy d(a,n) >= d(a,p) + m,
semi-hard d(a,p) < d(a,n) < d(a,p) + m, hard d(a,n) <= d(a,p). For pair losses, the fraction
of active pairs (those the loss still pushes on). Distance histograms of positive and negative
validation pairs show where the margin sits against the data.
"""
from __future__ import annotations

import numpy as np
import torch

from app.spec import COSINE_LOSSES

# The distance each loss measures with, as pytorch-metric-learning defaults it:
# L2 on normalised embeddings, or cosine similarity (COSINE_LOSSES; higher = closer).
HIST_BINS = 60
MAX_HIST_POINTS = 4000  # above this, pairs come from a fixed random subset of the validation set


def distance_kind(loss: str) -> str:
    return "cosine_similarity" if loss in COSINE_LOSSES else "l2"


def pair_matrix(emb: torch.Tensor, kind: str) -> torch.Tensor:
    e = torch.nn.functional.normalize(emb.float(), dim=1)
    sim = e @ e.T
    return sim if kind == "cosine_similarity" else (2 - 2 * sim).clamp_min(0).sqrt()


@torch.no_grad()
def triplet_hardness(emb: torch.Tensor, labels: torch.Tensor, margin: float, kind: str = "l2") -> dict[str, float]:
    """Fractions of easy, semi-hard and hard among all (a, p, n) triplets of the batch."""
    d = pair_matrix(emb, kind)
    if kind == "cosine_similarity":
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
def active_pairs(emb: torch.Tensor, labels: torch.Tensor, loss: str, margin: float, pos_margin: float = 0.0) -> float | None:
    """Fraction of pairs a pair loss still pushes on (contrastive and circle); None for other losses."""
    same = labels[:, None] == labels[None, :]
    off_diag = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos, neg = same & off_diag, ~same
    if loss == "contrastive":
        d = pair_matrix(emb, "l2")
        active = (pos & (d > pos_margin)) | (neg & (d < margin))
    elif loss == "circle":
        s = pair_matrix(emb, "cosine_similarity")
        active = (pos & (s < 1 - margin)) | (neg & (s > margin))  # not yet past the decision margins Δp, Δn
    else:
        return None
    return float(active.sum()) / float((pos | neg).sum())


def distance_histograms(emb: torch.Tensor, labels: torch.Tensor, kind: str, seed: int = 0) -> dict:
    """Histograms (same bins) of positive-pair and negative-pair values, and their overlap in [0, 1]."""
    if len(labels) > MAX_HIST_POINTS:
        keep = torch.as_tensor(np.random.default_rng(seed).choice(len(labels), MAX_HIST_POINTS, replace=False))
        emb, labels = emb[keep], labels[keep]
    d = pair_matrix(emb, kind)
    upper = torch.triu(torch.ones_like(d, dtype=torch.bool), diagonal=1)
    same = labels[:, None] == labels[None, :]
    pos, neg = d[upper & same].numpy(), d[upper & ~same].numpy()
    edges = np.linspace(-1.0, 1.0, HIST_BINS + 1) if kind == "cosine_similarity" else np.linspace(0.0, 2.0, HIST_BINS + 1)
    pos_counts, _ = np.histogram(pos, edges)
    neg_counts, _ = np.histogram(neg, edges)
    overlap = float(np.minimum(pos_counts / max(1, pos_counts.sum()), neg_counts / max(1, neg_counts.sum())).sum())
    return {
        "kind": kind, "edges": edges.tolist(), "positive": pos_counts.tolist(), "negative": neg_counts.tolist(), "overlap": overlap,
        "positive_median": float(np.median(pos)) if len(pos) else None, "negative_median": float(np.median(neg)) if len(neg) else None,
        "positive_p90": float(np.percentile(pos, 90)) if len(pos) else None,
    }
