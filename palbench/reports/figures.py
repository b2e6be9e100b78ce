"""The paper's figures drawn from measured results (matplotlib; each function returns a Figure).

Accuracy is plotted in %, with the mean over seeds, its 95% t-interval (error bars; none with one seed),
each seed as a small grey dot, and the baseline as a line with its interval as a band.
"""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from palbench.reports.tables import pct
from palbench.vocabulary import method_name

PAL_COLOUR, BASE_COLOUR, HIGHLIGHT = "tab:blue", "tab:orange", "tab:red"


def _errors(rows: pd.DataFrame) -> np.ndarray:
    """``[2, n]`` error-bar lengths (in %) of the 95% CI; 0 where undefined (one seed)."""
    lo = (rows["mean"] - rows["ci_low"]).to_numpy(dtype=float)
    hi = (rows["ci_high"] - rows["mean"]).to_numpy(dtype=float)
    return 100 * np.nan_to_num(np.vstack([lo, hi]), nan=0.0)


def _baseline(ax, base: pd.Series) -> None:
    """The baseline's mean as a line and its 95% CI as a band."""
    ax.axhline(100 * base["mean"], color=BASE_COLOUR, lw=1.5, label=f"baseline (CE): {pct(base['mean'])}%")
    if np.isfinite(base["ci_low"]):
        ax.axhspan(100 * base["ci_low"], 100 * base["ci_high"], color=BASE_COLOUR, alpha=0.18, lw=0,
                   label="baseline 95% CI")


def _seed_dots(ax, xs: list[float], per_seed: list[dict[int, float]], spread: float) -> None:
    for x, seeds in zip(xs, per_seed):
        v = np.array(list(seeds.values()), dtype=float)
        if len(v) > 1:
            offsets = np.linspace(-spread, spread, len(v))
            ax.scatter(x + offsets, 100 * v, s=10, color="0.45", zorder=3, lw=0)
    if any(len(s) > 1 for s in per_seed):
        ax.scatter([], [], s=10, color="0.45", label="single seeds")


def _n_note(rows: pd.DataFrame) -> str:
    n = int(rows["n"].min())
    return f"n = {n} seeds, mean ± 95% CI" if n > 1 else "n = 1 seed: no confidence interval"


def display_positions(positions: list[dict], studied: list[str]) -> list[dict]:
    """Catalogue rows for the x axis: a ResNet stage alias (``layer3``, the same map as its last block) is
    dropped unless it was studied."""
    return [p for p in positions if not re.fullmatch(r"layer\d", p["name"]) or p["name"] in studied]


def plot_layers(
    table: pd.DataFrame, positions: list[dict], per_seed: dict[str, dict[int, float]], title: str
) -> Figure:
    """Fig. 3: mean test accuracy (95% CI) of PAL at each studied layer, every PAL layer on the x axis,
    dashed vertical lines after the layers that feed a max-pool, the baseline as a band.

    Args:
        table: the ``layers`` study table (``layer`` column; baseline first).
        positions: :func:`palbench.reports.maps.layer_positions` rows.
        per_seed: ``{config: {seed: accuracy}}``.
    """
    pal = table[~table["baseline"]]
    rows = display_positions(positions, list(pal["layer"]))
    index = {p["name"]: i for i, p in enumerate(rows)}
    missing = [layer for layer in pal["layer"] if layer not in index]
    if missing:
        raise ValueError(f"layers {missing} are not in the backbone's catalogue {list(index)}")
    fig, ax = plt.subplots(figsize=(max(6.5, 0.5 * len(rows) + 3), 4.2), layout="constrained")
    _baseline(ax, table.iloc[0])
    first = True
    for p in rows:
        if p["before_pool"]:
            ax.axvline(index[p["name"]] + 0.5, color="0.55", ls="--", lw=1, label="max-pool" if first else None)
            first = False
    xs = [index[layer] for layer in pal["layer"]]
    ax.errorbar(xs, 100 * pal["mean"], yerr=_errors(pal), fmt="o-", color=PAL_COLOUR, ms=6, capsize=4, lw=1.2,
                label="PAL", zorder=4)
    _seed_dots(ax, xs, [per_seed.get(c, {}) for c in pal["config"]], 0.12)
    ax.set_xticks(range(len(rows)), [p["name"] for p in rows], rotation=45 if len(rows) > 8 else 0,
                  ha="right" if len(rows) > 8 else "center")
    ax.set_xlim(-0.6, len(rows) - 0.4)
    return _accuracy_axes(fig, ax, "layer PAL is applied to (input → output)", title, table)


