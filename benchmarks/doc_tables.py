"""Print the markdown tables the README and docs/pipeline.md quote, from a run's ``results/*.csv``.

A number in the README comes from a file the pipeline wrote: this script is how the developers copy it, so the
tables can be regenerated after any ``dvc repro`` (``python benchmarks/doc_tables.py [RESULTS_DIR]``).
It prints the regime map (``regimes.csv``) and the paper's grid in the map's chosen cell (``ablation``,
``channels``, ``layers``, ``noise``), and nothing else; formatting only, no statistic is recomputed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from palbench.regimes import cell_name
from palbench.reports.regimes import cells
from palbench.reports.tables import interval, mean_std, pct

MINUS = "\u2212"  # the README's minus sign; the reports' formatters write ASCII hyphens


def _minus(text: str) -> str:
    return text.replace("-", MINUS)


def regime_map(results: Path) -> str:
    """The README's map: one row per cell, baseline val / test, PAL test, PAL − baseline [CI], ahead, verdict."""
    lines = ["| start × shortcut | baseline val / test | PAL test | PAL − baseline | PAL ahead | verdict |",
             "|---|---|---|---|---|---|"]
    for (start, shortcut), (base, pal) in cells(pd.read_csv(results / "regimes.csv")).items():
        if pal is None:
            continue
        misled = " (misled)" if str(base["misled"]) == "True" else ""
        verdict = pal["verdict"] if str(pal["decided"]) == "True" else "undecided"
        cell = cell_name(start, shortcut)
        diff = _minus(f"{pct(pal['diff'], True)} {interval(pal['diff_ci_low'], pal['diff_ci_high'], True)}")
        if verdict in ("helps", "hurts"):
            cell, diff, verdict = f"**{cell}**", f"**{diff}**", f"**{verdict}**"
        lines.append(f"| {cell} | {pct(base['val_accuracy_mean'])} / {pct(base['mean'])}{misled} | "
                     f"{pct(pal['mean'])} | {diff} | {int(pal['pal_ahead'])}/{int(pal['n_pairs'])} | {verdict} |")
    return "\n".join(lines)


LABELS = {"grad": "Grad", "grad_input": "Grad×Input", "all": "All channels", "mean": "Mean"}


def _label(study: str, row: pd.Series) -> str:
    if str(row["baseline"]) == "True":
        return "baseline (CE)"
    if study == "layers":
        return f"Grad, Mean of half, {row['layer']}"
    if study == "noise":
        return f"Grad×Input, Mean of half, σ = {float(row['landmark_noise']):g}"
    if study == "channels":
        return f"Grad×Input, C1 = {float(row['c1']):g} C"
    method, strategy, c1 = LABELS[row["method"]], row["strategy"], float(row["c1"])
    if strategy == "all":
        return f"{method}, All channels"
    return f"{method}, Mean of half" if c1 == 0.5 else f"{method}, Mean (C1 = {c1:g} C)"


def grid(results: Path) -> str:
    """docs/pipeline.md's grid table: every configuration of the four studies, its baseline once."""
    lines = ["| configuration | val acc | test acc | PAL − baseline | alignment | shortcut follow |",
             "|---|---|---|---|---|---|"]
    seen: set[str] = set()  # a configuration shared by two studies (the default PAL, its baseline) is listed once
    for study in ("ablation", "channels", "layers", "noise"):
        path = results / f"{study}.csv"
        if not path.is_file():
            continue
        for _, row in pd.read_csv(path).iterrows():
            base = str(row["baseline"]) == "True"
            if row["config"] in seen:
                continue
            seen.add(row["config"])
            diff = "—" if base else _minus(f"{pct(row['diff'], True)} "
                                           f"{interval(row['diff_ci_low'], row['diff_ci_high'], True)}, "
                                           f"p = {row['p']:.3f}")
            alignment = _minus(f"{row['test_alignment_constrained_mean']:.2f}")
            lines.append(f"| {_label(study, row)} | {pct(row['val_accuracy_mean'])} | {mean_std(row)} "
                         f"{interval(row['ci_low'], row['ci_high'])} | {diff} | {alignment} | "
                         f"{pct(row['test_shortcut_follow_mean'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default="results", type=Path)
    args = parser.parse_args(argv)
    if not (args.results / "regimes.csv").is_file():
        print(f"{args.results / 'regimes.csv'}: not found; run `dvc repro` first", file=sys.stderr)
        return 1
    print(regime_map(args.results), grid(args.results), sep="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
