"""Aggregation of many runs into tables with honest statistics (mean ± std, 95% CI over seeds, paired tests).

A configuration is run over several seeds; its accuracy is summarised by the mean, the sample standard
deviation (ddof = 1), ``n``, and the 95% confidence interval of the mean from Student's t distribution
(``mean ± t_{0.975, n-1} · std / sqrt(n)``). A configuration is compared with the baseline over the SAME
seeds — same initialisation and data order, so the runs are paired — by the paired t-test on the per-seed
differences (scipy.stats.ttest_rel), with the t-interval of the mean difference. A configuration whose accuracy
cannot be told from guessing is *at chance* (:func:`reaches_chance`, the one rule the report tables and the claims'
caveats apply).
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


def guessing_margin(level: float, n: int) -> float:
    """Two binomial standard errors of a classifier scoring ``level`` on ``n`` test images."""
    return 2 * math.sqrt(level * (1 - level) / n)


def reaches_chance(ci_low, mean, level: float, n_test: int | None) -> np.ndarray:
    """The one at-chance rule (claims caveat, report tables): a configuration's accuracy is indistinguishable
    from guessing when the 95% interval of its mean over seeds reaches ``level`` (the larger of 1/K and the
    majority class's share); with one seed (no interval), when its mean is within two binomial standard
    errors of ``level`` on ``n_test`` images (2 points when unknown). Arrays ``[n]`` in, bool ``[n]`` out."""
    margin = guessing_margin(level, n_test) if n_test else 0.02
    ci_low, mean = np.asarray(ci_low, dtype=float), np.asarray(mean, dtype=float)
    return np.where(np.isfinite(ci_low), ci_low, mean - margin) <= level


def read_run(run: str | Path, eval_dir: str = "test") -> dict:
    """One run folder: ``config`` (its ``config.json`` through :class:`~palbench.config.TrainConfig`, so a
    key an older palbench did not write has its default), ``val_accuracy`` and ``seconds`` (training
    metrics), and ``test_*`` (its evaluation on ``eval_dir``)."""
    from palbench.config import TrainConfig

    run = Path(run)
    try:
        config = json.loads((run / "config.json").read_text())
        train = json.loads((run / "metrics.json").read_text())
        test = json.loads((run / eval_dir / "metrics.json").read_text())
    except FileNotFoundError as e:
        raise DataError(f"{e.filename}: not found; a run needs config.json, metrics.json and {eval_dir}/metrics.json") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{run}: invalid JSON ({e})") from None
    row = {"config": TrainConfig.from_dict(config, where=str(run / "config.json")).to_dict(),
           "val_accuracy": train.get("best_val_accuracy"), "seconds": train.get("seconds")}
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "alignment_constrained", "alignment_free",
                "alignment_all", "decoy_share", "decoy_area_share", "shortcut_follow"):
        row[f"test_{key}"] = test.get(key)
    return row


def study_table(
    runs: pd.DataFrame, by: list[str], baseline: Mapping[str, object], metric: str = "test_accuracy",
    extra: Iterable[str] = (),
) -> pd.DataFrame:
    """One row per configuration (the distinct values of ``by``): summary of ``metric`` over seeds and the
    paired comparison with the baseline configuration.

    Args:
        runs: one row per run with a ``seed`` column, the ``by`` columns and ``metric``.
        by: the columns that define a configuration (e.g. ``["layer"]``, ``["method", "strategy"]``).
        baseline: column values selecting the baseline runs (e.g. ``{"pal_weight": 0}``).

    Returns:
        Columns: ``by``, ``mean, std, n, ci_low, ci_high``, ``diff, diff_ci_low, diff_ci_high, t, p, n_pairs``,
        and ``<m>_mean, <m>_std`` for each metric ``m`` of ``extra`` (e.g. alignment, decoy share).
    """
    extra = list(extra)

    def extras(group: pd.DataFrame) -> dict:
        out = {}
        for m in extra:
            s = summarize(pd.to_numeric(group[m], errors="coerce").to_numpy(dtype=np.float64))
            out[f"{m}_mean"], out[f"{m}_std"] = s["mean"], s["std"]
        return out

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
        rows.append({**dict(zip(by, key)), **summarize(per_seed.values()), **paired_comparison(per_seed, base),
                     **extras(group)})
    baseline_row = {**{k: "baseline" for k in by}, **summarize(base.values()), **extras(runs[mask])}
    return pd.DataFrame([baseline_row, *rows])


#: Per-run metrics carried into the study tables beside the accuracy statistics.
EXTRA_METRICS = ("val_accuracy", "test_balanced_accuracy", "test_macro_f1", "test_alignment_constrained",
                 "test_alignment_free", "test_decoy_share", "test_decoy_area_share", "test_shortcut_follow", "seconds")


def collect_runs(params: Mapping, runs_dir: str | Path = "runs") -> pd.DataFrame:
    """One row per run of the grid (``runs.csv``): run, config, seed, the configuration's settings
    (``landmark_noise`` included) and the run's metrics.

    Each run's settings and seed are read from its ``config.json`` — never parsed from its folder name —
    and must be those of the configuration and seed the grid trained it for. A missing or unreadable run,
    or one whose recorded settings differ (trained for other studies: stale), is an error naming it.
    """
    from palbench.config import config_seeds, grid, run_configs, run_name, run_names

    configs = {row["config"]: row["settings"] for row in grid(params)}
    planned = {run_name(c, s, g): (c, s) for c, g in run_configs(params).items() for s in config_seeds(params, c, g)}
    rows = []
    for name in run_names(params):
        path = Path(runs_dir) / name
        run = read_run(path, params["evaluate"]["split"])
        settings = run.pop("config")
        config, seed = planned[name]
        differ = [f"{k} {settings.get(k)!r} (expected {v!r})" for k, v in {**configs[config], "seed": seed}.items()
                  if settings.get(k) != v]
        if differ:
            raise DataError(f"{path / 'config.json'}: not the run of configuration {config} with seed {seed}: "
                            f"{', '.join(differ)}; a stale run, re-run it with `dvc repro`")
        rows.append({"run": name, "config": config, "seed": settings["seed"],
                     **{k: settings[k] for k in configs[config]}, **run})
    return pd.DataFrame(rows)


def study_tables(params: Mapping, runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``{study: table}``: one row per configuration of the study (baseline first, then the protocol's order),
    with the settings the study varies, ``config`` and ``baseline`` columns, and :func:`study_table`'s statistics."""
    from palbench.config import grid, study_seeds

    rows = grid(params)
    tables = {}
    for study in params["studies"]:
        seeds = study_seeds(params, study)
        confs = [r for r in rows if r["study"] == study]
        names = [r["config"] for r in confs]
        # The settings the study varies among its PAL configurations (the baseline's PAL settings mean nothing).
        pal = confs[1:]
        varied = [k for k in pal[0]["settings"] if k != "pal_weight"
                  and len({repr(r["settings"].get(k)) for r in pal}) > 1] if len(pal) > 1 else []
        sub = runs[runs["config"].isin(names) & runs["seed"].isin(seeds)]  # the study's seeds only
        table = study_table(sub, ["config"], {"config": names[0]}, "test_accuracy", EXTRA_METRICS)
        table.loc[table["config"] == "baseline", "config"] = names[0]
        table = table.set_index("config").loc[names].reset_index()
        table.insert(1, "baseline", [r["baseline"] for r in confs])
        for i, k in enumerate(varied or ["pal_weight"]):
            table.insert(2 + i, k, [None if r["baseline"] and varied else r["settings"].get(k) for r in confs])
        tables[study] = table
    return tables


def aggregate(params_path: str | Path = "params.yaml", runs_dir: str | Path = "runs", out: str | Path = "results",
              metrics_path: str | Path = "metrics.json") -> dict:
    """Write ``runs.csv`` and one ``<study>.csv`` per study into ``out`` (atomically), and the aggregated
    metrics (every study's configurations: mean test accuracy, CI, difference to the baseline, p, alignment,
    decoy share) to ``metrics_path`` — one file for ``dvc metrics show``. A protocol with regime studies also gets
    ``regimes.csv`` (:func:`palbench.regimes.regime_table`) and a ``regimes`` entry in the metrics. Returns the
    metrics."""
    from palbench.config import read_params
    from palbench.io import atomic_dir, write_json
    from palbench.regimes import regime_metrics, regime_studies, regime_table

    params = read_params(params_path)
    runs = collect_runs(params, runs_dir)
    tables = study_tables(params, runs)
    metrics: dict = {"protocol": params["protocol"], "n_runs": len(runs), "n_seeds": len(params["seeds"]),
                     "train_seconds": float(runs["seconds"].sum())}
    for study, table in tables.items():
        metrics[study] = {
            row["config"]: {k: _finite(row[k]) for k in (
                "mean", "ci_low", "ci_high", "diff", "p", "test_alignment_constrained_mean", "test_decoy_share_mean")
                if k in row}
            for _, row in table.iterrows()
        }
    regimes = regime_table(params, tables, runs) if regime_studies(params) else None
    if regimes is not None:
        metrics["regimes"] = regime_metrics(regimes)
    with atomic_dir(out) as tmp:
        runs.to_csv(tmp / "runs.csv", index=False)
        for study, table in tables.items():
            table.to_csv(tmp / f"{study}.csv", index=False)
        if regimes is not None:
            regimes.to_csv(tmp / "regimes.csv", index=False)
    write_json(metrics_path, metrics)
    return metrics


def _finite(v: object) -> float | None:
    v = float(v)
    return None if math.isnan(v) else float(f"{v:.6g}")  # 6 significant digits (p-values can be tiny)