def plot_noise(table: pd.DataFrame, landmark_noise: float, per_seed: dict[str, dict[int, float]], title: str) -> Figure:
    """Fig. 4: mean test accuracy (95% CI) against the landmark-noise σ, the baseline as a band, the
    chosen ``landmark_noise`` circled and labelled."""
    pal = table[~table["baseline"]].sort_values("landmark_noise")
    xs = pal["landmark_noise"].astype(float).to_numpy()
    fig, ax = plt.subplots(figsize=(6.8, 4.2), layout="constrained")
    _baseline(ax, table.iloc[0])
    ax.errorbar(xs, 100 * pal["mean"], yerr=_errors(pal), fmt="o-", color=PAL_COLOUR, ms=6, capsize=4, lw=1.2,
                label="PAL", zorder=4)
    step = float(np.diff(xs).min()) if len(xs) > 1 else 1.0
    # σ from the paper's 0-5 to hundreds: linear up to 1, logarithmic past it, so that both ends can be read
    wide = len(xs) > 1 and xs.max() > 20 * max(step, 1.0)
    _seed_dots(ax, list(xs), [per_seed.get(c, {}) for c in pal["config"]], 0.06 * step)
    chosen = pal[np.isclose(xs, float(landmark_noise))].iloc[0]
    ax.scatter([float(landmark_noise)], [100 * chosen["mean"]], s=220, facecolors="none", edgecolors=HIGHLIGHT, lw=2,
               zorder=5, label=f"σ = {float(landmark_noise):g}: {pct(chosen['mean'])}%")
    if wide:
        fig.set_size_inches(8.2, 4.2)
        ax.set_xscale("symlog", linthresh=1.0, linscale=0.6)
        ax.set_xlim(xs.min() - 0.5 * step, xs.max() * 1.5)
    else:
        ax.set_xlim(xs.min() - 0.5 * step, xs.max() + 0.5 * step)
    ax.set_xticks(xs, [f"{x:g}" for x in xs])
    ax.minorticks_off()
    return _accuracy_axes(fig, ax, "landmark noise σ (pixels of a 224×224 crop)", title, table)


