"""The regime map: where PAL helps, is neutral or hurts, by how the network starts and which shortcut the data hold.

A study with a ``regime: {start, shortcut}`` key is one *cell* of the map: the comparison pair (its baseline,
``pal_weight`` 0, against the default PAL, ``vary: {pal_weight: [1.0]}``) trained from one start (``scratch``:
``weights`` null; ``partial``: the pretraining's lower layers kept, ``keep_up_to``; ``pretrained``) on data with
one shortcut (``none``; ``decoy``: a class-coded coloured corner square; ``stripes``: class-coded background
stripes). Start and shortcut are read from the ``regime`` key, never from study or folder names.

:func:`regime_table` reads each cell's study table (:func:`palbench.results.study_tables`) and the per-run table
(``results/runs.csv``) and says, per cell, whether PAL − baseline is decided and which way, in how many seeds PAL
is ahead, whether the baseline is misled by the shortcut, and whether the same start learns faces without a
shortcut. Accuracies are fractions (0–1), as in the study tables. Nothing here imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from palbench.config import TrainConfig, dataset_paths, study_configs, study_seeds
from palbench.config.run import NON_RESULT_KEYS

#: PAL − baseline is *decided* when its paired 95% interval excludes 0 or is at most this wide on each side
#: (3 points: a difference that small either way is a result, *neutral*).
DECIDED_HALF_WIDTH = 0.03
#: A baseline is *misled* when it tests at least this far (10 points) below its validation accuracy ...
MISLED_GAP = 0.10
#: ... or gives the decoy square at least this many times its area share of the input attribution, or follows the
#: shortcut at least this many times as often as a face-only model would.
MISLED_RATIO = 2.0
#: A start *learns faces* when its baseline tests at least this well on the data without a shortcut.
FACES_LEARNED = 0.5
HELPS, HURTS, NEUTRAL, UNDECIDED = "helps", "hurts", "neutral", "undecided"
#: How the map orders the starts and the shortcuts it knows (others follow, in protocol order).
STARTS = ("scratch", "partial", "pretrained")
SHORTCUTS = ("none", "decoy", "stripes")
#: The columns :func:`regime_table` adds to the study tables' (and an empty table has, with theirs).
KEY_COLUMNS = ("start", "shortcut", "study")
CELL_COLUMNS = ("decided", "verdict", "pal_ahead", "misled", "faces_learned")
_TOLERANCE = 1e-9  # thresholds are met by values equal to them up to float rounding (0.6 − 0.5 < 0.1)


def regime_studies(params: Mapping) -> list[str]:
    """The studies with a ``regime`` key (the cells of the map), in protocol order."""
    return [s for s, spec in (params.get("studies") or {}).items() if (spec or {}).get("regime")]


def regime_of(params: Mapping, study: str) -> dict[str, str]:
    """``{"start", "shortcut"}`` of a regime study."""
    return dict(params["studies"][study]["regime"])


def cell_name(start: str, shortcut: str) -> str:
    """``scratch × decoy``."""
    return f"{start} × {shortcut}"


def ordered(names: list[str], known: tuple[str, ...]) -> list[str]:
    """``names`` without repeats, the ``known`` ones first in their order, then the others as they come."""
    names = list(dict.fromkeys(names))
    return [n for n in known if n in names] + [n for n in names if n not in known]


def _finite(x: object) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _at_least(x: object, threshold: float) -> bool:
    return _finite(x) and float(x) >= threshold - _TOLERANCE


def decision(row: Mapping) -> dict:
    """``decided`` and ``verdict`` of a PAL row from its paired 95% interval of PAL − baseline
    (``diff_ci_low``, ``diff_ci_high``): decided when the interval excludes 0 or its half-width is at most
    :data:`DECIDED_HALF_WIDTH`; the verdict is ``helps`` (above 0), ``hurts`` (below 0), ``neutral`` (decided
    and containing 0) or ``undecided`` (a wider interval containing 0, or none: fewer than 2 paired seeds)."""
    low, high = row.get("diff_ci_low"), row.get("diff_ci_high")
    if not (_finite(low) and _finite(high)):
        return {"decided": False, "verdict": UNDECIDED}
    low, high = float(low), float(high)
    if low > 0 or high < 0:
        return {"decided": True, "verdict": HELPS if low > 0 else HURTS}
    if (high - low) / 2 <= DECIDED_HALF_WIDTH + _TOLERANCE:
        return {"decided": True, "verdict": NEUTRAL}
    return {"decided": False, "verdict": UNDECIDED}


def face_only_follow(accuracy: float, n_classes: int = 7) -> float:
    """How often a model that ignores the shortcut predicts the class it encodes on an image whose shortcut
    names another class than its label: it errs on ``1 − accuracy`` of them, its wrong answers spread over the
    ``K − 1`` other classes, one of which is the shortcut's: ``(1 − accuracy) / (K − 1)``."""
    return (1 - float(accuracy)) / (n_classes - 1)


