"""Do two runs of the pipeline reach the same verdicts? The regime map and the claims of each, side by side.

    .venv/bin/python benchmarks/compare_claims.py RUN_A RUN_B --labels "seeds 0-2" "seeds 5-7" --name verdicts_seeds

RUN_A and RUN_B are project folders after `dvc repro` (their ``reports/tables/claims.csv`` and
``claims_summary.csv``), e.g. two clean clones with different ``seeds``. Writes
``benchmarks/calibration/<name>.md``: per claim, each run's verdict and whether they agree, and per part the
two differences with their intervals (95% per claim: 1 − 0.05/m for each of a claim's m parts). A verdict one
run decides and the other does not is *seed-sensitive*. When both have a regime map (``results/regimes.csv``),
each cell's verdict in each run, and the verdict of the two runs' seeds pooled (``results/runs.csv``: the paired
difference over every seed either trained, by the map's own rule, :func:`palbench.regimes.decision`); also
written as ``<name>_regimes.csv``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from palbench.config import read_params
from palbench.config.protocol import study_seeds
from palbench.io import write_text
from palbench.regimes import cell_name, decision, pal_ahead
from palbench.reports.regimes import cells
from palbench.results import paired_comparison

sys.path.insert(0, str(Path(__file__).resolve().parent / "speed"))
from common import markdown_table, publish  # noqa: E402

HERE = Path(__file__).resolve().parent / "calibration"
DECIDED = ("supported", "contradicted")


def _part(row: pd.Series) -> str:
    if pd.isna(row["diff"]):
        return row["verdict"]
    return f"{row['diff']:+.2f} [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}] {row['verdict']}"


def _cells(run: Path) -> dict[str, tuple[str, str, pd.Series]]:
    """``{study: (baseline config, PAL config, PAL row)}`` of a run's ``results/regimes.csv``."""
    pairs = cells(pd.read_csv(run / "results" / "regimes.csv")).values()
    return {base["study"]: (base["config"], pal["config"], pal) for base, pal in pairs if pal is not None}


def _verdict(row: pd.Series | dict) -> str:
    ci = f"[{100 * row['diff_ci_low']:+.1f}, {100 * row['diff_ci_high']:+.1f}]"
    return f"{decision(row)['verdict']}: {100 * row['diff']:+.1f} {ci}"


def regime_comparison(runs: list[Path], labels: list[str]) -> tuple[str, list[str], pd.DataFrame]:
    """The map's cells in both runs and pooled: markdown, the cells whose verdicts differ, and the table."""
    cells = [_cells(r) for r in runs]
    params = [read_params(r / "params.yaml") for r in runs]
    tables = [pd.read_csv(r / "results" / "runs.csv") for r in runs]
    rows, sensitive, records = [], [], []
    for study, (base, pal, row_a) in cells[0].items():
        if study not in cells[1]:
            continue
        row_b = cells[1][study][2]
        # each run's seeds of this cell (a configuration may have more, for another study)
        per_seed = pd.concat([t[t["seed"].isin(study_seeds(p, study))] for t, p in zip(tables, params)])
        acc = {c: {int(s): float(v) for s, v in per_seed[per_seed["config"] == c].drop_duplicates("seed")
                   [["seed", "test_accuracy"]].itertuples(index=False)} for c in (base, pal)}
        pooled = paired_comparison(acc[pal], acc[base])
        verdicts = [decision(row_a)["verdict"], decision(row_b)["verdict"], decision(pooled)["verdict"]]
        name = cell_name(row_a["start"], row_a["shortcut"])
        if verdicts[0] != verdicts[1]:
            sensitive.append(name)
        ahead = pal_ahead(acc[pal], acc[base])
        rows.append([name, _verdict(row_a), _verdict(row_b), f"{_verdict(pooled)}, PAL ahead {ahead}/{pooled['n_pairs']}",
                     "yes" if verdicts[0] == verdicts[1] else "**no**"])
        records.append({"cell": name, "study": study, labels[0]: verdicts[0], labels[1]: verdicts[1],
                        "pooled": verdicts[2], "pooled_diff": pooled["diff"], "pooled_ci_low": pooled["diff_ci_low"],
                        "pooled_ci_high": pooled["diff_ci_high"], "pooled_n": pooled["n_pairs"], "pooled_ahead": ahead})
    text = ("Regime map: PAL − baseline in points [95% CI] and the verdict of each run, and of both runs' seeds "
            f"pooled. Seed-sensitive cells: {', '.join(sensitive) or 'none'}.\n\n"
            + markdown_table(["cell", labels[0], labels[1], "pooled", "same"], rows))
    return text, sensitive, pd.DataFrame(records)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs=2, help="two project folders after dvc repro")
    ap.add_argument("--labels", nargs=2, default=["run A", "run B"])
    ap.add_argument("--name", default="verdicts")
    args = ap.parse_args()
    tables = [Path(r) / "reports" / "tables" for r in args.runs]
    summaries = [pd.read_csv(t / "claims_summary.csv").set_index("claim") for t in tables]
    parts = [pd.read_csv(t / "claims.csv").set_index(["claim", "part"]) for t in tables]
    a, b = args.labels
    rows, sensitive = [], []
    for claim in summaries[0].index:
        va, vb = summaries[0].at[claim, "verdict"], summaries[1].at[claim, "verdict"]
        same = va == vb
        if (va in DECIDED or vb in DECIDED) and not same:
            sensitive.append(claim)
        rows.append([claim, summaries[0].at[claim, "statement"], va, vb, "yes" if same else "**no**"])
    detail = [[c, p, _part(parts[0].loc[(c, p)]), _part(parts[1].loc[(c, p)])]
              for c, p in parts[0].index if (c, p) in parts[1].index]
    decided = [c for c in summaries[0].index if summaries[0].at[c, "verdict"] in DECIDED]
    text = (f"Runs: `{args.runs[0]}` ({a}) and `{args.runs[1]}` ({b}).\n\n"
            f"Claims decided by {a}: {', '.join(decided) or 'none'}; seed-sensitive (decided by one run, not the "
            f"same in the other): {', '.join(sensitive) or 'none'}.\n\n"
            + markdown_table(["claim", "statement", a, b, "same"], rows)
            + "\n\nParts (difference in points, interval at 95% per claim — Bonferroni over the claim's parts —, "
              "verdict):\n\n"
            + markdown_table(["claim", "part", a, b], detail))
    if all((Path(r) / "results" / "regimes.csv").is_file() for r in args.runs):
        regimes, _, table = regime_comparison([Path(r) for r in args.runs], [a, b])
        text = regimes + "\n\n" + text
        write_text(HERE / f"{args.name}_regimes.csv", table.to_csv(index=False))
    publish(args.name, "The verdicts of two runs: regime map and claims", text, folder=HERE)


if __name__ == "__main__":
    main()
