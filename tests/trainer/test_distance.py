"""One distance per job: evaluation, histograms, the explorer's table and the neighbour index all
rank as the loss object's own distance does, for every loss with and without `normalize`."""

from __future__ import annotations

import itertools
import typing

import numpy as np
import pytest
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN

from app.distance import job_distance
from app.explorer.neighbors import NeighborIndex
from app.spec import JobSpec, Loss
from trainer.diagnostics import loss_distance, pair_matrix
from trainer.evaluate import RETRIEVAL, ChunkedKNN, retrieval_metrics
from trainer.losses import build_loss
from trainer.project import per_class_metrics

CASES = list(itertools.product(typing.get_args(Loss), (True, False)))


def net_output(normalize: bool, n: int = 120, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Clustered embeddings whose norms vary 50-fold (as a net without normalisation may give), or the net's normalised ones."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(6).repeat_interleave(n // 6)
    e = torch.randn(n, 8, generator=g) + torch.nn.functional.one_hot(labels, 8) * 1.5
    e = e * torch.empty(n, 1).uniform_(0.2, 10, generator=g)
    return (torch.nn.functional.normalize(e, dim=1) if normalize else e), labels


def loss_of(loss: str, normalize: bool):
    spec = JobSpec(dataset="digits", loss=loss, normalize=normalize, miner="none")
    return spec, build_loss(spec)[0]


def in_loss_order(matrix: torch.Tensor, row: int, order: np.ndarray, similarity: bool) -> bool:
    """Whether `order` (other rows, nearest first) is sorted by the loss's own values, up to float noise."""
    values = matrix[row, torch.as_tensor(order)].double()
    steps = values[1:] - values[:-1]
    return bool((steps >= -1e-5).all()) if not similarity else bool((steps <= 1e-5).all())


@pytest.mark.parametrize("loss,normalize", CASES)
def test_the_jobs_distance_is_the_one_its_loss_object_measures_with(loss, normalize):
    spec, loss_fn = loss_of(loss, normalize)
    distance = job_distance(spec)
    assert loss_distance(loss_fn, normalize) == distance
    emb, _ = net_output(normalize)
    mat = loss_fn.distance(emb)
    assert torch.allclose(pair_matrix(emb, distance), mat, atol=1e-4)  # histograms and hardness read these values


@pytest.mark.parametrize("loss,normalize", CASES)
def test_evaluation_table_and_neighbours_rank_as_the_loss_does(loss, normalize):
    spec, loss_fn = loss_of(loss, normalize)
    distance = job_distance(spec)
    emb, labels = net_output(normalize)
    mat = loss_fn.distance(emb)
    n = len(emb)

    # Evaluation's kNN: every image's full ranking of the others.
    _, ranked = ChunkedKNN(distance, rows_per_block=32)(emb, n - 1, emb, True)
    assert all(in_loss_order(mat, r, ranked[r].numpy(), loss_fn.distance.is_inverted) for r in range(n))
    # The explorer's neighbour index.
    index = NeighborIndex.build(emb.numpy(), distance.space)
    for r in range(0, n, 7):
        rows, _ = index.neighbors_of_row(r, n - 1)
        assert len(rows) == n - 1 and in_loss_order(mat, r, rows, loss_fn.distance.is_inverted)

    # Metric values: the same as pytorch-metric-learning's calculator searching with the loss's distance object.
    reference = AccuracyCalculator(include=RETRIEVAL, k="max_bin_count", knn_func=CustomKNN(loss_fn.distance))
    ours = retrieval_metrics(emb, labels, distance)
    theirs = reference.get_accuracy(emb, labels)
    for name in RETRIEVAL:
        assert abs(ours[name] - theirs[name]) < 1e-6, name
    table = per_class_metrics(emb.numpy(), labels.numpy(), distance)
    per_class = AccuracyCalculator(
        include=RETRIEVAL, k="max_bin_count", knn_func=CustomKNN(loss_fn.distance), return_per_class=True
    ).get_accuracy(emb, labels)
    for name in RETRIEVAL:
        assert np.allclose([row[name] for row in table], per_class[name], atol=1e-6), name


def test_raw_l2_would_rank_these_embeddings_differently():
    """The check above can fail: on unnormalised embeddings raw L2 ranks otherwise than every loss here."""
    emb, _ = net_output(False)
    raw = torch.cdist(emb, emb).fill_diagonal_(torch.inf).argsort(1)[:, :-1]
    _, loss_fn = loss_of("triplet", False)
    mat = loss_fn.distance(emb)
    assert not all(in_loss_order(mat, r, raw[r].numpy(), False) for r in range(len(emb)))


def test_a_circle_job_without_normalisation_is_evaluated_in_cosine_similarity(settings, engine):
    """End to end: the stored validation MAP@R is the one the loss's distance gives on the stored embeddings."""
    import json

    from pytorch_metric_learning.losses import CircleLoss

    from app.files import DISTANCES_FILE, EMBEDDINGS_FILE
    from app.store import jobs
    from trainer.worker import Worker

    spec = JobSpec(
        dataset="digits",
        loss="circle",
        normalize=False,
        miner="none",
        steps=10,
        eval_every=10,
        classes_per_batch=4,
        samples_per_class=8,
        explorer=False,
    )
    created = jobs.submit(engine, spec)
    Worker(settings, threads=1).run(max_jobs=1, exit_when_idle=True)
    done = jobs.get(engine, created.id)
    assert done.status == "succeeded", done.error
    job_dir = settings.job_dir(created.id)
    with np.load(job_dir / EMBEDDINGS_FILE, allow_pickle=False) as z:
        stored = {k: z[k] for k in z.files}
    assert not np.allclose(np.linalg.norm(stored["embeddings"], axis=1), 1, atol=1e-3)  # really unnormalised
    reference = AccuracyCalculator(include=RETRIEVAL, k="max_bin_count", knn_func=CustomKNN(CircleLoss().distance)).get_accuracy(
        torch.from_numpy(stored["embeddings"]), torch.from_numpy(stored["labels"])
    )
    best = done.summary["best"]["metrics"]  # the stored embeddings are the best checkpoint's
    assert abs(best["mean_average_precision_at_r"] - reference["mean_average_precision_at_r"]) < 1e-6
    assert json.loads((job_dir / DISTANCES_FILE).read_text())["kind"] == "cosine_similarity"
