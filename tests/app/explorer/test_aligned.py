"""app.explorer.aligned without training: which jobs compare, lining rows up by dataset index, the sample, a failed fit."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np
import pytest

from app.config import Settings
from app.explorer import aligned
from app.files import EMBEDDINGS_FILE
from app.store.rows import JobRow


def job_row(job_id: int, status: str = "succeeded", **spec) -> JobRow:
    spec = {"dataset": "digits", "dataset_path": None, "loss": "triplet", "normalize": True, **spec}
    now = datetime.now(UTC)
    return JobRow(
        id=job_id,
        name=f"job {job_id}",
        owner="local",
        sweep_id=1,
        spec=spec,
        dataset=spec["dataset"],
        loss=spec["loss"],
        margin=0.2,
        device="auto",
        devices=1,
        priority=0,
        status=status,
        attempts=1,
        max_attempts=3,
        not_before=None,
        lease_token=None,
        lease_expires_at=None,
        worker_id=None,
        run_device="cpu",
        cancel_requested=False,
        step=10,
        total_steps=10,
        steps_per_second=None,
        phase=None,
        summary={},
        error=None,
        search_id=None,
        trial_number=None,
        created_at=now,
        started_at=now,
        finished_at=now,
        updated_at=now,
    )


def store(settings: Settings, job_id: int, content: bytes | range = range(3)) -> None:
    path = settings.job_dir(job_id) / EMBEDDINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        n = len(content)
        np.savez(path, embeddings=np.ones((n, 2), np.float32), labels=np.zeros(n, np.int64), indices=np.array(content))


def test_comparable_jobs_and_why_not(settings: Settings):
    for job_id in (1, 2, 4):
        store(settings, job_id)
    rows = [job_row(1), job_row(2, normalize=False), job_row(3), job_row(4, loss="circle", normalize=False), job_row(5, "running")]
    found = aligned.comparison(rows, settings)
    assert [j.id for j in found.jobs] == [1, 2, 4] and found.skipped == [3]  # 3 succeeded but stored nothing
    # each job's own distance: pytorch-metric-learning's triplet loss measures L2 between normalised
    # embeddings even when the net does not normalise them, so job 2 is laid out on the unit sphere too
    assert [j.space for j in found.jobs] == ["cosine", "cosine", "cosine"]
    assert found.dataset == {"dataset": "digits", "dataset_path": None}

    with pytest.raises(aligned.NotComparable, match="at least 2 succeeded jobs.*1 of 3 jobs"):
        aligned.comparison([job_row(1), job_row(5, "running"), job_row(6, "failed")], settings)
    with pytest.raises(aligned.NotComparable, match="different datasets"):
        aligned.comparison([job_row(1), job_row(2, dataset="mnist5k")], settings)


def test_rows_line_up_by_dataset_index():
    a = np.array([10, 11, 12, 13, 14, 15])
    b = np.array([15, 13, 11, 10, 12, 99, 14])  # another order, and an image the other job lacks
    keep, common = aligned.common_sample([a, b], size=100)
    assert keep.tolist() == [10, 11, 12, 13, 14, 15] and common == 6
    assert b[aligned.rows_of(b, keep)].tolist() == keep.tolist()
    small, _ = aligned.common_sample([a, b], size=3)
    assert len(small) == 3 and small.tolist() == sorted(small.tolist())
    assert small.tolist() == aligned.common_sample([a, b], size=3)[0].tolist()  # seeded


def test_points_per_job_keeps_the_sweep_bounded():
    assert aligned.points_per_job(2) == aligned.MAX_POINTS
    assert aligned.points_per_job(8) * 8 <= aligned.TOTAL_POINTS
    assert aligned.points_per_job(200) == aligned.MIN_POINTS


@pytest.mark.parametrize(
    "second, status, reason",
    [
        (b"not an npz file", 500, "the aligned layout failed: ValueError"),
        (range(100, 103), 409, "the jobs share only 0 validation images"),
    ],
)
def test_a_failed_fit_is_reported_once_then_tried_again(settings: Settings, second, status, reason):
    store(settings, 1)
    store(settings, 2, second)
    rows = [job_row(1), job_row(2)]

    def outcome() -> aligned.LayoutFailed | None:
        try:
            payload, _ = aligned.layouts(settings, 7, rows)
        except aligned.LayoutFailed as e:
            return e
        assert payload is None
        return None

    assert outcome() is None  # started
    deadline = time.monotonic() + 60
    while (failure := outcome()) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert failure is not None and failure.status == status and failure.args[0].startswith(reason)
    assert outcome() is None  # reported once: this call starts a new fit


def turned(xy: np.ndarray, degrees: float, scale: float, shift: tuple[float, float], mirror: bool = False) -> np.ndarray:
    t = np.radians(degrees)
    rotation = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    if mirror:
        rotation = rotation @ np.diag([1.0, -1.0])
    return (xy @ rotation) * scale + np.array(shift)


@pytest.mark.parametrize("mirror", [False, True])
def test_procrustes_turns_a_rotated_scaled_shifted_layout_back_onto_the_first(mirror):
    rng = np.random.default_rng(4)
    a = rng.normal(size=(500, 2)) * [5, 2]  # anisotropic: a rotation is identifiable
    b = turned(a, 37, 2.5, (10, -3), mirror)
    turn = aligned.procrustes(b, a)
    np.testing.assert_allclose(turn.apply(b), a, atol=1e-4)
    assert turn.scale == pytest.approx(1 / 2.5) and turn.mirrored == mirror and turn.residual < 1e-6
    if not mirror:
        assert turn.degrees == pytest.approx(-37)


def test_procrustes_residual_says_how_far_apart_the_pictures_stay():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(2000, 2))
    noisy = aligned.procrustes(turned(a, 80, 3, (1, 1)) + rng.normal(scale=0.3, size=a.shape), a)
    unrelated = aligned.procrustes(rng.normal(size=a.shape), a)
    assert 0.08 < noisy.residual < 0.12  # noise 0.3 in B is 0.1 a coordinate in A (scale 3): RMS 0.14 over a spread of 1.41
    assert unrelated.residual > 0.95  # the best scale for unrelated points is about 0: B shrinks to A's centre
    # ... but B is drawn at A's spread, a picture beside A's rather than a dot at its centre.
    b = rng.normal(size=a.shape) * 7
    drawn = aligned.procrustes(b, a).apply(b)
    assert np.sqrt(((drawn - drawn.mean(axis=0)) ** 2).sum(axis=1).mean()) == pytest.approx(
        np.sqrt(((a - a.mean(axis=0)) ** 2).sum(axis=1).mean())
    )
    assert aligned.procrustes(np.zeros_like(a), a).residual == 1.0  # B all at one point: nothing to fit


def test_pair_sample_holds_the_most_changed_and_a_seeded_rest():
    change = np.random.default_rng(6).random(10_000).astype(np.float32)
    drawn = aligned.pair_sample(change, size=300, most=100)
    assert len(drawn) == 300 and drawn.tolist() == sorted(set(drawn.tolist()))
    assert set(np.argsort(-change, kind="stable")[:100]) <= set(drawn.tolist())
    assert drawn.tolist() == aligned.pair_sample(change, size=300, most=100).tolist()
    assert aligned.pair_sample(change[:50], size=300, most=100).tolist() == list(range(50))
