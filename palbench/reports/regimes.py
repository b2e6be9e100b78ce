"""The regime map: PAL − baseline by start (scratch, partial, pretrained) × shortcut (none, decoy, stripes).

Reads ``results/regimes.csv`` (:func:`palbench.regimes.regime_table`, written by ``palbench aggregate``): per cell,
its baseline row then its PAL row, with the paired difference, whether it is decided and which way, the seeds where
PAL is ahead, whether the baseline is misled by the shortcut and whether the start learns faces without one. It
draws the map as a heatmap (points, diverging colours centred at 0), formats one row per cell, and reads it.
Nothing here recomputes a statistic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from palbench.regimes import (HELPS, HURTS, NEUTRAL, SHORTCUTS, STARTS, UNDECIDED, cell_name, largest_effect,
                              ordered, regime_of, regime_studies)
from palbench.reports.project import Project, ReportError
from palbench.reports.tables import _finite, at_chance, comparison_text, interval, pct

#: The flag columns of ``regimes.csv``: True, False or absent (None).
FLAGS = ("baseline", "decided", "misled", "faces_learned")


def require_regimes(project: Project) -> list[str]:
    """The protocol's regime studies (:func:`palbench.regimes.regime_studies`); a :class:`ReportError` saying what
    to add when it has none."""
    studies = regime_studies(project.params)
    if not studies:
        raise ReportError(
            f"protocol {project.protocol} has no study with a `regime`, which the regime map needs: give a study "
            f"`regime: {{start: scratch, shortcut: decoy}}` in {project.protocol_file()}, then run "
            f"{project.repro_hint()}")
    return studies


def _flag(v: object) -> bool | None:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    text = str(v).strip().lower()
    return True if text == "true" else False if text == "false" else None


def read_regimes(project: Project) -> pd.DataFrame:
    """``results/regimes.csv`` with its flags (:data:`FLAGS`) as True, False or None; errors name the command."""
    require_regimes(project)
    path = project.path("results", "regimes.csv")
    if not path.is_file():
        raise ReportError(f"{path}: not found; produce it with {project.repro_hint()}")
    table = pd.read_csv(path)
    missing = [c for c in ("start", "shortcut", "study", "config", "mean", "diff", "verdict", *FLAGS)
               if c not in table.columns]
    if missing:
        raise ReportError(f"{path}: missing column(s) {', '.join(missing)}; rerun `palbench aggregate` (dvc repro)")
    for c in FLAGS:
        table[c] = pd.Series([_flag(v) for v in table[c]], index=table.index, dtype=object)
    return table


def grid(table: pd.DataFrame, project: Project | None = None) -> tuple[list[str], list[str]]:
    """``(starts, shortcuts)`` of the map: those of its cells (and of the regime studies of ``project``'s
    protocol), the known ones in :data:`~palbench.regimes.STARTS` and :data:`~palbench.regimes.SHORTCUTS` order
    first."""
    regimes = [regime_of(project.params, s) for s in regime_studies(project.params)] if project else []
    return (ordered([*table["start"], *(r["start"] for r in regimes)], STARTS),
            ordered([*table["shortcut"], *(r["shortcut"] for r in regimes)], SHORTCUTS))


def cells(table: pd.DataFrame) -> dict[tuple[str, str], tuple[pd.Series, pd.Series | None]]:
    """``{(start, shortcut): (baseline row, first PAL row or None)}`` (the first study of each cell)."""
    out: dict = {}
    for study, rows in table.groupby("study", sort=False):
        base = rows[rows["baseline"].eq(True)]
        pal = rows[~rows["baseline"].eq(True)]
        key = (str(rows["start"].iloc[0]), str(rows["shortcut"].iloc[0]))
        if not base.empty:
            out.setdefault(key, (base.iloc[0], pal.iloc[0] if not pal.empty else None))
    return out


def absent_cells(table: pd.DataFrame, project: Project | None = None) -> list[str]:
    """The start × shortcut cells of the map's grid that have no results: not in the protocol, or a regime study
    of the protocol (``project``) missing from the table."""
    have = cells(table)
    starts, shortcuts = grid(table, project)
    return [cell_name(a, b) for a in starts for b in shortcuts if (a, b) not in have]


def _chance(table: pd.DataFrame, levels: dict | None) -> dict[int, bool]:
    return dict(zip(table.index, at_chance(table, levels)))


def chance_note(base: pd.Series, pal: pd.Series | None, chance: dict[int, bool]) -> str:
    """``baseline at chance``, ``PAL at chance``, ``both at chance`` or ``''``."""
    b, p = chance.get(base.name, False), pal is not None and chance.get(pal.name, False)
    return "both at chance" if b and p else "baseline at chance" if b else "PAL at chance" if p else ""


def _ahead(pal: pd.Series) -> str:
    k, n = pal.get("pal_ahead"), pal.get("n_pairs")
    return f"{int(k)}/{int(n)}" if _finite(k) and _finite(n) else "–"


def plot_regimes(table: pd.DataFrame, title: str, levels: dict | None = None, project: Project | None = None):
    """The map: one square per start (rows) × shortcut (columns), coloured by PAL − baseline in points (diverging,
    centred at 0; blue: PAL ahead, red: behind) and annotated with the verdict (*undecided* when it is not decided;
    bold when it is), the difference, its 95% interval, "PAL ahead in k/n seeds", *baseline misled* and what is at
    chance. Cells without results
    are hatched grey, "no results"."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    have, chance = cells(table), _chance(table, levels)
    starts, shortcuts = grid(table, project)
    if not (starts and shortcuts):
        fig, ax = plt.subplots(figsize=(6, 2), layout="constrained")
        ax.text(0.5, 0.5, "no regime cell has results", ha="center", va="center")
        ax.set_axis_off()
        ax.set_title(title, fontsize=10)
        return fig
    values = np.full((len(starts), len(shortcuts)), np.nan)
    for (a, b), (_, pal) in have.items():
        if pal is not None and _finite(pal["diff"]):
            values[starts.index(a), shortcuts.index(b)] = 100 * float(pal["diff"])
    limit = max(5.0, float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 0.0)
    norm, cmap = Normalize(-limit, limit), plt.get_cmap("RdBu")
    fig, ax = plt.subplots(figsize=(2.9 * len(shortcuts) + 1.8, 1.9 * len(starts) + 1.3), layout="constrained")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="auto")
    for i, a in enumerate(starts):
        for j, b in enumerate(shortcuts):
            base, pal = have.get((a, b), (None, None))
            if base is None or pal is None or not _finite(pal["diff"]):
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="0.92", edgecolor="0.6", hatch="///"))
                what = "no results" if base is None else "no paired PAL run"
                ax.text(j, i, what, ha="center", va="center", fontsize=9, color="0.3",
                        bbox={"facecolor": "white", "edgecolor": "none", "pad": 2})
                continue
            ci = interval(pal["diff_ci_low"], pal["diff_ci_high"], True)
            verdict = pal.get("verdict") if pal.get("decided") is True else UNDECIDED
            lines = [f"{verdict}: {pct(pal['diff'], True)} points", f"95% CI {ci}", f"PAL ahead in {_ahead(pal)} seeds"]
            if base.get("misled") is True:
                lines.append("baseline misled")
            note = chance_note(base, pal, chance)
            if note:
                lines.append(note)
            dark = abs(values[i, j]) > 0.6 * limit
            ax.text(j, i, "\n".join(lines), ha="center", va="center", fontsize=8.5,
                    color="white" if dark else "black", fontweight="bold" if pal.get("decided") is True else None)
    ax.set_xticks(range(len(shortcuts)), [f"shortcut: {b}" for b in shortcuts])
    ax.set_yticks(range(len(starts)), [f"start: {a}" for a in starts])
    ax.set_xticks(np.arange(len(shortcuts) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(starts) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", lw=2)
    ax.tick_params(which="minor", length=0)
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.85, label="PAL − baseline (points of test accuracy)")
    return fig


def _pair(a: object, b: object, fmt) -> str:
    return f"{fmt(a)} / {fmt(b)}" if _finite(a) or _finite(b) else "–"


def _share(v: object) -> str:
    return f"{float(v):.3f}" if _finite(v) else "–"


def _r(v: object) -> str:
    return f"{float(v):.2f}" if _finite(v) else "–"


def _yes(v: object, unknown: str = "–") -> str:
    return "yes" if v is True else "no" if v is False else unknown


def regime_summary(table: pd.DataFrame, levels: dict | None = None, project: Project | None = None) -> pd.DataFrame:
    """One row per cell (index ``start × shortcut``; absent cells say so): baseline and PAL validation and test
    accuracy (%), PAL − baseline (points) with its 95% interval, the verdict, the seeds where PAL is ahead,
    alignment with the prior, decoy share (and the square's area share), shortcut follow rate (%), whether the
    baseline is misled and whether the start learns faces, and what is at chance."""
    have, chance = cells(table), _chance(table, levels)
    rows = []
    for (a, b), (base, pal) in have.items():
        pal = pal if pal is not None else pd.Series(dtype=object)
        rows.append({
            "cell": cell_name(a, b), "study": base["study"],
            "baseline val / test (%)": _pair(base.get("val_accuracy_mean"), base.get("mean"), pct),
            "PAL val / test (%)": _pair(pal.get("val_accuracy_mean"), pal.get("mean"), pct),
            "PAL − baseline (points) [95% CI]": (f"{pct(pal.get('diff'), True)} "
                                                 f"{interval(pal.get('diff_ci_low'), pal.get('diff_ci_high'), True)}"),
            "verdict": pal.get("verdict") if isinstance(pal.get("verdict"), str) else UNDECIDED,
            "PAL ahead (seeds)": _ahead(pal),
            "alignment r baseline / PAL": _pair(base.get("test_alignment_constrained_mean"),
                                                pal.get("test_alignment_constrained_mean"), _r),
            "decoy share baseline / PAL (area)": (
                _pair(base.get("test_decoy_share_mean"), pal.get("test_decoy_share_mean"), _share)
                + (f" ({_share(base.get('test_decoy_area_share_mean'))})"
                   if _finite(base.get("test_decoy_area_share_mean")) else "")),
            "shortcut follow baseline / PAL (%)": _pair(base.get("test_shortcut_follow_mean"),
                                                        pal.get("test_shortcut_follow_mean"), pct),
            "baseline misled": _yes(base.get("misled")),
            "faces learned": _yes(base.get("faces_learned"), f"unknown (no {a} × none cell)"),
            "vs chance": ((chance_note(base, pal if len(pal) else None, chance) or "above") if levels is not None
                          else "unknown (no test-split counts)"),
        })  # fmt: skip
    for name in absent_cells(table, project):
        rows.append({"cell": name, "verdict": "no results"})
    return pd.DataFrame(rows, columns=["cell", "study", "verdict"] if not rows else None).fillna("").set_index("cell")


def _names(keys: list[str]) -> str:
    return ", ".join(keys) if keys else "none"


def regimes_headline(table: pd.DataFrame, levels: dict | None = None, project: Project | None = None) -> str:
    """The reading: where PAL helps, is neutral, hurts or is undecided; the largest decided effect; the misled
    cells where faces are learned; cells without results and cells at chance."""
    have, chance = cells(table), _chance(table, levels)
    if not have:
        return "The regime map has no cell with results yet."
    by: dict[str, list[str]] = {HELPS: [], NEUTRAL: [], HURTS: [], UNDECIDED: []}
    for (a, b), (_, pal) in have.items():
        verdict = pal.get("verdict") if pal is not None else UNDECIDED
        by[verdict if verdict in by else UNDECIDED].append(cell_name(a, b))
    said = [f"PAL helps in {_names(by[HELPS])}" if by[HELPS] else "PAL helps nowhere"]
    said += [f"{verb} {_names(by[key])}" for key, verb in ((NEUTRAL, "it is neutral in"), (HURTS, "it hurts in"),
                                                          (UNDECIDED, "undecided in")) if by[key]]
    text = [f"Regime map ({len(have)} cell{'s' if len(have) != 1 else ''}): " + "; ".join(said) + "."]
    best = largest_effect(table)
    text.append("No cell is decided, so there is no largest effect." if best is None else
                f"The largest decided effect: {cell_name(best['start'], best['shortcut'])}, {comparison_text(best)}, "
                f"PAL ahead in {_ahead(best)} seeds.")
    misled = [(k, base) for k, (base, _) in have.items() if base.get("misled") is True]
    learned = [cell_name(*k) for k, base in misled if base.get("faces_learned") is True]
    text.append(f"Misled cells where faces are learned: {_names(learned)}."
                if misled else "No cell's baseline is misled by its shortcut.")
    unlearned = [cell_name(*k) for k, base in misled if base.get("faces_learned") is False]
    if unlearned:
        text.append(f"Misled, but the start does not learn faces without a shortcut either: {_names(unlearned)}.")
    unknown = [cell_name(*k) for k, base in misled if base.get("faces_learned") is None]
    if unknown:
        text.append(f"Misled, with no cell of the same start without a shortcut to say whether faces are learned: "
                    f"{_names(unknown)}.")
    notes = [f"{cell_name(*k)} ({chance_note(base, pal, chance)})" for k, (base, pal) in have.items()
             if chance_note(base, pal, chance)]
    if notes:
        text.append(f"At chance, so not interpretable: {', '.join(notes)}.")
    absent = absent_cells(table, project)
    if absent:
        text.append(f"No results for {', '.join(absent)}.")
    unrun = [a for a in STARTS if a not in grid(table, project)[0]]
    if unrun:
        text.append(f"Starts this protocol's map does not run: {', '.join(unrun)} (docs/regimes.md says where they "
                    f"are measured).")
    return " ".join(text)
