"""Table III on several backbones: the comparison study and every ``comparison-<name>`` study side by side —
each backbone's pretraining, baseline and PAL accuracy, their paired difference, and which are at chance.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from palbench.config.protocol import pretrain_weights, study_configs
from palbench.reports.comparison import comparison_headline
from palbench.reports.project import COMPARISON, Project, ReportError, chance_levels, comparison_studies
from palbench.reports.tables import _finite, at_chance, comparison_text, interval, mean_std, p_value, pct, read_study
from palbench.results import reaches_chance
from palbench.vocabulary import arch_name


def _pretraining(project: Project, weights: object) -> dict:
    """The pretraining entry whose ``weights.pt`` a configuration loads: ``name``, its best validation accuracy
    ``val`` and whether that is at chance — within two binomial standard errors of 1/K over its K pretext classes
    on its validation images (``pretrain/<name>/pretrain.json``; NaN and False before the stage ran)."""
    for name in project.params.get("pretraining") or {}:
        if str(weights) != pretrain_weights(name):
            continue
        path = project.path("pretrain", name, "pretrain.json")
        info = json.loads(path.read_text()) if path.is_file() else {}
        val = (info.get("metrics") or {}).get("best_val_accuracy")
        val = float(val) if val is not None else np.nan
        k, n = info.get("classes"), (info.get("images") or {}).get("val")
        chance = bool(k and n and np.isfinite(val) and reaches_chance([np.nan], [val], 1 / k, n)[0])
        return {"name": name, "val": val, "chance": chance}
    return {"name": None, "val": np.nan, "chance": False}


def backbone_summary(project: Project, maps: dict[str, tuple[int, int, int]] | None = None) -> pd.DataFrame:
    """One row per comparison study (:func:`comparison_studies`): its backbone and PAL settings from the
    protocol (``arch, width, size, layer, prior_sigma, weights``; ``map`` = C×H×W of the layer's map when
    ``maps`` has the study, :func:`palbench.reports.maps.backbone_maps`), its pretraining (``pretraining``,
    ``pretrain_val``, ``pretrain_chance``), and from ``results/<study>.csv`` the baseline's and PAL's test
    accuracy (``base_*``, ``pal_*``: mean, std, ci_low, ci_high, alignment, decoy share), the paired difference
    (``diff, diff_ci_low, diff_ci_high, p, n_pairs``) and the at-chance flags
    (:func:`~palbench.reports.tables.at_chance`); ``missing`` says why a study has no results (empty when it has)."""
    levels = chance_levels(project)
    rows = []
    for study in comparison_studies(project):
        confs = study_configs(project.params, study)
        pal = confs[1] if len(confs) > 1 else confs[0]
        pre = _pretraining(project, pal.get("weights"))
        c_h_w = (maps or {}).get(study)
        row = {"study": study, "backbone": arch_name(pal["arch"], pal.get("width", 1.0)), "arch": pal["arch"],
               "width": float(pal.get("width", 1.0)), "size": int(pal["size"]), "layer": str(pal["layer"]),
               "map": "×".join(str(v) for v in c_h_w) if c_h_w else "", "prior_sigma": pal.get("prior_sigma"),
               "weights": pal.get("weights"), "pretraining": pre["name"], "pretrain_val": pre["val"],
               "pretrain_chance": pre["chance"], "missing": ""}
        try:
            table = read_study(project, study)
        except ReportError as e:
            rows.append({**row, "missing": str(e)})
            continue
        base, alt = table.iloc[0], table[~table["baseline"]]
        if alt.empty:
            rows.append({**row, "missing": f"results/{study}.csv has no PAL row"})
            continue
        first = alt.iloc[0]
        chance = at_chance(table.loc[[0, first.name]], levels)
        for prefix, r in (("base", base), ("pal", first)):
            row.update({f"{prefix}_{k}": float(r[k]) for k in ("mean", "std", "ci_low", "ci_high")})
            for key, column in (("alignment", "test_alignment_constrained_mean"), ("decoy", "test_decoy_share_mean")):
                row[f"{prefix}_{key}"] = float(r[column]) if column in r and pd.notna(r[column]) else np.nan
        row.update({k: float(first[k]) for k in ("diff", "diff_ci_low", "diff_ci_high", "p", "n_pairs")})
        row.update({"base_at_chance": bool(chance[0]), "pal_at_chance": bool(chance[1])})
        rows.append(row)
    return pd.DataFrame(rows)


def _chance_word(row: pd.Series) -> str:
    if row["missing"]:
        return "no results"
    both = [w for w, f in (("baseline", row["base_at_chance"]), ("PAL", row["pal_at_chance"])) if f]
    return "above" if not both else f"{' and '.join(both)} at chance"


def backbone_table(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`backbone_summary` formatted, one row per backbone: layer and its map, input size, pretraining val
    accuracy, baseline and PAL test accuracy (% mean ± std over seeds), PAL − baseline (points, 95% CI of the
    paired difference, paired p), whether either is at chance, alignment of the constrained channels with the
    prior (PAL / baseline; not interpretable at chance) and the decoy share where the data have a decoy."""
    def pair(a: float, b: float, digits: int) -> str:
        return " / ".join(f"{v:.{digits}f}" if _finite(v) else "–" for v in (a, b))

    rows = []
    for _, s in summary.iterrows():
        ok = not s["missing"]
        pre = ("–" if not _finite(s["pretrain_val"]) else
               pct(s["pretrain_val"]) + (" (at chance)" if s["pretrain_chance"] else ""))
        out = {"backbone": s["backbone"], "study": s["study"],
               "layer (C×H×W)": f"{s['layer']} ({s['map']})" if s["map"] else s["layer"],
               "input (px)": int(s["size"]), "pretraining val (%)": pre,
               "baseline (%) mean ± std": mean_std({"mean": s["base_mean"], "std": s["base_std"]}) if ok else "–",
               "PAL (%) mean ± std": mean_std({"mean": s["pal_mean"], "std": s["pal_std"]}) if ok else "–",
               "PAL − baseline (points) [95% CI]": (
                   f"{pct(s['diff'], True)} {interval(s['diff_ci_low'], s['diff_ci_high'], True)}" if ok else "–"),
               "p (paired t)": p_value(s["p"]) if ok else "–",
               "seeds paired": int(s["n_pairs"]) if ok and _finite(s["n_pairs"]) else 0,
               "vs chance": _chance_word(s)}
        alignment = pair(s.get("pal_alignment", np.nan), s.get("base_alignment", np.nan), 2) if ok else "–"
        if ok and (s["base_at_chance"] or s["pal_at_chance"]):
            alignment += " (not interpretable: at chance)"
        out["alignment r PAL / baseline"] = alignment
        if "pal_decoy" in summary and summary["pal_decoy"].notna().any():
            out["decoy share PAL / baseline"] = pair(s["pal_decoy"], s["base_decoy"], 3) if ok else "–"
        rows.append(out)
    return pd.DataFrame(rows).set_index("backbone")


