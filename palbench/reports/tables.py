"""The study tables of ``results/`` as the paper's tables, and the sentences that read them.

``results/<study>.csv`` (written by ``palbench aggregate``, :mod:`palbench.results`) has one row per
configuration, the baseline first: ``config, baseline``, the varied settings, test accuracy ``mean, std, n,
ci_low, ci_high`` over seeds, ``<metric>_mean/_std``, and the paired comparison with the baseline ``diff,
diff_ci_low, diff_ci_high, t, p, n_pairs``. Nothing here recomputes a statistic: it formats them (accuracy
in % and differences in percentage points) and picks rows. With one seed the std, CI and p are NaN and are
written as such ("1 seed: no CI"), never as zero.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from palbench.reports.project import Project, ReportError, chance_levels
from palbench.results import reaches_chance
from palbench.vocabulary import arch_name, c1_name, channels_name, method_name

STAT_COLUMNS = ("mean", "std", "n", "ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high", "p", "n_pairs")


# ---------------------------------------------------------------- reading
def read_study(project: Project, study: str) -> pd.DataFrame:
    """``results/<study>.csv`` with ``baseline`` as bool; errors name the file and the command to fix it."""
    path = project.path("results", f"{study}.csv")
    if not path.is_file():
        raise ReportError(f"{path}: not found; produce it with {project.repro_hint()}")
    table = pd.read_csv(path)
    missing = [c for c in ("config", "baseline", *STAT_COLUMNS) if c not in table.columns]
    if missing:
        raise ReportError(f"{path}: missing column(s) {', '.join(missing)}; rerun `palbench aggregate` (dvc repro)")
    table["baseline"] = table["baseline"].astype(str).str.lower().eq("true")
    if not table["baseline"].iloc[0]:
        raise ReportError(f"{path}: the first row must be the baseline; rerun `palbench aggregate` (dvc repro)")
    return table


def read_runs(project: Project) -> pd.DataFrame:
    """``results/runs.csv``: one row per run (``run, config, seed``, settings, metrics)."""
    path = project.path("results", "runs.csv")
    if not path.is_file():
        raise ReportError(f"{path}: not found; produce it with {project.repro_hint()}")
    return pd.read_csv(path)


def seed_values(runs: pd.DataFrame, config: str, metric: str = "test_accuracy") -> dict[int, float]:
    """``{seed: metric}`` of one configuration's runs."""
    sub = runs[runs["config"] == config]
    return {int(s): float(v) for s, v in zip(sub["seed"], sub[metric])}


def run_dir(project: Project, config: str, seed: int) -> Path:
    """The folder of the run of ``config`` with ``seed``, as ``results/runs.csv`` lists it."""
    runs = read_runs(project)
    match = runs[(runs["config"] == config) & (runs["seed"] == int(seed))]
    if match.empty:
        raise ReportError(f"results/runs.csv: no run of {config} with seed {seed}; rerun `palbench aggregate` (dvc repro)")
    return project.path("runs", str(match["run"].iloc[0]))


def config_settings(project: Project, table: pd.DataFrame) -> dict[str, dict]:
    """``{config: settings}`` (``arch, width, size, layer, method, ..., pal_weight``) of a study table's
    configurations, as their runs recorded them in ``results/runs.csv``."""
    runs = read_runs(project).drop_duplicates("config").set_index("config")
    missing = [c for c in table["config"] if c not in runs.index]
    if missing:
        raise ReportError(f"results/runs.csv: no run of {', '.join(missing)}; rerun `palbench aggregate` (dvc repro)")
    return {c: runs.loc[c].to_dict() for c in table["config"]}


# ---------------------------------------------------------------- formatting
def _finite(x: object) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def pct(x: object, signed: bool = False) -> str:
    """A fraction as percent (points) with one decimal; ``–`` for NaN."""
    if not _finite(x):
        return "–"
    return f"{100 * float(x):+.1f}" if signed else f"{100 * float(x):.1f}"


def mean_std(row: pd.Series) -> str:
    """``29.4 ± 3.9`` (accuracy in %); the mean alone with one seed."""
    return pct(row["mean"]) + (f" ± {pct(row['std'])}" if _finite(row["std"]) else "")


def interval(low: object, high: object, signed: bool = False) -> str:
    """``[20.0, 38.8]`` or ``–`` when undefined."""
    return f"[{pct(low, signed)}, {pct(high, signed)}]" if _finite(low) and _finite(high) else "–"


def p_value(p: object) -> str:
    if not _finite(p):
        return "–"
    return "< 0.001" if float(p) < 0.001 else f"{float(p):.3f}"


def comparison_text(row: pd.Series, label: str = "PAL − baseline") -> str:
    """``PAL − baseline = +1.2 points, 95% CI [−0.3, +2.7], paired p = 0.08 (n = 3 seeds)`` from a table row."""
    n = int(row["n_pairs"]) if _finite(row["n_pairs"]) else 0
    text = f"{label} = {pct(row['diff'], True)} points"
    if n < 2 or not _finite(row["diff_ci_low"]):
        return f"{text} ({n} paired seed{'s' if n != 1 else ''}: no CI or p-value)"
    p = f"paired p = {p_value(row['p'])}" if _finite(row["p"]) else "paired p undefined (equal differences)"
    return f"{text}, 95% CI {interval(row['diff_ci_low'], row['diff_ci_high'], True)}, {p} (n = {n} seeds)"


