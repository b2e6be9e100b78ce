"""Fig. 6: the confusion matrices of the comparison study's baseline and PAL, pooled over seeds, and what they
show (recall per class, the classes PAL helps and hurts most).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from palbench.reports.comparison import measured_labels
from palbench.reports.project import Project, ReportError
from palbench.reports.tables import comparison_text, pct, run_dir


def confusion_counts(project: Project, config: str) -> tuple[np.ndarray, list[str], int]:
    """Confusion counts of a configuration summed over its seeds.

    Returns:
        ``(counts int64 [K, K] with rows = true class, class names [K], number of runs)`` from each run's
        ``<split>/metrics.json``.
    """
    total, classes, n = None, None, 0
    for seed in project.seeds:
        path = run_dir(project, config, seed) / project.split / "metrics.json"
        if not path.is_file():
            raise ReportError(f"{path}: not found; evaluate the run with {project.repro_hint()}")
        m = json.loads(path.read_text())
        if "confusion_matrix" not in m:
            raise ReportError(f"{path}: no confusion_matrix; re-evaluate the run (`dvc repro`)")
        cm = np.asarray(m["confusion_matrix"], dtype=np.int64)
        total = cm if total is None else total + cm
        classes = m.get("classes") or [str(k) for k in range(len(cm))]
        n += 1
    return total, list(classes), n


def row_normalise(counts: np.ndarray) -> np.ndarray:
    """``[K, K]`` counts → each row divided by its sum (recall on the diagonal); NaN rows where a class has
    no test sample."""
    counts = np.asarray(counts, dtype=np.float64)
    support = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, counts / np.where(support > 0, support, 1), np.nan)


def confusion_headline(table: pd.DataFrame, base: np.ndarray, pal: np.ndarray, classes: list[str], n: int) -> str:
    """Accuracy difference and the classes whose recall changes most (recall from counts pooled over seeds).

    Args:
        table: the comparison study table; base, pal: confusion counts ``[K, K]`` (rows = true class).
    """
    recall = np.diag(row_normalise(pal)) - np.diag(row_normalise(base))
    text = comparison_text(table[~table["baseline"]].iloc[0])
    if np.isfinite(recall).any():
        hi, lo = int(np.nanargmax(recall)), int(np.nanargmin(recall))
        changes = [f"largest gain {classes[hi]} {pct(recall[hi], True)} points"] if recall[hi] > 0 else []
        changes += [f"largest loss {classes[lo]} {pct(recall[lo], True)} points"] if recall[lo] < 0 else []
        text += (f". Recall with PAL, {n} seed{'s' if n != 1 else ''} pooled: "
                 + (", ".join(changes) or "no class changes"))
    absent = [c for c, k in zip(classes, np.asarray(base).sum(axis=1) + np.asarray(pal).sum(axis=1)) if k == 0]
    if absent:
        text += (f". {', '.join(absent)} {'has' if len(absent) == 1 else 'have'} no image in the evaluated split "
                 "(absent: no recall)")
    return text + "."


def confusion_titles(project: Project, table: pd.DataFrame, n: int) -> tuple[str, str]:
    """Panel titles of Fig. 6: each model's label and mean test accuracy, with the seeds pooled."""
    labels = measured_labels(project, table)
    pal_pos = int(np.flatnonzero(~table["baseline"].to_numpy())[0])
    pooled = f"{n} seed{'s' if n != 1 else ''} pooled"
    return (f"{labels[0]}\naccuracy {pct(table['mean'].iloc[0])}% ({pooled})",
            f"{labels[pal_pos]}\naccuracy {pct(table['mean'].iloc[pal_pos])}% ({pooled})")


def recall_table(base: np.ndarray, pal: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Per class: test support (per seed, summed), recall of the baseline and of PAL (%), and the change.

    Args:
        base, pal: confusion counts ``[K, K]`` pooled over seeds (rows = true class).
    """
    rb, rp = np.diag(row_normalise(base)), np.diag(row_normalise(pal))
    return pd.DataFrame({"class": classes, "support (all seeds)": base.sum(axis=1),
                         "baseline recall (%)": [pct(v) for v in rb], "PAL recall (%)": [pct(v) for v in rp],
                         "Δ (points)": [pct(v, True) for v in rp - rb]}).set_index("class")

