"""A job's distance: what its loss measures between two embeddings, derived once from the spec.

Torch-free (the API, the advisor and the sweep layouts read it too). pytorch-metric-learning's
losses measure with their default distance object: LpDistance(p=2, normalize_embeddings=True)
for contrastive and triplet, CosineSimilarity (always on normalised embeddings) for circle,
multi-similarity and NT-Xent. Every loss thus sees normalised embeddings whatever `normalize`
says; `normalize` decides only whether the net's output (and so the stored embeddings) is
normalised. Evaluation, histograms, hardness, the explorer's layout, table and neighbours,
the sweep's aligned layouts and the advisor read this one value;
tests/trainer/test_distance.py checks it against the loss objects themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from app.spec import JobSpec

Measure = Literal["l2", "cosine_similarity"]  # the string distances.json stores as `kind`
Space = Literal["cosine", "euclidean"]  # the string projection.npz and layouts.json store, named as UMAP names them

# loss -> (what its default distance object measures, whether that object normalises embeddings first)
LOSS_DISTANCES: dict[str, tuple[Measure, bool]] = {
    "contrastive": ("l2", True),
    "triplet": ("l2", True),
    "circle": ("cosine_similarity", True),
    "multisimilarity": ("cosine_similarity", True),
    "ntxent": ("cosine_similarity", True),
}


@dataclass(frozen=True)
class Distance:
    measure: Measure
    normalized: bool  # embeddings are L2-normalised before measuring (by the net or by the loss)

    def __post_init__(self) -> None:
        if self.measure == "cosine_similarity" and not self.normalized:
            raise ValueError("cosine similarity is measured on normalised embeddings")

    @property
    def similarity(self) -> bool:
        """Higher is closer."""
        return self.measure == "cosine_similarity"

    @property
    def space(self) -> Space:
        """Where neighbours are searched and layouts fitted: on the unit sphere L2 and cosine similarity
        rank every neighbour alike, so cosine distance (1 - cos); otherwise L2 on the raw embeddings."""
        return "cosine" if self.normalized else "euclidean"


def job_distance(spec: JobSpec) -> Distance:
    measure, loss_normalizes = LOSS_DISTANCES[spec.loss]
    return Distance(measure, normalized=spec.normalize or loss_normalizes)
