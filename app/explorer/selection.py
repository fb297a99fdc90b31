"""What a selection of the explorer's points holds: its classes, how well they retrieve, its most central images.

P@1 here: a selected point counts as right when its nearest other point among all the explorer's points
(the job's full-space neighbour index, not the 2-D layout) has its label. Each point's nearest neighbour
is searched once per loaded job and kept, so a second selection over the same points costs a lookup.
"""

from __future__ import annotations

import csv
import io
import threading
import weakref
from typing import Any

import numpy as np

from app.explorer.embeddings import JobEmbedding, _spreadsheet_safe
from app.explorer.neighbors import prepare

CENTRAL = 8  # images nearest the selection's centre
SEARCH_BATCH = 4096

_state: dict[int, tuple[weakref.ref, np.ndarray]] = {}
_lock = threading.Lock()


class UnknownIndices(ValueError):
    def __init__(self, missing: np.ndarray) -> None:
        self.missing = missing
        super().__init__(
            f"{len(missing)} of the indices are not explorer points of this job (first: {', '.join(map(str, missing[:5].tolist()))})"
        )


def rows_of(data: JobEmbedding, indices: np.ndarray) -> np.ndarray:
    """Rows of the given dataset indices (duplicates dropped); every index must be a point of the explorer."""
    order = np.argsort(data.indices, kind="stable")
    wanted = np.unique(indices.astype(np.int64))
    pos = np.searchsorted(data.indices, wanted, sorter=order)
    pos = np.minimum(pos, len(order) - 1)
    rows = order[pos]
    found = data.indices[rows] == wanted
    if not found.all():
        raise UnknownIndices(wanted[~found])
    return np.sort(rows)


def nearest_rows(data: JobEmbedding, rows: np.ndarray) -> np.ndarray:
    """The nearest other row of each of `rows` in the full embedding space (-1 where the index found none)."""
    key = id(data)
    with _lock:
        hit = _state.get(key)
        if hit is None or hit[0]() is not data:
            for k in [k for k, (ref, _) in _state.items() if ref() is None]:
                del _state[k]
            hit = (weakref.ref(data), np.full(len(data), -2, dtype=np.int64))  # -2: not searched yet
            _state[key] = hit
        known = hit[1]
    todo = rows[known[rows] == -2]
    for start in range(0, len(todo), SEARCH_BATCH):
        batch = todo[start : start + SEARCH_BATCH]
        found, _ = data.index.search(data.index.vectors[batch], 2)
        # The point itself is left out by row (a duplicate vector may come first); else the first hit.
        first = np.where(found[:, 0] == batch, found[:, 1], found[:, 0])
        known[batch] = np.where(first >= 0, first, -1)
    return known[rows]


def summarize(data: JobEmbedding, rows: np.ndarray, central: int = CENTRAL) -> dict[str, Any]:
    """Count, per-class composition and P@1, and the selected points nearest the selection's centre (full space)."""
    labels = data.labels[rows]
    if data.one_split:  # then the stored nearest-neighbour flag is this P@1's (nearest among all points): no search
        right = data.nn_same_label[rows].astype(bool)
    else:
        nn = nearest_rows(data, rows)
        right = (nn >= 0) & (data.labels[np.maximum(nn, 0)] == labels)
    classes, counts = np.unique(labels, return_counts=True)
    per_class = []
    for label, count in zip(classes.tolist(), counts.tolist()):
        mine = labels == label
        per_class.append(
            {
                "label": label,
                "class_name": data.class_name(label),
                "count": count,
                "share": count / len(rows),
                "precision_at_1": float(right[mine].mean()),
            }
        )
    per_class.sort(key=lambda c: (-c["count"], c["label"]))
    vectors = prepare(data.embeddings[rows], data.meta["space"])
    centre = vectors.mean(axis=0)
    if data.meta["space"] == "cosine":
        centre = centre / max(float(np.linalg.norm(centre)), 1e-12)
        dist = 1.0 - vectors @ centre
    else:
        dist = np.linalg.norm(vectors - centre, axis=1)
    take = np.argsort(dist, kind="stable")[:central]
    return {
        "count": int(len(rows)),
        "precision_at_1": float(right.mean()),
        "per_class": per_class,
        "central": [{"row": int(rows[t]), "distance": float(dist[t])} for t in take],
    }


def selection_csv(data: JobEmbedding, rows: np.ndarray) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["index", "label", "class_name", "split"])
    for r in rows.tolist():
        label = int(data.labels[r])
        w.writerow([int(data.indices[r]), label, _spreadsheet_safe(data.class_name(label)), data.split_name(r)])
    return out.getvalue().encode()