def misled(row: Mapping, n_classes: int = 7) -> bool:
    """Whether a baseline row (means over seeds) shows it learned the shortcut rather than the faces. Any of:

    * its test accuracy is at least :data:`MISLED_GAP` (10 points) below its validation accuracy (the shortcut
      holds in train/val, not in test);
    * its input attribution gives the decoy square at least :data:`MISLED_RATIO` (2) times the square's area
      share (``test_decoy_share_mean >= 2 · test_decoy_area_share_mean``; a uniform map gives the area share);
    * it predicts the shortcut's class at least 2 times as often as a face-only model would
      (``test_shortcut_follow_mean >= 2 · (1 − test accuracy) / (K − 1)``, :func:`face_only_follow`).

    A criterion whose metrics are absent (no decoy, no shortcut) does not count.
    """
    acc = row.get("mean")
    gap = float(row.get("val_accuracy_mean", math.nan)) - float(acc) if _finite(acc) else math.nan
    share, area = row.get("test_decoy_share_mean"), row.get("test_decoy_area_share_mean")
    follow = row.get("test_shortcut_follow_mean")
    return bool(_at_least(gap, MISLED_GAP)
                or (_finite(area) and _at_least(share, MISLED_RATIO * float(area)))
                or (_finite(acc) and _at_least(follow, MISLED_RATIO * face_only_follow(acc, n_classes))))


def _seed_accuracy(runs: pd.DataFrame, config: str, seeds: list[int], metric: str) -> dict[int, float]:
    rows = runs[(runs["config"] == config) & runs["seed"].isin(seeds)]
    return {int(s): float(v) for s, v in zip(rows["seed"], rows[metric]) if _finite(v)}


def pal_ahead(pal: Mapping[int, float], baseline: Mapping[int, float]) -> int:
    """The number of seeds (of those both have) where PAL's accuracy is above the baseline's."""
    return sum(pal[s] > baseline[s] for s in set(pal) & set(baseline))


