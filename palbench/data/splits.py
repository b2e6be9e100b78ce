"""Seeded, stratified, subject-disjoint train/val/test splits.

Paper §IV-B: the best model is kept by its accuracy "on a validation set sampled with the same label
distribution as the test set". :func:`draw_validation` draws that set from train; :func:`split_stratified`
splits a dataset that comes without splits. Both keep whole subjects together when subjects are known, so
no person is in two splits.

Why not scikit-learn: ``train_test_split(stratify=...)`` and ``StratifiedGroupKFold`` stratify every part
to the distribution of the data being split (here: train's own), not to a *given* target such as the
test distribution; ``train_test_split`` also refuses a class with a single member, and
``StratifiedGroupKFold`` offers only 1/k fractions and needs at least k subjects. The allocation below is
a few lines: exact per-class counts without subjects, a seeded greedy bin-filling with subjects.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from palbench.errors import ConfigError, DataError

#: Never move more than this share of a class's train images to val (see :func:`draw_validation`).
MAX_CLASS_FRACTION = 0.5


def check_fraction(fraction: float, option: str = "--val-fraction") -> float:
    """A val fraction in (0, 1); importers call this before any image work."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"{option}: {fraction} is not in (0, 1)")
    return float(fraction)


def check_fractions(fractions: Sequence[float], option: str = "--fractions") -> np.ndarray:
    """Three shares train, val, test, each >= 0, summing to 1; float ``[3]``."""
    fr = np.asarray(fractions, dtype=float)
    if fr.shape != (3,) or (fr < 0).any() or abs(fr.sum() - 1.0) > 1e-6:
        raise ConfigError(f"{option}: {list(fractions)} must be three shares train,val,test >= 0 summing to 1")
    return fr


def _round_preserving_sum(values: np.ndarray, total: int) -> np.ndarray:
    """Largest-remainder rounding of non-negative ``values`` ``[n]`` to ints summing to ``total``."""
    floor = np.floor(values).astype(np.int64)
    short = int(total - floor.sum())
    if short > 0:
        order = np.argsort(-(values - floor), kind="stable")
        floor[order[:short]] += 1
    return floor