def at_chance(table: pd.DataFrame, levels: dict | None) -> np.ndarray:
    """Per row of a study table: is its accuracy indistinguishable from guessing? The claims report's rule
    (:func:`palbench.results.reaches_chance`) at ``levels["level"]`` (:func:`palbench.reports.project.chance_levels`:
    the larger of 1/K and the majority class's share). All False when ``levels`` is None."""
    if levels is None:
        return np.zeros(len(table), bool)
    return reaches_chance(table["ci_low"], table["mean"], levels["level"], levels["n"])


def stats_columns(table: pd.DataFrame, levels: dict | None = None) -> pd.DataFrame:
    """The formatted statistics of a study table: accuracy, CI, difference to the baseline, p, n, and the
    attention metrics (alignment with the prior; decoy share where the dataset has a decoy). With ``levels``
    (:func:`palbench.reports.project.chance_levels`), a row :func:`at_chance` says so in a ``vs chance`` column
    and its alignment is marked not interpretable."""
    out = pd.DataFrame(index=table.index)
    chance = at_chance(table, levels)
    out["Acc. (%) mean ± std"] = table.apply(mean_std, axis=1)
    out["95% CI"] = [interval(lo, hi) for lo, hi in zip(table["ci_low"], table["ci_high"])]
    out["Δ vs baseline (points)"] = [pct(d, True) for d in table["diff"]]
    out["Δ 95% CI"] = [interval(lo, hi, True) for lo, hi in zip(table["diff_ci_low"], table["diff_ci_high"])]
    out["p (paired t)"] = [p_value(p) for p in table["p"]]
    out["seeds"] = table["n"].astype(int)
    if levels is not None:
        out["vs chance"] = ["at chance" if a else "above" for a in chance]
    if "test_alignment_constrained_mean" in table:
        out["alignment r (constrained)"] = [
            ("–" if not _finite(v) else f"{v:.2f} (not interpretable: at chance)" if a else f"{v:.2f}")
            for v, a in zip(table["test_alignment_constrained_mean"], chance)]
    if "test_decoy_share_mean" in table and table["test_decoy_share_mean"].notna().any():
        out["decoy share"] = [f"{v:.3f}" if _finite(v) else "–" for v in table["test_decoy_share_mean"]]
    return out


def _method_column(project: Project, table: pd.DataFrame) -> list[str]:
    settings = config_settings(project, table)
    names = []
    for config, base in zip(table["config"], table["baseline"]):
        s = settings[config]
        arch = arch_name(s.get("arch", "?"), s.get("width", 1.0))
        names.append(arch if base else f"{arch} + PAL")
    return names


def paper_style_table(project: Project, study: str, table: pd.DataFrame) -> pd.DataFrame:
    """The study as the paper lays it out (Fig. 3's layers, Table I, Table II, Fig. 4's σ), with the
    statistics of :func:`stats_columns`. The baseline row has ``—`` in the PAL columns."""
    base = table["baseline"].to_numpy()
    labels = pd.DataFrame(index=table.index)
    labels["Method"] = _method_column(project, table)
    dash = lambda values: ["—" if b else v for b, v in zip(base, values)]  # noqa: E731
    if study == "layers":
        labels["Layer"] = dash(table["layer"])
    elif study == "ablation":
        labels["Attribution"] = dash([method_name(m) for m in table["method"]])
        labels["Channels"] = dash([channels_name(s, c) if not b else "" for s, c, b in
                                   zip(table["strategy"], table["c1"], base)])
    elif study == "channels":
        labels["C1"] = dash([c1_name(c) if not b else "" for c, b in zip(table["c1"], base)])
    elif study == "noise":
        labels["landmark noise σ"] = dash([f"{s:g}" if not b else "" for s, b in zip(table["landmark_noise"], base)])
    return pd.concat([labels, stats_columns(table, chance_levels(project))], axis=1).set_index("Method")


# ---------------------------------------------------------------- readings
def best_and_worst(table: pd.DataFrame, label: str) -> str:
    """The PAL configurations with the largest and smallest difference to the baseline, as sentences.

    Args:
        table: a study table; ``label`` names the column that identifies a configuration.
    """
    pal = table[~table["baseline"]]
    if pal["diff"].notna().sum() == 0:
        return "no PAL configuration has a paired baseline run"
    order = pal.sort_values("diff", ascending=False)
    best = order.iloc[0]
    text = f"best {label} {_label(best, label)}: {comparison_text(best)}"
    if len(order) > 1:
        worst = order.iloc[-1]
        text += f"; worst {label} {_label(worst, label)}: {comparison_text(worst)}"
    return text + "."


def _label(row: pd.Series, label: str) -> str:
    if label == "C1":
        return c1_name(row["c1"])
    if label == "configuration" and "method" in row:
        return f"{method_name(row['method'])}, {channels_name(row['strategy'], row['c1'])}"
    if label == "σ":
        return f"{row['landmark_noise']:g}"
    return str(row.get(label, row["config"]))


