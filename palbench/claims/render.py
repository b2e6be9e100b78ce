"""The claims as a reader sees them: the headline count of verdicts, the caveats that limit them (one seed,
studies the protocol lacks, configurations at chance), and the parts as a readable table.

The forest plot of the parts is :mod:`palbench.claims.figure` (matplotlib, imported only by the reports).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from palbench.claims.definitions import CLAIM_STUDIES
from palbench.claims.evidence import is_missing
from palbench.claims.verdicts import NOT_TESTED, VERDICTS, combine
from palbench.results import reaches_chance, summarize


def counts_text(summary: pd.DataFrame) -> str:
    """``2 supported (a, g), 1 contradicted (c), 4 undecided at 95% (b, d, e, f) of 7 claims``."""
    groups = [f"{(summary['verdict'] == v).sum()} {v} ({', '.join(summary.index[summary['verdict'] == v])})"
              for v in VERDICTS if (summary["verdict"] == v).any()]
    return f"{', '.join(groups)} of {len(summary)} claims"


def chance_configs(table: pd.DataFrame, runs: pd.DataFrame, n_classes: int, n_test: int | None = None,
                   metric: str = "test_accuracy", level: float | None = None) -> tuple[list[str], float]:
    """``(configurations, level)``: the configurations the tested parts read whose accuracy over seeds is at
    chance (:func:`palbench.results.reaches_chance`), with ``level`` the guessing level (default 1/K; the
    reports pass the larger of 1/K and the majority share)."""
    level = 1.0 / n_classes if level is None else level
    stats = {c: summarize(g[metric].to_numpy(float)) for c, g in runs.groupby("config")}
    tested = [c for c in tested_configs(table) if c in stats]
    flags = reaches_chance([stats[c]["ci_low"] for c in tested], [stats[c]["mean"] for c in tested], level, n_test)
    return [c for c, f in zip(tested, flags) if f], level


def tested_configs(table: pd.DataFrame) -> list[str]:
    """The configurations the tested parts of a :func:`~palbench.claims.verdicts.claims_table` read, in order
    of appearance."""
    tested = table[table["verdict"] != NOT_TESTED]
    names = [c for col in ("a_configs", "b_configs") for s in tested[col] for c in str(s).split(", ") if c]
    return list(dict.fromkeys(names))


def caveats(table: pd.DataFrame, runs: pd.DataFrame, params: Mapping, n_classes: int, n_test: int | None = None,
            metric: str = "test_accuracy", level: float | None = None) -> list[str]:
    """Plain sentences on what limits the verdicts: a single seed, studies the protocol lacks, accuracy at
    chance level (:func:`chance_configs`)."""
    notes = []
    seeds = list(params.get("seeds") or [])
    if len(seeds) < 2:
        notes.append(f"Only {len(seeds)} seed was run: no interval exists, so no tested claim can be decided "
                     "(each is undecided at 95%); run more seeds to decide.")
    lacking = [s for s in CLAIM_STUDIES if s not in (params.get("studies") or {})]
    if lacking:
        ids = [k for k, g in table.groupby("claim", sort=True) if combine(list(g["verdict"])) == NOT_TESTED]
        notes.append(f"Protocol {params.get('protocol', '?')} has no {', '.join(f'`{s}`' for s in lacking)} "
                     f"stud{'ies' if len(lacking) > 1 else 'y'}"
                     + (f"; not tested: claim{'s' if len(ids) > 1 else ''} {', '.join(ids)}." if ids else "."))
    at_chance, level = chance_configs(table, runs, n_classes, n_test, metric, level)
    tested = tested_configs(table)
    if at_chance:
        every = len(at_chance) == len(tested)
        what = "1/K" if abs(level - 1 / n_classes) < 1e-12 else "the majority class's share"
        level = (f"at chance level (the 95% interval of the test accuracy over seeds reaches {100 * level:.1f}%, "
                 f"{what}; guessing scores that)")
        notes.append(f"Every configuration compared is {level}: the differences are noise and the verdicts say "
                     "nothing about PAL." if every else
                     f"{len(at_chance)} of {len(tested)} configurations compared are {level}: "
                     f"{', '.join(at_chance)}; verdicts involving them say little about PAL.")
    return notes


def headline(summary: pd.DataFrame, notes: Sequence[str] = ()) -> str:
    """The reading: :func:`counts_text`, then the caveats."""
    return " ".join([f"The paper's comparative claims: {counts_text(summary)}.", *notes])


def _fmt(x: float, signed: bool = True) -> str:
    return "–" if is_missing(x) else (f"{x:+.2f}" if signed else f"{x:.2f}")


def format_parts(table: pd.DataFrame) -> pd.DataFrame:
    """The parts as a readable table: claim, part, A, B, ``A − B`` and its interval (points; its level: 95% per
    claim, Bonferroni over the claim's parts), p, paired seeds, verdict, reason."""
    out = pd.DataFrame({
        "claim": table["claim"], "part": table["part"], "A": table["a"], "B": table["b"],
        "claimed": table["claimed"],
        "A − B": [_fmt(d) + ("" if u == "points" else f" ({u})") if not is_missing(d) else "–"
                  for d, u in zip(table["diff"], table["unit"])],
        "CI": [f"[{_fmt(lo)}, {_fmt(hi)}]" if not is_missing(lo) else "–"
               for lo, hi in zip(table["ci_low"], table["ci_high"])],
        "level": [f"{100 * c:.4g}%" for c in table["confidence"]],
        "p (paired t)": ["–" if is_missing(p) else "< 0.001" if p < 0.001 else f"{p:.3f}" for p in table["p"]],
        "seeds": table["n_pairs"].astype(int), "verdict": table["verdict"], "reason": table["reason"],
    })  # fmt: skip
    return out.set_index(["claim", "part"])
