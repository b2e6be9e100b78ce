"""Do two runs of the pipeline reach the same verdicts? The claims report's tables of each, side by side.

    .venv/bin/python benchmarks/compare_claims.py RUN_A RUN_B --labels "seeds 0-2" "seeds 5-7" --name verdicts_seeds

RUN_A and RUN_B are project folders after `dvc repro` (their ``reports/tables/claims.csv`` and
``claims_summary.csv``), e.g. two clean clones with different ``seeds``. Writes
``benchmarks/calibration/<name>.md``: per claim, each run's verdict and whether they agree, and per part the
two differences with their intervals (95% per claim: 1 − 0.05/m for each of a claim's m parts). A verdict one
run decides and the other does not is *seed-sensitive*.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent / "speed"))
from common import markdown_table, publish  # noqa: E402

HERE = Path(__file__).resolve().parent / "calibration"
DECIDED = ("supported", "contradicted")


def _part(row: pd.Series) -> str:
    if pd.isna(row["diff"]):
        return row["verdict"]
    return f"{row['diff']:+.2f} [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}] {row['verdict']}"


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
    publish(args.name, "The claims' verdicts of two runs", text, folder=HERE)


if __name__ == "__main__":
    main()
