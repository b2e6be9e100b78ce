"""Table III: the paper's published rows beside the rows measured here.

The published rows are the only numbers typed into palbench's reports. They are copied from Bonnard,
Dapogny, Dhombres, Bailly, *Privileged Attribution Constrained Deep Networks for Facial Expression
Recognition*, ICPR 2022, Table III ("Comparison on RAF-DB and AffectNet. Accuracy scores in %"), one value
per method and dataset, without spread; ``None`` where the paper gives "—".
"""

from __future__ import annotations

import pandas as pd

from palbench.reports.project import Project, chance_levels
from palbench.reports.tables import at_chance, comparison_text, config_settings, interval, mean_std, p_value, pct
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