def regime_table(params: Mapping, tables: Mapping[str, pd.DataFrame], runs: pd.DataFrame, n_classes: int = 7,
                 metric: str = "test_accuracy") -> pd.DataFrame:
    """One row per configuration per cell of the regime map: each cell's baseline row, then its PAL row(s).

    Args:
        params: ``params.yaml`` (its studies with a ``regime`` key are the cells).
        tables: ``{study: table}`` (:func:`palbench.results.study_tables`); a cell without a table is left out.
        runs: ``results/runs.csv`` (``config``, ``seed``, ``metric``), for the per-seed count ``pal_ahead``.
        n_classes: K, for the follow rate of a face-only model (:func:`misled`).

    Returns:
        Columns ``start, shortcut, study``, the study tables' columns (``config, baseline``, the varied setting,
        ``mean, std, n, ci_low, ci_high, diff, diff_ci_low, diff_ci_high, t, p, n_pairs``, ``<metric>_mean/_std``),
        then ``decided``, ``verdict`` (:func:`decision`) and ``pal_ahead`` (seeds where PAL is ahead of the baseline,
        paired on seed) on PAL rows, ``misled`` (:func:`misled`) on baseline rows (None on the others), and on
        every row ``faces_learned``: whether the cell of the same start with shortcut ``none`` has a baseline
        test accuracy >= :data:`FACES_LEARNED` (None when there is no such cell).
    """
    rows = []
    for study in regime_studies(params):
        if study not in tables:
            continue
        table, seeds = tables[study], study_seeds(params, study)
        base = table[table["baseline"].astype(bool)].iloc[0]
        base_seeds = _seed_accuracy(runs, base["config"], seeds, metric)
        for _, row in table.iterrows():
            out = {**regime_of(params, study), "study": study, **row.to_dict(),
                   "decided": None, "verdict": None, "pal_ahead": None, "misled": None}
            if bool(row["baseline"]):
                out["misled"] = misled(row, n_classes)
            else:
                out.update(decision(row))
                out["pal_ahead"] = pal_ahead(_seed_accuracy(runs, row["config"], seeds, metric), base_seeds)
            rows.append(out)
    if not rows:
        return pd.DataFrame(columns=[*KEY_COLUMNS, "config", "baseline", *CELL_COLUMNS])
    table = pd.DataFrame(rows)
    table["pal_ahead"] = table["pal_ahead"].astype("Int64")  # a count; <NA> on baseline rows
    base = table[table["baseline"].astype(bool)]
    clean = {start: float(m) for start, shortcut, m in zip(base["start"], base["shortcut"], base["mean"])
             if shortcut == "none" and _finite(m)}
    table["faces_learned"] = [bool(clean[s] >= FACES_LEARNED - _TOLERANCE) if s in clean else None
                              for s in table["start"]]
    columns = [*KEY_COLUMNS, *[c for c in table.columns if c not in (*KEY_COLUMNS, *CELL_COLUMNS)], *CELL_COLUMNS]
    return table[columns]


def largest_effect(table: pd.DataFrame) -> pd.Series | None:
    """The decided PAL row of :func:`regime_table` with the largest |PAL − baseline| (None when none is decided)."""
    decided = table[table["decided"].eq(True) & table["diff"].map(_finite)]
    if decided.empty:
        return None
    return decided.loc[decided["diff"].astype(float).abs().idxmax()]


def regime_metrics(table: pd.DataFrame) -> dict:
    """``{study: {start, shortcut, diff, diff_ci_low, diff_ci_high, verdict}}`` of each cell's (first) PAL row,
    for ``metrics.json`` (NaN as None)."""
    def number(v: object) -> float | None:
        return float(f"{float(v):.6g}") if _finite(v) else None

    out = {}
    for _, row in table[~table["baseline"].astype(bool)].iterrows():
        out.setdefault(row["study"], {"start": row["start"], "shortcut": row["shortcut"],
                                      **{k: number(row[k]) for k in ("diff", "diff_ci_low", "diff_ci_high")},
                                      "verdict": row["verdict"]})
    return out


def _settings(params: Mapping, conf: Mapping) -> dict:
    """A configuration's complete training settings (:class:`~palbench.config.TrainConfig`, defaults filled in,
    the protocol's dataset where it sets none), without those that change no result."""
    data = dataset_paths(params)[0] if params.get("data") else "-"
    full = TrainConfig.from_dict({"data": data, **conf}).to_dict()
    return {k: v for k, v in full.items() if k not in NON_RESULT_KEYS}


def regime_of_study(params: Mapping, study: str) -> str:
    """Where a study is tested: ``tested in the <start> × <shortcut> regime`` when its baseline configuration is
    a regime cell's (the same settings, data, weights, ``keep_up_to``, epochs, lr ... all of them, compared as
    complete :class:`~palbench.config.TrainConfig` settings), else ``tested in the protocol's default regime``."""
    base = _settings(params, study_configs(params, study)[0])
    for cell in regime_studies(params):
        if _settings(params, study_configs(params, cell)[0]) == base:
            r = regime_of(params, cell)
            return f"tested in the {cell_name(r['start'], r['shortcut'])} regime"
    return "tested in the protocol's default regime"
