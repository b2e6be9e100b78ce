"""The claims' forest plot: every part's paired difference with its interval, coloured by verdict.

Matplotlib is imported here only: ``import palbench.claims`` does not load this module (the reports do,
:func:`palbench.reports.plot_claims`).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from palbench.claims.verdicts import CONTRADICTED, NOT_TESTED, SUPPORTED, UNDECIDED

#: Colour of each verdict of :mod:`palbench.claims.verdicts` in the forest plot.
VERDICT_COLOURS = {SUPPORTED: "tab:green", CONTRADICTED: "tab:red", UNDECIDED: "0.35", NOT_TESTED: "0.6"}


def plot_claims(parts: pd.DataFrame, title: str) -> Figure:
    """The paper's claims as a forest plot: per claim part (rows, grouped by claim, labelled with the sign the
    paper claims), the paired difference A − B in points with its interval (family-wise 95% per claim, the
    ``confidence`` column; none with one seed), coloured
    by verdict, and the zero line; the slope against σ (points per pixel of σ) is drawn as a square.

    Args:
        parts: :func:`palbench.claims.claims_table` (:data:`~palbench.claims.verdicts.COLUMNS`).
    """
    n = len(parts)
    fig, ax = plt.subplots(figsize=(9.5, 0.34 * n + 1.6), layout="constrained")
    ys = np.arange(n)[::-1]
    for y, (_, row) in zip(ys, parts.iterrows()):
        colour = VERDICT_COLOURS.get(row["verdict"], "black")
        if not np.isfinite(row["diff"]):
            ax.text(0, y, f"  {row['verdict']}", va="center", ha="left", fontsize=8, color=colour)
            continue
        lo, hi = row["ci_low"], row["ci_high"]
        xerr = [[row["diff"] - lo], [hi - row["diff"]]] if np.isfinite(lo) and np.isfinite(hi) else None
        ax.errorbar([row["diff"]], [y], xerr=xerr, fmt="o" if row["unit"] == "points" else "s", color=colour,
                    ms=6, capsize=3, lw=1.4, zorder=3)
    ax.axvline(0, color="black", lw=1)
    for y in ys[1:][parts["claim"].to_numpy()[1:] != parts["claim"].to_numpy()[:-1]]:
        ax.axhline(y + 0.5, color="0.85", lw=0.8)
    claimed = ["< 0" if c == "A < B" else "> 0" for c in parts["claimed"]]
    ax.set_yticks(ys, [f"({c}) {p} {s}" for c, p, s in zip(parts["claim"], parts["part"], claimed)], fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    if not np.isfinite(parts["diff"].to_numpy(dtype=float)).any():
        ax.set_xlim(-1, 1)
    for verdict, colour in VERDICT_COLOURS.items():
        if (parts["verdict"] == verdict).any():
            ax.scatter([], [], color=colour, label=verdict)
    ax.set_xlabel("A − B, accuracy points (squares: the slope against σ, points per pixel of σ); "
                  "the paper claims the sign on the left")
    n_pairs = int(parts["n_pairs"].max()) if n else 0
    note = (f"up to {n_pairs} paired seeds: mean difference, t-interval at 95% per claim (Bonferroni)"
            if n_pairs > 1 else
            f"{n_pairs} paired seed{'s' if n_pairs != 1 else ''}: no interval, nothing can be decided")
    ax.set_title(f"{title}\n{note}", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8, frameon=False, title="verdict", title_fontsize=8)
    return fig