def backbones_headline(summary: pd.DataFrame) -> str:
    """PAL − baseline per backbone (paired over the same seeds), then which backbones are at chance (after
    pretraining or in the test) and which studies have no results, in plain words."""
    done = summary[summary["missing"] == ""]
    parts = [f"{s['backbone']} at {s['layer']}: {comparison_text(s)}" for _, s in done.iterrows()]
    text = (f"PAL at a late layer against each backbone's own baseline ({len(summary)} backbones): "
            + ("; ".join(parts) if parts else "no backbone has results") + ".")
    chance = [f"{s['backbone']} ({_chance_word(s)})" for _, s in done.iterrows()
              if s["base_at_chance"] or s["pal_at_chance"]]
    if chance:
        text += (f" At chance on the test split, so their differences and alignment are not interpretable: "
                 f"{', '.join(chance)}.")
    pre = [s["backbone"] for _, s in summary.iterrows() if s["pretrain_chance"]]
    if pre:
        text += f" Still at chance after pretraining: {', '.join(pre)}."
    missing = [f"{s['study']} ({s['missing']})" for _, s in summary.iterrows() if s["missing"]]
    if missing:
        text += f" No results for {'; '.join(missing)}."
    return text


def comparison_reading(project: Project, table: pd.DataFrame, summary: pd.DataFrame | None = None) -> str:
    """The comparison report's reading: :func:`comparison_headline`, and with several comparison studies
    (:func:`comparison_studies`) :func:`backbones_headline` of every backbone (of ``summary``, default
    :func:`backbone_summary`)."""
    if len(comparison_studies(project)) < 2:
        return comparison_headline(project, table)
    summary = backbone_summary(project) if summary is None else summary
    return f"{comparison_headline(project, table)} {backbones_headline(summary)}"


def show_backbones(project: Project) -> pd.DataFrame | None:
    """Display the backbones side by side — :func:`backbone_table` (saved as ``tables/backbones.csv``) and
    :func:`~palbench.reports.figures.plot_backbones` (``figures/backbones.png``) — when the protocol has
    several comparison studies; else say how to add some. Returns the summary (``None`` with one study)."""
    from IPython.display import Markdown, display

    from palbench.reports.project import save_figure, save_table

    studies = comparison_studies(project)
    if len(studies) < 2:
        display(Markdown(f"This protocol compares one backbone (`{', '.join(studies) or COMPARISON}`). A protocol "
                         "with `comparison-<name>` studies — the same comparison with another `arch`, `width`, "
                         "`layer` and `weights` in their `set` (e.g. `synthetic-backbones`) — shows each backbone "
                         "here."))
        return None
    import matplotlib.pyplot as plt

    from palbench.reports.figures import plot_backbones
    from palbench.reports.maps import backbone_maps

    summary = backbone_summary(project, backbone_maps(project))
    table = backbone_table(summary)
    save_table(table, project, "backbones")
    display(table)
    fig = plot_backbones(summary, f"PAL − baseline per backbone — {project.data_name}")
    save_figure(fig, project, "backbones")
    display(fig)
    plt.close(fig)
    return summary
