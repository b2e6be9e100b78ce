"""Aggregation of many runs into tables with honest statistics (mean ± std, 95% CI over seeds, paired tests).

A configuration is run over several seeds; its accuracy is summarised by the mean, the sample standard
deviation (ddof = 1), ``n``, and the 95% confidence interval of the mean from Student's t distribution
(``mean ± t_{0.975, n-1} · std / sqrt(n)``). A configuration is compared with the baseline over the SAME
seeds — same initialisation and data order, so the runs are paired — by the paired t-test on the per-seed
differences (scipy.stats.ttest_rel), with the t-interval of the mean difference.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from palbench.errors import DataError


def summarize(values: Iterable[float], confidence: float = 0.95) -> dict[str, float]:
    """Mean, std (ddof = 1), n and the t confidence interval of the mean of ``values`` (NaNs dropped).

    With n = 1 the std and interval are NaN (one seed says nothing about spread).
    """
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    n = len(x)
    if n == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0, "ci_low": math.nan, "ci_high": math.nan}
    mean = float(x.mean())
    if n == 1:
        return {"mean": mean, "std": math.nan, "n": 1, "ci_low": math.nan, "ci_high": math.nan}
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "n": n, "ci_low": mean - half, "ci_high": mean + half}


def paired_comparison(
    treatment: Mapping[int, float], baseline: Mapping[int, float], confidence: float = 0.95
) -> dict[str, float]:
    """Treatment − baseline over the seeds both have: mean difference, its t interval, paired t-test.

    Args:
        treatment, baseline: ``{seed: metric}``.

    Returns:
        ``diff``, ``diff_ci_low``, ``diff_ci_high``, ``t``, ``p`` (two-sided), ``n_pairs``; NaN where
        fewer than two pairs exist (or all differences are equal, where t is undefined).
    """
    seeds = sorted(set(treatment) & set(baseline))
    a = np.array([treatment[s] for s in seeds], dtype=np.float64)
    b = np.array([baseline[s] for s in seeds], dtype=np.float64)
    d = summarize(a - b, confidence)
    out = {"diff": d["mean"], "diff_ci_low": d["ci_low"], "diff_ci_high": d["ci_high"], "n_pairs": len(seeds),
           "t": math.nan, "p": math.nan}
    if len(seeds) >= 2 and np.ptp(a - b) > 0:
        res = stats.ttest_rel(a, b)
        out["t"], out["p"] = float(res.statistic), float(res.pvalue)
    return out


def read_run(run: str | Path, eval_dir: str = "test") -> dict:
    """One row: the run's config keys, its training metrics (``val_*``) and its evaluation (``test_*``)."""
    run = Path(run)
    try:
        config = json.loads((run / "config.json").read_text())
        train = json.loads((run / "metrics.json").read_text())
        test = json.loads((run / eval_dir / "metrics.json").read_text())
    except FileNotFoundError as e:
        raise DataError(f"{e.filename}: not found; a run needs config.json, metrics.json and {eval_dir}/metrics.json") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{run}: invalid JSON ({e})") from None
    row = {k: v for k, v in config.items() if not isinstance(v, (dict, list))}
    row.update(run=str(run), val_accuracy=train.get("best_val_accuracy"), seconds=train.get("seconds"))
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "alignment_constrained", "alignment_free",
                "alignment_all", "decoy_share", "decoy_area_share"):
        row[f"test_{key}"] = test.get(key)
    return row


def study_table(
    runs: pd.DataFrame, by: list[str], baseline: Mapping[str, object], metric: str = "test_accuracy"
) -> pd.DataFrame:
    """One row per configuration (the distinct values of ``by``): summary of ``metric`` over seeds and the
    paired comparison with the baseline configuration.

    Args:
        runs: one row per run with a ``seed`` column, the ``by`` columns and ``metric``.
        by: the columns that define a configuration (e.g. ``["layer"]``, ``["method", "strategy"]``).
        baseline: column values selecting the baseline runs (e.g. ``{"pal_weight": 0}``).

    Returns:
        Columns: ``by``, ``mean, std, n, ci_low, ci_high``, ``diff, diff_ci_low, diff_ci_high, t, p, n_pairs``.
    """
    mask = np.ones(len(runs), dtype=bool)
    for k, v in baseline.items():
        mask &= (runs[k] == v).to_numpy()
    if not mask.any():
        raise DataError(f"no baseline runs with {dict(baseline)} among {len(runs)} runs")
    base = dict(zip(runs.loc[mask, "seed"], runs.loc[mask, metric]))
    rows = []
    for key, group in runs[~mask].groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        per_seed = dict(zip(group["seed"], group[metric]))
        rows.append({**dict(zip(by, key)), **summarize(per_seed.values()), **paired_comparison(per_seed, base)})
    baseline_row = {**{k: "baseline" for k in by}, **summarize(base.values())}
    return pd.DataFrame([baseline_row, *rows])
