"""Table III: the paper's published rows beside the rows measured here, and the comparison study's readings
(Fig. 6 confusion, Fig. 7 attention).

The published rows are the only numbers typed into palbench's reports. They are copied from Bonnard,
Dapogny, Dhombres, Bailly, *Privileged Attribution Constrained Deep Networks for Facial Expression
Recognition*, ICPR 2022, Table III ("Comparison on RAF-DB and AffectNet. Accuracy scores in %"), one value
per method and dataset, without spread; ``None`` where the paper gives "—".
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from palbench.config.protocol import pretrain_weights, study_configs
from palbench.reports.project import (COMPARISON, Project, ReportError, chance_levels, class_names, comparison_studies,
                                      dataset_levels)
from palbench.reports.tables import (_finite, at_chance, comparison_text, config_settings, interval, mean_std, p_value,
                                     pct, read_study, row_normalise)
from palbench.results import reaches_chance
from palbench.vocabulary import arch_name

#: Bonnard et al. (ICPR 2022), Table III: (method [reference number in the paper], RAF-DB %, AffectNet %).
PAPER_TABLE_III: tuple[tuple[str, float | None, float | None], ...] = (
    ("IPA2LT [21]", 86.77, 57.31),
    ("THIN [22]", 87.81, 63.97),
    ("DACL [23]", 87.78, 65.20),
    ("EfficientFace [4]", 88.36, 63.70),
    ("PSR [24]", 88.98, 63.77),
    ("PAENet [25]", None, 65.29),
    ("DMUE [26]", 89.42, None),
    ("FDLR [27]", 89.47, None),
    ("Baseline (Resnet50)", 88.6, 62.14),
    ("Ours (Resnet50 + PAL)", 89.54, 65.83),
)
PAPER_SOURCE = "paper, Table III (published)"
PAPER_DATASETS = ("RAF-DB", "AffectNet")


def dataset_column(project: Project) -> str:
    """The Table III column of this protocol's dataset: ``RAF-DB``, ``AffectNet`` or e.g. ``synth (this protocol)``."""
    words = str(project.params["data"]["command"]).split()
    source = words[1] if words[:1] == ["import"] and len(words) > 1 else words[0] if words else ""
    return {"rafdb": "RAF-DB", "affectnet": "AffectNet"}.get(source, f"{project.data_name} (this protocol)")


def paper_improvement() -> dict[str, float]:
    """PAL − baseline in points per dataset, computed from the published rows (the last two)."""
    (_, raf_b, aff_b), (_, raf_p, aff_p) = PAPER_TABLE_III[-2:]
    return {"RAF-DB": round(raf_p - raf_b, 2), "AffectNet": round(aff_p - aff_b, 2)}


def measured_labels(project: Project, table: pd.DataFrame) -> list[str]:
    """``Baseline (VGG16-BN ×0.125)`` / ``Ours (VGG16-BN ×0.125 + PAL)`` (with λ when several are studied)."""
    settings = config_settings(project, table)
    several = (~table["baseline"]).sum() > 1
    labels = []
    for config, base in zip(table["config"], table["baseline"]):
        s = settings[config]
        arch = arch_name(s.get("arch", "?"), s.get("width", 1.0))
        lam = f", λ = {float(s.get('pal_weight', 1)):g}" if several else ""
        labels.append(f"Baseline ({arch})" if base else f"Ours ({arch} + PAL{lam})")
    return labels


def comparison_table(project: Project, table: pd.DataFrame) -> pd.DataFrame:
    """Table III: the paper's rows (source ``paper, Table III (published)``) and the rows measured by this
    protocol (``measured here``), accuracy in %; measured rows carry mean ± std over seeds, the 95% CI, the
    difference to the baseline and the paired p-value."""
    column = dataset_column(project)
    columns = list(PAPER_DATASETS) + ([column] if column not in PAPER_DATASETS else [])
    rows = []
    for method, raf, aff in PAPER_TABLE_III:
        values = {d: f"{v:.2f}" if v is not None else "—" for d, v in zip(PAPER_DATASETS, (raf, aff))}
        rows.append({"Method": method, "Source": PAPER_SOURCE, **{c: values.get(c, "") for c in columns},
                     "95% CI": "", "Δ vs baseline (points)": "", "p (paired t)": ""})
    n = len(project.seeds)
    source = f"measured here (protocol {project.protocol}, n = {n} seed{'s' if n != 1 else ''})"
    chance = at_chance(table, chance_levels(project))
    for label, (_, r), a in zip(measured_labels(project, table), table.iterrows(), chance):
        rows.append({"Method": label, "Source": source + (", at chance" if a else ""),
                     **{c: (mean_std(r) if c == column else "") for c in columns},
                     "95% CI": interval(r["ci_low"], r["ci_high"]),
                     "Δ vs baseline (points)": "" if r["baseline"] else
                     f"{pct(r['diff'], True)} {interval(r['diff_ci_low'], r['diff_ci_high'], True)}".strip(),
                     "p (paired t)": "" if r["baseline"] else p_value(r["p"])})
    return pd.DataFrame(rows).set_index("Method")


def comparison_headline(project: Project, table: pd.DataFrame) -> str:
    """Measured PAL − baseline beside the paper's (computed from its published rows)."""
    pal = table[~table["baseline"]].iloc[0]
    paper = paper_improvement()
    return (f"Measured on {dataset_column(project)}: {comparison_text(pal)}. The paper's Table III gives PAL − "
            f"baseline = {paper['RAF-DB']:+.2f} points on RAF-DB and {paper['AffectNet']:+.2f} on AffectNet "
            "(ResNet50, single published numbers without spread).")


