"""Spec names -> pytorch-metric-learning losses and miners. Plain dicts, nothing clever."""
from __future__ import annotations

from collections.abc import Callable

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


def build_loss(spec: JobSpec) -> tuple[losses.BaseMetricLossFunction, miners.BaseMiner | None]:
    return LOSSES[spec.loss](spec), MINERS[spec.miner](spec)
