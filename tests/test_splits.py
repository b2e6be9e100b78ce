"""Splits: val drawn from train with the TEST label distribution (paper §IV-B), subject-disjoint, seeded."""

import numpy as np
import pytest

from palbench.data.splits import draw_validation, split_stratified
from palbench.errors import ConfigError, DataError


def _labels(counts, rng=None):
    y = np.repeat(np.arange(len(counts)), counts)
    return y if rng is None else rng.permutation(y)


def _dist(y, k=7):
    return np.bincount(y, minlength=k) / len(y)


TRAIN_COUNTS = [300, 60, 120, 900, 400, 150, 600]  # imbalanced like RAF-DB train
TEST_COUNTS = [50, 50, 50, 50, 50, 50, 50]  # balanced like AffectNet's validation set


def test_val_matches_test_distribution_not_train():
    rng = np.random.default_rng(1)
    train, test = _labels(TRAIN_COUNTS, rng), _labels([30, 10, 20, 100, 40, 25, 75], rng)
    mask, desc = draw_validation(train, test, 0.1, seed=3)
    assert mask.dtype == bool and mask.shape == train.shape
    n_val = round(0.1 * len(train))
    assert mask.sum() == n_val
    # exact per-class counts: largest-remainder rounding of n_val * p_test
    assert np.abs(_dist(train[mask]) - _dist(test)).max() <= 1 / n_val + 1e-12
    assert np.abs(_dist(train[mask]) - _dist(test)).sum() < np.abs(_dist(train) - _dist(test)).sum() / 5
    assert "stratified to the test label distribution" in desc and "seed 3" in desc


def test_val_shrinks_to_keep_test_proportions_when_a_train_class_is_rare():
    train, test = _labels(TRAIN_COUNTS), _labels(TEST_COUNTS)
    mask, desc = draw_validation(train, test, 0.2, seed=0)  # 506 asked; fear has only 60 in train
    counts = np.bincount(train[mask], minlength=7)
    assert counts.tolist() == [30] * 7  # cap = half of 60; balanced like test
    assert "shrunk" in desc
    assert (np.bincount(train[~mask], minlength=7) >= np.array(TRAIN_COUNTS) // 2).all()


def test_val_is_seeded():
    rng = np.random.default_rng(0)
    train, test = _labels(TRAIN_COUNTS, rng), _labels(TEST_COUNTS)
    a, _ = draw_validation(train, test, 0.1, seed=5)
    b, _ = draw_validation(train, test, 0.1, seed=5)
    c, _ = draw_validation(train, test, 0.1, seed=6)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_val_with_subjects_takes_whole_subjects():
    rng = np.random.default_rng(2)
    n_subjects = 120
    subjects = rng.integers(0, n_subjects, size=2000)
    # each subject leans towards one class so that the choice of subjects matters
    lean = rng.integers(0, 7, size=n_subjects)
    train = np.where(rng.random(2000) < 0.6, lean[subjects], rng.integers(0, 7, size=2000))
    test = _labels(TEST_COUNTS)
    mask, desc = draw_validation(train, test, 0.15, seed=0, subjects=subjects.astype(str))
    assert set(subjects[mask]).isdisjoint(subjects[~mask])
    assert abs(mask.sum() - 300) <= 60
    assert np.abs(_dist(train[mask]) - _dist(test)).sum() < 0.15
    assert "whole subjects" in desc
    again, _ = draw_validation(train, test, 0.15, seed=0, subjects=subjects.astype(str))
    assert np.array_equal(mask, again)


def test_val_bad_inputs():
    with pytest.raises(ConfigError, match="fraction"):
        draw_validation([0, 1, 2], [0, 1], 1.5, seed=0)
    with pytest.raises(DataError, match="test split is empty"):
        draw_validation([0, 1, 2], [], 0.1, seed=0)
    with pytest.raises(DataError, match="too few"):
        draw_validation([0, 1], [0, 1], 0.1, seed=0)


def test_split_stratified_without_subjects_is_exact_per_class():
    rng = np.random.default_rng(0)
    y = _labels([100, 40, 20, 200, 80, 60, 1], rng)
    splits, desc = split_stratified(y, (0.7, 0.15, 0.15), seed=1)
    assert set(splits) == {"train", "val", "test"}
    for k, n in enumerate([100, 40, 20, 200, 80, 60, 1]):
        got = [int(((y == k) & (splits == s)).sum()) for s in ("train", "val", "test")]
        assert sum(got) == n
        assert all(abs(g - f * n) < 1 for g, f in zip(got, (0.7, 0.15, 0.15)))
    same, _ = split_stratified(y, (0.7, 0.15, 0.15), seed=1)
    other, _ = split_stratified(y, (0.7, 0.15, 0.15), seed=2)
    assert (same == splits).all() and not (other == splits).all()
    assert "0.7/0.15/0.15" in desc


def test_split_stratified_with_subjects_is_disjoint_and_balanced():
    rng = np.random.default_rng(4)
    subjects = np.repeat(np.arange(60), 20)  # 60 people x 20 images, all classes per person
    y = rng.integers(0, 7, size=subjects.size)
    splits, _ = split_stratified(y, (0.8, 0.1, 0.1), seed=0, subjects=subjects)
    owners = {s: set(splits[subjects == s]) for s in np.unique(subjects)}
    assert all(len(v) == 1 for v in owners.values())
    sizes = {s: int((splits == s).sum()) for s in ("train", "val", "test")}
    assert sizes["val"] in (100, 120, 140) and sizes["test"] in (100, 120, 140)  # whole subjects of 20
    for s in ("val", "test"):
        assert np.abs(_dist(y[splits == s]) - _dist(y)).sum() < 0.25


def test_split_stratified_bad_fractions():
    with pytest.raises(ConfigError, match="fractions"):
        split_stratified([0, 1], (0.5, 0.6, 0.1), seed=0)
    with pytest.raises(ConfigError, match="fractions"):
        split_stratified([0, 1], (0.5, 0.5), seed=0)