def comparison_pair(project: Project, table: pd.DataFrame) -> tuple[str, str]:
    """``(baseline config, PAL config)`` of the comparison study (its first PAL configuration)."""
    pal = table[~table["baseline"]]
    return str(table["config"].iloc[0]), str(pal["config"].iloc[0])


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


def attention_headline(table: pd.DataFrame, shown: dict) -> str:
    """Predictions on the images shown and the test-set attention metrics of the comparison study.

    Args:
        table: the comparison study table (``test_alignment_*_mean``, ``test_decoy_share_mean`` over seeds).
        shown: :func:`palbench.reports.maps.attribution_maps`'s result (``labels``, ``pal_pred``, ``base_pred``).
    """
    n = len(shown["labels"])
    right = lambda pred: int((np.asarray(pred) == np.asarray(shown["labels"])).sum())  # noqa: E731
    base, pal = table.iloc[0], table[~table["baseline"]].iloc[0]
    fmt = lambda v: f"{v:.2f}" if np.isfinite(v) else "–"  # noqa: E731
    text = (f"On the {n} test images shown, PAL predicts {right(shown['pal_pred'])}/{n} correctly, the baseline "
            f"{right(shown['base_pred'])}/{n}. Over the whole {shown['split']} set (mean over seeds), the "
            f"constrained channels' attribution correlates with the prior at r = "
            f"{fmt(pal['test_alignment_constrained_mean'])} for PAL vs {fmt(base['test_alignment_constrained_mean'])} "
            f"for the baseline (free channels: {fmt(pal['test_alignment_free_mean'])} vs "
            f"{fmt(base['test_alignment_free_mean'])})")
    if np.isfinite(pal.get("test_decoy_share_mean", np.nan)):
        text += (f"; share of the input attribution on the decoy: PAL {pal['test_decoy_share_mean']:.3f} vs "
                 f"baseline {base['test_decoy_share_mean']:.3f} "
                 f"(a uniform map: {base['test_decoy_area_share_mean']:.3f})")
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


def prediction_table(maps: dict, classes: list[str]) -> pd.DataFrame:
    """The images of Fig. 7: samples.csv row, true class, each model's prediction."""
    return pd.DataFrame({"samples.csv row": maps["index"], "true class": [classes[k] for k in maps["labels"]],
                         "PAL prediction": [classes[k] for k in maps["pal_pred"]],
                         "baseline prediction": [classes[k] for k in maps["base_pred"]]}).set_index("samples.csv row")


def transfer_tables(project: Project) -> list[tuple[str, str, pd.DataFrame | str]]:
    """Per entry of the protocol's ``transfer`` section (:mod:`palbench.transfer`): ``(name, heading, table)`` —
    accuracy on dataset B per configuration (mean ± std, 95% CI, Δ vs baseline, at chance on B's split or
    not) beside the accuracy on the training dataset's test split — or ``(heading, why there is none)``."""
    out: list[tuple[str, str, pd.DataFrame | str]] = []
    for name, entry in (project.params.get("transfer") or {}).items():
        split = entry.get("split", "test")
        heading = (f"Trained on {project.data_name}, tested on {name} ({split} split; runs of the "
                   f"{entry.get('study', 'comparison')} study)")
        path = project.path("transfer", name, "summary.csv")
        if not path.is_file():
            out.append((name, heading, f"{path} not found: run `dvc repro` (the transfer@{name} stage)."))
            continue
        table = pd.read_csv(path)
        levels = dataset_levels(project.path("data", name, "meta.json"), split, len(class_names(project)))
        chance = at_chance(table, levels)
        shown = pd.DataFrame({
            "configuration": table["config"],
            f"Acc. on {name} (%) mean ± std": table.apply(mean_std, axis=1),
            "95% CI": [interval(lo, hi) for lo, hi in zip(table["ci_low"], table["ci_high"])],
            "Δ vs baseline (points)": ["" if c == "baseline" else
                                       f"{pct(d, True)} {interval(lo, hi, True)}".strip()
                                       for c, d, lo, hi in zip(table["config"], table["diff"], table["diff_ci_low"],
                                                               table["diff_ci_high"])],
            f"vs chance on {name}": ["at chance" if a else "above" for a in chance] if levels else "unknown",
            f"Acc. on {project.data_name} {project.split} (%)": [pct(v) for v in table["test_accuracy_mean"]],
        }).set_index("configuration")
        out.append((name, heading, shown))
    return out


def show_transfer(project: Project) -> None:
    """Display :func:`transfer_tables` (saved as ``tables/transfer_<name>.csv``), or say there is none."""
    from IPython.display import Markdown, display

    from palbench.reports.project import save_table

    entries = transfer_tables(project)
    if not entries:
        display(Markdown("This protocol has no `transfer` section: no test on another dataset (add one to test "
                         "the comparison study's runs on dataset B; see `palbench/transfer.py`)."))
    for name, heading, table in entries:
        display(Markdown(f"**{heading}**"))
        if isinstance(table, str):
            display(Markdown(table))
        else:
            save_table(table, project, f"transfer_{name}")
            display(table)


# ---------------------------------------------------------------- Table III on several backbones
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
