"""Embeddings and retrieval metrics of the validation split."""
from __future__ import annotations

import numpy as np
import torch
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN

from trainer.data import to_float

RETRIEVAL = ("precision_at_1", "r_precision", "mean_average_precision_at_r")


@torch.inference_mode()
def embed(model: torch.nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 1024) -> torch.Tensor:
    was_training = model.training
    model.eval()
    out = torch.cat([model(to_float(images[i:i + batch_size], device)).float().cpu() for i in range(0, len(images), batch_size)])
    model.train(was_training)
    return out


def retrieval_metrics(embeddings: torch.Tensor, labels: torch.Tensor, normalized: bool) -> dict[str, float]:
    """P@1, R-Precision and MAP@R, each image querying all the others (query set = reference set)."""
    knn = CustomKNN(CosineSimilarity()) if normalized else None
    calc = AccuracyCalculator(include=RETRIEVAL, **({"knn_func": knn} if knn else {}))
    return {k: float(v) for k, v in calc.get_accuracy(embeddings, labels).items()}


@torch.inference_mode()
def batch_loss(model, loss_fn, miner, images: torch.Tensor, labels: torch.Tensor, batches: list[np.ndarray], device: torch.device) -> float | None:
    """Mean loss over fixed validation batches (model in eval mode: no batch-norm updates)."""
    if not batches:
        return None
    was_training = model.training
    model.eval()
    total = 0.0
    for rows in batches:
        rows_t = torch.as_tensor(rows)
        emb = model(to_float(images[rows_t], device)).float()
        y = labels[rows_t].to(device)
        total += float(loss_fn(emb, y, miner(emb, y)) if miner else loss_fn(emb, y))
    model.train(was_training)
    return total / len(batches)
