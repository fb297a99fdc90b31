"""Hardness fractions and distance histograms against direct computations."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from app.distance import Distance
from trainer.diagnostics import active_pairs, distance_histograms, triplet_hardness

L2, COSINE = Distance("l2", normalized=True), Distance("cosine_similarity", normalized=True)


def fixed_batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    emb = torch.nn.functional.normalize(torch.randn(24, 8, generator=g), dim=1)
    labels = torch.arange(6).repeat_interleave(4)
    return emb, labels


def test_triplet_hardness_matches_a_loop_over_all_triplets():
    emb, labels = fixed_batch()
    margin = 0.2
    d = torch.cdist(emb.double(), emb.double()).numpy()
    counts = {"easy": 0, "semihard": 0, "hard": 0}
    for a, p, n in itertools.permutations(range(len(labels)), 3):
        if labels[a] != labels[p] or labels[a] == labels[n]:
            continue
        dap, dan = d[a, p], d[a, n]
        counts["hard" if dan <= dap else "easy" if dan >= dap + margin else "semihard"] += 1
    total = sum(counts.values())
    got = triplet_hardness(emb, labels, margin, L2)
    for k, v in counts.items():
        assert abs(got[f"triplets_{k}"] - v / total) < 1e-6, k
    assert abs(sum(got.values()) - 1) < 1e-9


def test_bigger_margin_means_fewer_easy_triplets():
    emb, labels = fixed_batch(1)
    small, large = triplet_hardness(emb, labels, 0.05, L2), triplet_hardness(emb, labels, 1.5, L2)
    assert large["triplets_easy"] < small["triplets_easy"]
    assert large["triplets_hard"] == small["triplets_hard"]  # hard does not depend on the margin


def test_active_pairs_contrastive():
    emb, labels = fixed_batch(2)
    d = torch.cdist(emb.double(), emb.double()).numpy()
    n = len(labels)
    active = sum(
        (labels[i] == labels[j] and d[i, j] > 0.0) or (labels[i] != labels[j] and d[i, j] < 1.0)
        for i in range(n)
        for j in range(n)
        if i != j
    )
    assert abs(active_pairs(emb, labels, "contrastive", 1.0, L2) - active / (n * (n - 1))) < 1e-6
    assert active_pairs(emb, labels, "triplet", 1.0, L2) is None


def test_histograms_match_numpy():
    emb, labels = fixed_batch(3)
    h = distance_histograms(emb, labels, L2)
    d = torch.cdist(emb.double(), emb.double()).numpy()
    iu = np.triu_indices(len(labels), 1)
    same = (labels[:, None] == labels[None, :]).numpy()[iu]
    edges = np.linspace(0, 2, len(h["positive"]) + 1)
    assert h["positive"] == np.histogram(d[iu][same], edges)[0].tolist()
    assert h["negative"] == np.histogram(d[iu][~same], edges)[0].tolist()
    assert sum(h["positive"]) == 6 * 6 and sum(h["negative"]) == 276 - 36
    assert 0 <= h["overlap"] <= 1
    identical = distance_histograms(torch.ones(6, 4), torch.tensor([0, 0, 0, 1, 1, 1]), L2)
    assert identical["overlap"] == 1.0
    sim = distance_histograms(emb, labels, COSINE)
    assert sim["edges"][0] == -1.0 and sim["kind"] == "cosine_similarity"


def test_raw_l2_histograms_span_the_largest_distance():
    """Without normalisation distances are not bounded by 2: the bins reach the largest one, so no pair falls off the chart."""
    emb, labels = fixed_batch(4)
    emb = emb * torch.linspace(0.5, 6, len(labels))[:, None]
    h = distance_histograms(emb, labels, Distance("l2", normalized=False))
    d = torch.cdist(emb.double(), emb.double())
    assert abs(h["edges"][-1] - float(d.max())) < 1e-4 and h["edges"][-1] > 2
    assert sum(h["positive"]) + sum(h["negative"]) == len(labels) * (len(labels) - 1) // 2