def _accuracy_axes(fig: Figure, ax, xlabel: str, title: str, table: pd.DataFrame) -> Figure:
    """Labels, title (with the seeds note), grid and legend shared by the accuracy plots."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{title}\n{_n_note(table)}", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8, frameon=False)
    return fig


def _frame(ax, colour: str | None = None) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    if colour:
        for s in ax.spines.values():
            s.set_edgecolor(colour)
            s.set_linewidth(3)


def plot_noisy_priors(preview: dict, landmark_noise: float, n_samples: int = 4) -> Figure:
    """Fig. 5: priors drawn from the jittered landmarks of every σ (columns) over real samples (rows),
    the chosen ``landmark_noise`` framed in red.

    Args:
        preview: ``previews/<data>/preview.npz``: ``images [K,H,W,3]`` uint8, ``priors [S,K,H,W]``,
            ``landmarks [S,K,68,2]``, ``landmark_noise [S]``.
    """
    sigmas = [float(s) for s in preview["landmark_noise"]]
    k = min(int(n_samples), len(preview["images"]))
    fig, axes = plt.subplots(k, len(sigmas), figsize=(1.7 * len(sigmas) + 0.3, 1.75 * k + 0.5),
                             layout="constrained", squeeze=False)
    for j, s in enumerate(sigmas):
        chosen = np.isclose(s, float(landmark_noise))
        for i in range(k):
            ax = axes[i, j]
            prior = preview["priors"][j, i]
            ax.imshow(preview["images"][i])
            ax.imshow(prior / max(float(prior.max()), 1e-12), cmap="inferno", alpha=0.55, vmin=0, vmax=1)
            pts = preview["landmarks"][j, i]
            ax.scatter(pts[:, 0], pts[:, 1], s=1.5, color="cyan", lw=0)
            h, w = prior.shape
            ax.set_xlim(-0.5, w - 0.5)
            ax.set_ylim(h - 0.5, -0.5)
            _frame(ax, HIGHLIGHT if chosen else None)
        axes[0, j].set_title(f"σ = {s:g}" + (" (shown)" if chosen else ""), fontsize=9,
                             color=HIGHLIGHT if chosen else "black", fontweight="bold" if chosen else "normal")
    fig.suptitle("Priors (eq. 8) from jittered landmarks (cyan), test images", fontsize=10)
    return fig


def _matrix(ax, m: np.ndarray, classes: list[str], title: str, diverging: bool = False) -> None:
    """One row-normalised confusion matrix with its values in % (``–`` and "absent" for a class with no
    sample in the split: its row is NaN, :func:`palbench.reports.confusion.row_normalise`)."""
    limit = float(np.nanmax(np.abs(m))) if diverging and np.isfinite(m).any() else 1.0
    limit = limit or 1.0
    ax.imshow(m, cmap="RdBu" if diverging else "Blues", vmin=-limit if diverging else 0, vmax=limit)
    for (i, j), v in np.ndenumerate(m):
        if not np.isfinite(v):
            text = "–"
        else:
            text = f"{100 * v:+.0f}" if diverging and round(100 * v) != 0 else f"{100 * v:.0f}"
        dark = np.isfinite(v) and abs(v) > 0.6 * limit
        ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
    absent = ~np.isfinite(m).any(axis=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), [f"{c} (absent)" if a else c for c, a in zip(classes, absent)], fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_title(title, fontsize=10)


def plot_confusions(base: np.ndarray, pal: np.ndarray, classes: list[str], titles: tuple[str, str]) -> Figure:
    """Fig. 6: row-normalised confusion matrices (rows = true class, values in % of the row) of the
    baseline and PAL side by side, and their difference.

    Args:
        base, pal: row-normalised matrices ``[K, K]`` (:func:`palbench.reports.confusion.row_normalise`).
        titles: panel titles of the baseline and PAL.
    """
    fig, axes = plt.subplots(1, 3, figsize=(14, 5), layout="constrained")
    _matrix(axes[0], base, classes, titles[0])
    _matrix(axes[1], pal, classes, titles[1])
    _matrix(axes[2], pal - base, classes, "PAL − baseline (points)", diverging=True)
    axes[0].set_ylabel("true class")
    return fig


def _overlay(ax, image: np.ndarray, heat: np.ndarray) -> None:
    """``image [S,S,3]`` in grey with ``heat [h,w]`` (min-max scaled) upsampled over it."""
    s = image.shape[0]
    ax.imshow(image.mean(axis=2), cmap="gray", vmin=0, vmax=1)
    lo, hi = float(heat.min()), float(heat.max())
    ax.imshow((heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat), cmap="inferno", alpha=0.65, vmin=0,
              vmax=1, extent=(-0.5, s - 0.5, s - 0.5, -0.5), interpolation="bilinear")
    _frame(ax)


def plot_attributions(maps: dict, classes: list[str]) -> Figure:
    """Fig. 2/7: per test image (columns) the input with its true class, the prior, PAL's attribution over
    the constrained and the free channels, the baseline's attribution (each map min-max scaled), and each
    model's prediction (green when right, red when wrong).

    Args:
        maps: :func:`palbench.reports.maps.attribution_maps`'s result.
    """
    rows = [("input", None), ("prior (eq. 8)", maps["prior"]),
            (f"PAL: constrained\nchannels 1–{maps['c1_channels']}", maps["pal_constrained"])]
    if maps["pal_free"] is not None:
        rows.append((f"PAL: free channels\n{maps['c1_channels'] + 1}–{maps['channels']}", maps["pal_free"]))
    rows.append(("baseline:\nall channels", maps["base_all"]))
    n = len(maps["labels"])
    fig, axes = plt.subplots(len(rows), n, figsize=(1.55 * n + 1.4, 1.75 * len(rows) + 0.6), layout="constrained",
                             squeeze=False)
    pal_row, base_row = len(rows) - 2, len(rows) - 1
    for j in range(n):
        image = maps["images"][j]
        axes[0, j].imshow(image)
        _frame(axes[0, j])
        axes[0, j].set_title(classes[maps["labels"][j]], fontsize=9)
        for i, (_, heat) in enumerate(rows[1:], start=1):
            _overlay(axes[i, j], image, heat[j])
        for row, key, who in ((pal_row, "pal_pred", "PAL"), (base_row, "base_pred", "base")):
            pred = int(maps[key][j])
            ok = pred == maps["labels"][j]
            axes[row, j].set_xlabel(f"{who}: {classes[pred]}", fontsize=8, color="tab:green" if ok else "tab:red")
    for i, (label, _) in enumerate(rows):
        axes[i, 0].set_ylabel(label, fontsize=9)
    fig.suptitle(f"{method_name(maps['method'])} attribution at {maps['layer']} ({maps['split']} images, "
                 f"seed {maps['seed']}); true class above, predictions below (green = right)", fontsize=10)
    return fig


def plot_backbones(summary: pd.DataFrame, title: str) -> Figure:
    """Table III on several backbones as a forest plot: per backbone (rows, the protocol's order top down),
    PAL − baseline in accuracy points with the 95% t-interval of the paired difference (none with one seed),
    the zero line; a backbone at chance (baseline or PAL) is drawn in grey and says so, a study without
    results says that instead of a point.

    Args:
        summary: :func:`palbench.reports.backbones.backbone_summary`.
    """
    n = len(summary)
    fig, ax = plt.subplots(figsize=(8.5, 0.5 * n + 1.6), layout="constrained")
    ys = np.arange(n)[::-1]
    labels = []
    for y, (_, row) in zip(ys, summary.iterrows()):
        where = f"{row['layer']}" + (f", {row['map']}" if row["map"] else "")
        if row["missing"]:
            labels.append(f"{row['backbone']} ({where})")
            ax.text(0, y, "  no results", va="center", ha="left", fontsize=8, color="0.45")
            continue
        chance = bool(row["base_at_chance"] or row["pal_at_chance"])
        labels.append(f"{row['backbone']} ({where})" + ("\nat chance" if chance else ""))
        diff, lo, hi = 100 * row["diff"], 100 * row["diff_ci_low"], 100 * row["diff_ci_high"]
        xerr = [[diff - lo], [hi - diff]] if np.isfinite(lo) and np.isfinite(hi) else None
        ax.errorbar([diff], [y], xerr=xerr, fmt="o", color="0.6" if chance else PAL_COLOUR, ms=6, capsize=3,
                    lw=1.4, zorder=3)
    ax.axvline(0, color="black", lw=1)
    ax.set_yticks(ys, labels, fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    finite = summary["diff"].to_numpy(dtype=float) if "diff" in summary else np.array([])
    if not np.isfinite(finite).any():
        ax.set_xlim(-1, 1)
    ax.set_xlabel("PAL − baseline, test accuracy points (paired over the same seeds)")
    pairs = int(np.nanmax(summary["n_pairs"])) if "n_pairs" in summary and summary["n_pairs"].notna().any() else 0
    note = (f"{pairs} paired seeds: mean difference and its 95% t-interval" if pairs > 1 else
            f"{pairs} paired seed{'s' if pairs != 1 else ''}: no interval")
    ax.set_title(f"{title}\n{note}", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig
