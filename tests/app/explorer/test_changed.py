"""Neighbourhood change between two embeddings of the same items, against brute force; items matched by index."""

from __future__ import annotations

import numpy as np
import pytest

from app.explorer import changed
from app.explorer.embeddings import JobEmbedding


def embedding(X: np.ndarray, indices: np.ndarray, space: str = "euclidean") -> JobEmbedding:
    n = len(X)
    return JobEmbedding(
        embeddings=X.astype(np.float32),
        labels=np.zeros(n, np.int64),
        indices=indices.astype(np.int64),
        split=np.zeros(n, np.int8),
        xy=np.zeros((n, 2), np.float32),
        fitted=np.ones(n, bool),
        nn_same_label=np.ones(n, bool),
        meta={"space": space, "class_names": ["all"]},
    )


def brute_knn(X: np.ndarray, k: int) -> list[set[int]]:
    d = np.linalg.norm(X[:, None] - X[None], axis=2)
    np.fill_diagonal(d, np.inf)
    return [set(np.argsort(row, kind="stable")[:k].tolist()) for row in d]


def test_changes_match_brute_force_jaccard_over_the_shared_items():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 6))
    Y = X + rng.normal(scale=0.05, size=X.shape)  # nearly the same space...
    Y[:5] = rng.normal(size=(5, 6)) * 4  # ...but five items moved far away
    ids = np.arange(5000, 5300)
    # b holds the items in another order, plus items a lacks; a holds some b lacks
    order = rng.permutation(300)[:280]
    b_ids = np.concatenate([ids[order], np.arange(9000, 9020)])
    b_X = np.concatenate([Y[order], rng.normal(size=(20, 6))])
    a_keep = np.sort(rng.permutation(300)[:290])
    got = changed.changes(embedding(X[a_keep], ids[a_keep]), embedding(b_X, b_ids), k=8)

    shared = np.intersect1d(ids[a_keep], b_ids)
    assert got.indices.tolist() == shared.tolist()
    items = shared - 5000
    na, nb = brute_knn(X[items], 8), brute_knn(Y[items], 8)
    expected = [1 - len(p & q) / len(p | q) for p, q in zip(na, nb)]
    np.testing.assert_allclose(got.change, expected, atol=1e-6)
    moved = np.isin(items, np.arange(5))
    assert got.change[moved].min() > np.quantile(got.change[~moved], 0.99)  # the moved items lead the list


def test_the_same_embedding_changes_nothing_and_too_few_shared_is_refused():
    X = np.random.default_rng(0).normal(size=(50, 4))
    e = embedding(X, np.arange(50), "cosine")
    got = changed.changes(e, embedding(X, np.arange(50), "cosine"), k=5)
    assert (got.change == 0).all()
    with pytest.raises(changed.TooFewShared, match="share 3 items"):
        changed.changes(e, embedding(X[:3], np.arange(3)), k=5)


def test_a_rare_change_missing_from_a_selection_is_no_evidence():
    # 5 of 300,000 items changed, none of them among 30,000 selected: what a random selection gives (about 0.5 expected).
    change = np.zeros(300_000, np.float32)
    change[[40_000, 90_000, 150_000, 220_000, 299_999]] = 0.9
    inside = np.zeros(len(change), bool)
    inside[:30_000] = True
    s = changed.selection_change(change, inside)
    assert s["difference"] < 0 and s["verdict"].startswith("within noise")
    # Three of the five inside (0.5 expected; a hypergeometric p of about 0.009): evidence.
    change[[1, 2, 3]], change[[40_000, 90_000, 150_000]] = 0.9, 0.0
    assert changed.selection_change(change, inside)["verdict"].startswith("changed more")


def test_a_selection_of_everything_has_nothing_to_compare_with():
    s = changed.selection_change(np.linspace(0, 1, 50, dtype=np.float32), np.ones(50, bool))
    assert s["rest"] is None and s["difference"] is None and "every shared item" in s["verdict"]


def test_random_selections_read_as_evidence_about_one_time_in_twenty():
    # What the band promises: of selections drawn at random, about 5% fall outside it (a skewed, discrete change).
    rng = np.random.default_rng(1)
    change = (1 - rng.binomial(10, 0.15, 3000) / 10).astype(np.float32)
    outside = 0
    for _ in range(300):
        inside = np.zeros(len(change), bool)
        inside[rng.choice(len(change), 40, replace=False)] = True
        outside += not changed.selection_change(change, inside)["verdict"].startswith("within noise")
    assert 0.02 <= outside / 300 <= 0.09