def _class_counts(labels: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(labels, minlength=n_classes).astype(np.int64)


def _as_labels(labels: Sequence[int] | np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1 or (arr.size and (not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0)):
        raise DataError(f"{what}: expected a 1-D array of non-negative integer labels")
    return arr.astype(np.int64)


def _assign_groups(labels: np.ndarray, subjects: np.ndarray, targets: np.ndarray, rng: np.random.Generator):
    """Assign whole subjects to parts so each part's class counts approach ``targets`` ``[P, K]``.

    Subjects are visited largest first (random order among equal sizes, from ``rng``); each goes to the part
    where it lowers the L1 gap between the part's class counts and its target the most; ties go to the part
    with the largest share of its target still missing. Returns the part index per sample, int64 ``[N]``.
    """
    uniq, inverse = np.unique(subjects, return_inverse=True)
    n_classes = targets.shape[1]
    hist = np.zeros((len(uniq), n_classes), dtype=np.int64)
    np.add.at(hist, (inverse, labels), 1)
    order = rng.permutation(len(uniq))
    order = order[np.argsort(-hist[order].sum(axis=1), kind="stable")]
    deficit = targets.astype(np.int64).copy()
    target_total = np.maximum(targets.sum(axis=1), 1)
    part_of_group = np.empty(len(uniq), dtype=np.int64)
    for g in order:
        h = hist[g]
        gain = np.abs(deficit - h).sum(axis=1) - np.abs(deficit).sum(axis=1)  # lower is better
        missing = deficit.clip(min=0).sum(axis=1) / target_total
        p = int(np.lexsort((-missing, gain))[0])
        part_of_group[g] = p
        deficit[p] -= h
    return part_of_group[inverse]


def _assign_samples(labels: np.ndarray, targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exact per-class allocation: ``targets[p, k]`` random samples of class k go to part p. ``[N]`` ints."""
    part = np.empty(len(labels), dtype=np.int64)
    for k in range(targets.shape[1]):
        idx = rng.permutation(np.flatnonzero(labels == k))
        part[idx] = np.repeat(np.arange(targets.shape[0]), targets[:, k])
    return part


def draw_validation(
    train_labels: Sequence[int] | np.ndarray,
    test_labels: Sequence[int] | np.ndarray,
    fraction: float,
    seed: int,
    subjects: Sequence | np.ndarray | None = None,
    max_class_fraction: float = MAX_CLASS_FRACTION,
) -> tuple[np.ndarray, str]:
    """Draw a validation set from train with the test set's label distribution (paper §IV-B).

    Args:
        train_labels: int ``[N]`` class indices of the train images.
        test_labels: int ``[M]`` class indices of the test images (only their distribution is used).
        fraction: target val size as a share of train, in (0, 1).
        seed: seed of ``numpy.random.default_rng``; same inputs and seed, same mask.
        subjects: optional ``[N]`` subject ids of the train images; whole subjects go to val, so val is
            subject-disjoint from what remains in train (class counts are then approximate).
        max_class_fraction: at most this share of a class's train images goes to val. Where the test
            distribution would ask for more (a rare train class that is common in test, e.g. AffectNet's
            balanced validation set), the whole val set shrinks so that its proportions stay those of test.

    Returns:
        ``(mask, description)``: bool ``[N]``, True for the train images that become val; and one line for
        ``meta.json`` saying how val was drawn.
    """
    check_fraction(fraction)
    train = _as_labels(train_labels, "train labels")
    test = _as_labels(test_labels, "test labels")
    if test.size == 0:
        raise DataError("test split is empty; the validation set is drawn to match the test label distribution")
    n_classes = int(max(train.max(initial=-1), test.max(initial=-1))) + 1
    n_train = _class_counts(train, n_classes)
    p_test = _class_counts(test, n_classes) / test.size
    targets, n_val, missing = _val_targets(n_train, p_test, fraction, max_class_fraction)
    rng = np.random.default_rng(seed)
    table = np.stack([targets, n_train - targets])
    if subjects is None:
        mask = _assign_samples(train, table, rng) == 0
        how = "per-class counts exact"
    else:
        subjects = np.asarray(subjects)
        if subjects.shape != train.shape:
            raise DataError(f"subjects: {subjects.shape[0]} ids for {train.size} train images")
        mask = _assign_groups(train, subjects, table, rng) == 0
        how = f"whole subjects ({len(np.unique(subjects[mask]))} of {len(np.unique(subjects))}), counts approximate"
    shrunk = ""
    if n_val != int(round(fraction * train.size)):
        shrunk = f", shrunk to keep <= {max_class_fraction:g} of each class in train"
    gone = f"; classes {missing} are in test but too rare in train to draw" if missing else ""
    desc = (
        f"val: {int(mask.sum())} of {train.size} train images drawn (fraction {fraction:g}{shrunk}), stratified to "
        f"the test label distribution ({how}), numpy default_rng seed {seed}{gone}"
    )
    return mask, desc


def _val_targets(
    n_train: np.ndarray, p_test: np.ndarray, fraction: float, max_class_fraction: float
) -> tuple[np.ndarray, int, list[int]]:
    """How many val images to draw per class (see :func:`draw_validation`).

    Args:
        n_train: int64 ``[K]`` train images per class; ``p_test``: float ``[K]`` test's class proportions.

    Returns:
        ``(targets, n_val, missing)``: int64 ``[K]`` val images per class (test's proportions, rounded, each
        at most ``max_class_fraction`` of its train images); the val size before that last clipping (shrunk
        from ``fraction`` of train when a class would give up too much); the classes in test that train has
        too few images of to draw any. Raises :class:`DataError` when nothing can be drawn.
    """
    n_total = int(n_train.sum())
    cap = np.floor(max_class_fraction * n_train).astype(np.int64)
    usable = (p_test > 0) & (cap > 0)
    n_val = int(round(fraction * n_total))
    if usable.any():  # shrink n_val until no class's share exceeds its cap
        n_val = min(n_val, int(np.floor(np.min(cap[usable] / p_test[usable]))))
    if not usable.any() or n_val == 0:
        raise DataError(
            f"cannot draw a validation set: {n_total} train images are too few for fraction {fraction} "
            "with the test label distribution"
        )
    p = np.where(usable, p_test, 0.0)
    targets = _round_preserving_sum(n_val * p / p.sum(), n_val)
    while (over := targets > cap).any():  # rounding may push a class one over its cap
        targets[over] = cap[over]
    return targets, n_val, [k for k in np.flatnonzero((p_test > 0) & ~usable)]


def split_stratified(
    labels: Sequence[int] | np.ndarray,
    fractions: Sequence[float],
    seed: int,
    subjects: Sequence | np.ndarray | None = None,
) -> tuple[np.ndarray, str]:
    """Split a dataset without splits into train/val/test, stratified by label, subject-disjoint.

    Args:
        labels: int ``[N]`` class indices.
        fractions: ``(train, val, test)`` shares, each >= 0, summing to 1.
        seed: seed of ``numpy.random.default_rng``.
        subjects: optional ``[N]`` subject ids; each subject lands in exactly one split.

    Returns:
        ``(splits, description)``: object ``[N]`` of ``"train" | "val" | "test"``, and one line for meta.json.
    """
    fr = check_fractions(fractions)
    y = _as_labels(labels, "labels")
    n_classes = int(y.max(initial=-1)) + 1
    counts = _class_counts(y, n_classes)
    targets = np.stack([_round_preserving_sum(fr * c, int(c)) for c in counts], axis=1)  # [3, K]
    rng = np.random.default_rng(seed)
    if subjects is None:
        part = _assign_samples(y, targets, rng)
        how = "per-class counts exact"
    else:
        subjects = np.asarray(subjects)
        if subjects.shape != y.shape:
            raise DataError(f"subjects: {subjects.shape[0]} ids for {y.size} images")
        part = _assign_groups(y, subjects, targets, rng)
        how = f"subject-disjoint over {len(np.unique(subjects))} subjects, counts approximate"
    splits = np.array(["train", "val", "test"], dtype=object)[part]
    desc = (
        f"train/val/test drawn with fractions {fr[0]:g}/{fr[1]:g}/{fr[2]:g}, stratified by label ({how}), "
        f"numpy default_rng seed {seed}"
    )
    return splits, desc
