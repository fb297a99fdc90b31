"""The train / validation / test split: class-disjoint or within classes, independent of the training seed, folds."""

from __future__ import annotations

import numpy as np
import pytest

from app.datasets import DatasetError, split_indices

LABELS = np.repeat(np.arange(10), 30)


def classes(rows: np.ndarray) -> set[int]:
    return set(LABELS[rows].tolist())


def test_the_default_class_split_of_ten_classes():
    parts = split_indices(LABELS, "classes", 0.3, 0.2, 0)
    assert classes(parts.train) == {0, 1, 2, 3, 4} and classes(parts.val) == {5, 6, 7} and classes(parts.test) == {8, 9}
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(LABELS)))  # every image in exactly one part


def test_the_sample_split_keeps_every_class_in_every_part_and_follows_only_split_seed():
    parts = split_indices(LABELS, "samples", 0.3, 0.2, 5)
    assert classes(parts.train) == classes(parts.val) == classes(parts.test) == set(range(10))
    assert [len(p) for p in parts] == [150, 90, 60]
    assert len(set(np.concatenate(parts).tolist())) == len(LABELS)
    again = split_indices(LABELS, "samples", 0.3, 0.2, 5)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    other = split_indices(LABELS, "samples", 0.3, 0.2, 6)
    assert not np.array_equal(parts.test, other.test)


@pytest.mark.parametrize("split", ["classes", "samples"])
def test_folds_rotate_validation_through_the_non_test_part_and_never_touch_test(split):
    plain = split_indices(LABELS, split, 0.3, 0.2, 0)
    folds = [split_indices(LABELS, split, 0.3, 0.2, 0, folds=4, fold=f) for f in range(4)]
    for f in folds:
        assert np.array_equal(f.test, plain.test)
        assert not set(f.val.tolist()) & set(f.train.tolist())
    validated = np.concatenate([f.val for f in folds])
    assert sorted(validated.tolist()) == sorted(np.concatenate([plain.train, plain.val]).tolist())  # each non-test image once
    if split == "classes":
        assert [classes(f.val) for f in folds] == [{0, 1}, {2, 3}, {4, 5}, {6, 7}]


@pytest.mark.parametrize(
    "args, field",
    [
        (("classes", 0.3, 0.1), "test_fraction"),
        (("classes", 0.1, 0.2), "val_fraction"),
        (("classes", 0.7, 0.2), "val_fraction"),
    ],
)
def test_a_part_with_fewer_than_two_classes_names_the_field(args, field):
    with pytest.raises(DatasetError) as refused:
        split_indices(LABELS, *args, 0)
    assert refused.value.field == field and "at least 2" in refused.value.reason


def test_too_many_folds_name_folds():
    with pytest.raises(DatasetError) as refused:
        split_indices(LABELS, "classes", 0.3, 0.2, 0, folds=5, fold=4)  # 8 non-test classes: folds of 2, 2, 2, 1, 1
    assert refused.value.field == "folds"


def test_no_test_part_when_test_fraction_is_zero():
    parts = split_indices(LABELS, "classes", 0.5, 0.0, 0)
    assert len(parts.test) == 0 and classes(parts.val) == {5, 6, 7, 8, 9}
