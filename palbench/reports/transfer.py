"""Tests on another dataset (the protocol's ``transfer`` section, :mod:`palbench.transfer`): accuracy on
dataset B of the models trained on A, beside their accuracy on A.
"""

from __future__ import annotations

import pandas as pd

from palbench.reports.project import Project, class_names, dataset_levels
from palbench.reports.tables import at_chance, interval, mean_std, pct


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