# ---------------------------------------------------------------- the noise study (Fig. 4)
def noise_row(project: Project, table: pd.DataFrame, landmark_noise: float | None) -> pd.Series:
    """The noise study's PAL row for landmark-noise ``landmark_noise``; a :class:`ReportError` naming the command
    that would produce it when the study has no such σ."""
    pal = table[~table["baseline"]]
    studied = ", ".join(f"{float(v):g}" for v in pal["landmark_noise"])
    if landmark_noise is None:
        raise ReportError(f"no σ to show: pass `-p sigma S` (studied: {studied}) or set reports.landmark_noise in "
                          f"{project.protocol_file()}")
    match = pal[np.isclose(pal["landmark_noise"].astype(float), float(landmark_noise))]
    if match.empty:
        raise ReportError(
            f"σ = {float(landmark_noise):g} has no results in results/noise.csv (studied: {studied}); add {float(landmark_noise):g} "
            f"to studies.noise.vary.landmark_noise and priors.landmark_noise in {project.protocol_file()}, "
            f"then run {project.repro_hint()}")
    return match.iloc[0]


def versus_clean(project: Project, table: pd.DataFrame, landmark_noise: float) -> pd.Series | None:
    """Paired comparison (same seeds) of the σ run with the σ = 0 run of the noise study, as a row with
    ``diff, diff_ci_low, diff_ci_high, t, p, n_pairs``; ``None`` when σ = 0 or σ = 0 was not studied."""
    from palbench.results import paired_comparison

    pal = table[~table["baseline"]]
    noise = pal["landmark_noise"].astype(float)
    if float(landmark_noise) == 0 or not np.isclose(noise, 0).any():
        return None
    runs = read_runs(project)
    row = noise_row(project, table, landmark_noise)
    clean = pal[np.isclose(noise, 0)].iloc[0]
    return pd.Series(paired_comparison(seed_values(runs, row["config"]), seed_values(runs, clean["config"])))


def noise_headline(project: Project, table: pd.DataFrame, landmark_noise: float) -> str:
    """``σ = 4: PAL − baseline = …; σ = 4 − σ = 0 = …`` (paired tests over the same seeds)."""
    row = noise_row(project, table, landmark_noise)
    text = f"With landmarks jittered by σ = {float(landmark_noise):g}: {comparison_text(row)}"
    clean = versus_clean(project, table, landmark_noise)
    if clean is not None:
        text += f"; against clean landmarks, {comparison_text(clean, f'(σ = {float(landmark_noise):g}) − (σ = 0)')}"
    return text + "."


# ---------------------------------------------------------------- figure inputs
def per_seed(runs: pd.DataFrame, table: pd.DataFrame, metric: str = "test_accuracy") -> dict[str, dict[int, float]]:
    """``{config: {seed: metric}}`` for every configuration of a study table."""
    return {c: seed_values(runs, c, metric) for c in table["config"]}


def study_backbone(project: Project, table: pd.DataFrame) -> dict:
    """``{"arch", "size"}`` of a study's PAL configurations (its ``set`` may change the default backbone)."""
    settings = config_settings(project, table)
    s = settings[str(table["config"].iloc[1 if len(table) > 1 else 0])]
    return {"arch": s["arch"], "size": int(s["size"])}


def study_title(project: Project, study: str) -> str:
    """The protocol's title of a study and the dataset: ``PAL at each VGG conv layer (…) — synth``."""
    title = (project.params["studies"][study] or {}).get("title", study)
    return f"{title} — {project.data_name}"


def noise_table(project: Project, table: pd.DataFrame, landmark_noise: float) -> pd.DataFrame:
    """:func:`paper_style_table` of the noise study with a ``shown`` column marking the row of ``landmark_noise``."""
    shown = paper_style_table(project, "noise", table)
    row = noise_row(project, table, landmark_noise)
    shown.insert(0, "shown", ["◀" if c == row["config"] else "" for c in table["config"]])
    return shown


def read_preview(project: Project, landmark_noise: float) -> dict[str, np.ndarray]:
    """``previews/<data>/preview.npz`` (``images [K,H,W,3]`` uint8, ``priors [S,K,H,W]``, ``landmarks
    [S,K,68,2]``, ``landmark_noise [S]``); an error naming the command when ``landmark_noise`` was not drawn."""
    path = project.path("previews", project.data_name, "preview.npz")
    if not path.is_file():
        raise ReportError(f"{path}: not found; produce the priors with {project.repro_hint()}")
    with np.load(path, allow_pickle=False) as z:
        preview = {k: z[k] for k in ("images", "priors", "landmarks", "landmark_noise")}
    drawn = [float(s) for s in preview["landmark_noise"]]
    if not np.isclose(drawn, float(landmark_noise)).any():
        raise ReportError(
            f"{path}: σ = {float(landmark_noise):g} was not drawn (landmark_noise drawn: {', '.join(f'{s:g}' for s in drawn)}); add "
            f"it to priors.landmark_noise in {project.protocol_file()}, then run {project.repro_hint()}")
    return preview
