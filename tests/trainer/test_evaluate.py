"""The fast kNN gives pytorch-metric-learning's metric values."""

from __future__ import annotations

import numpy as np
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

from app.distance import Distance
from trainer.evaluate import RETRIEVAL, ChunkedKNN, retrieval_metrics


def data(normalize: bool):
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 7, (700,), generator=g)
    e = torch.randn(700, 16, generator=g) + torch.nn.functional.one_hot(labels, 16) * 2
    return (torch.nn.functional.normalize(e, dim=1) if normalize else e), labels


def test_same_values_as_the_library_defaults():
    for normalize in (True, False):
        e, labels = data(normalize)
        ours = retrieval_metrics(e, labels, Distance("l2", normalized=normalize))
        reference = AccuracyCalculator(include=RETRIEVAL).get_accuracy(e, labels)
        for k in RETRIEVAL:
            assert abs(ours[k] - reference[k]) < 1e-6, (normalize, k)


def test_knn_excludes_the_query_and_is_sorted():
    e, _ = data(True)
    sims, idx = ChunkedKNN(Distance("cosine_similarity", normalized=True), rows_per_block=64)(e, 5, e, True)
    assert not (idx == torch.arange(len(e))[:, None]).any()
    assert torch.all(sims[:, :-1] >= sims[:, 1:])
    brute = (e @ e.T).fill_diagonal_(-2).topk(5).indices
    assert torch.equal(idx, brute)


def test_per_query_values_average_to_the_library_values_with_uneven_and_lone_classes():
    from trainer.evaluate import per_query_retrieval, score

    g = torch.Generator().manual_seed(1)
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate([3, 40, 17, 1, 90, 2])])  # class 3 has a lone image
    e = torch.randn(len(labels), 8, generator=g) + torch.nn.functional.one_hot(labels, 8) * 1.5
    for normalize in (True, False):
        x = torch.nn.functional.normalize(e, dim=1) if normalize else e
        per_query, queries = per_query_retrieval(x, labels, Distance("l2", normalized=normalize))
        assert len(queries) == len(labels) - 1 and 3 not in labels[queries].tolist()
        reference = AccuracyCalculator(include=RETRIEVAL).get_accuracy(x, labels)
        scores = score(x, labels, Distance("l2", normalized=normalize), seed=0)
        for k in RETRIEVAL:
            assert abs(per_query[k].mean() - reference[k]) < 1e-9, (normalize, k)
            assert scores.metrics[f"{k}_low"] <= scores.metrics[k] <= scores.metrics[f"{k}_high"]
            assert np.all((per_query[k] >= 0) & (per_query[k] <= 1))
