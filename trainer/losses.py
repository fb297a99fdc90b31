"""Spec names -> pytorch-metric-learning losses and miners. Plain dicts, nothing clever."""

from __future__ import annotations

from collections.abc import Callable

import torch
from pytorch_metric_learning import losses, miners

from app.spec import JobSpec

LOSSES: dict[str, Callable[[JobSpec], losses.BaseMetricLossFunction]] = {
    "contrastive": lambda s: losses.ContrastiveLoss(**{"pos_margin": 0.0, **s.loss_params, "neg_margin": s.margin}),
    "triplet": lambda s: losses.TripletMarginLoss(margin=s.margin, **s.loss_params),
    "circle": lambda s: losses.CircleLoss(**{"gamma": 80, **s.loss_params, "m": s.margin}),
    "multisimilarity": lambda s: losses.MultiSimilarityLoss(**s.loss_params),
    "ntxent": lambda s: losses.NTXentLoss(**s.loss_params),
}

MINERS: dict[str, Callable[[JobSpec], miners.BaseMiner | None]] = {
    "none": lambda s: None,
    "semihard": lambda s: miners.TripletMarginMiner(margin=s.margin, type_of_triplets="semihard"),
    "hard": lambda s: miners.TripletMarginMiner(margin=s.margin, type_of_triplets="hard"),
    "all": lambda s: miners.TripletMarginMiner(margin=s.margin, type_of_triplets="all"),
    "multisimilarity": lambda s: miners.MultiSimilarityMiner(),
}


class UniquePairs:
    """A triplet miner's (a, p, n) as the unique (a, p) and (a, n) pairs they contain.

    NT-Xent contrasts every positive pair with every negative pair of its anchor in one float
    [positives x negatives] matrix. Fed triplets, pytorch-metric-learning turns each into one
    positive and one negative pair, repeats included: T triplets make T x T matrices (digits,
    5 x 16 batch, step 0: 49,705 of its 76,800 triplets are semi-hard, 9.2 GB per float matrix,
    17+ GB with the mask and products). Unique pairs are at most B(K-1) x B(B-K) (1,189 x 5,104
    there: 24 MB per matrix), and each pair counts once, as NT-Xent means.
    """

    def __init__(self, miner: miners.BaseMiner):
        self.miner = miner

    def __call__(self, embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        a, p, n = self.miner(embeddings, labels)
        pos = torch.unique(torch.stack([a, p]), dim=1)
        neg = torch.unique(torch.stack([a, n]), dim=1)
        return pos[0], pos[1], neg[0], neg[1]


def build_loss(spec: JobSpec) -> tuple[losses.BaseMetricLossFunction, miners.BaseMiner | UniquePairs | None]:
    miner = MINERS[spec.miner](spec)
    if spec.loss == "ntxent" and isinstance(miner, miners.TripletMarginMiner):
        miner = UniquePairs(miner)
    return LOSSES[spec.loss](spec), miner
