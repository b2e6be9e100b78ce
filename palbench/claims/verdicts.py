"""The verdict statistics of the claims: each part's paired interval, the per-claim (Bonferroni) confidence,
and the verdict rules.

A part compares two arms over the same seeds (:mod:`palbench.claims.evidence`). The difference A − B, its
Student-t interval and the paired p-value come from :func:`palbench.results.paired_comparison` (paired over
the seeds both arms have); differences are reported in accuracy points (×100; a slope in points per pixel of
σ). The verdict of a part claiming A > B:

* **supported** — the interval lies entirely above 0;
* **contradicted** — it lies entirely below 0;
* **undecided at 95%** — it contains 0, or fewer than 2 seeds are paired (no interval: the reason says so), or
  every paired difference is the same (a zero-width interval: with a few seeds and a test accuracy counted in
  whole images — 1/700 of a point apart — equal differences say nothing about the spread, not certainty);
* **not tested** — a configuration the part needs is absent from the protocol or from ``results/runs.csv``
  (the reason names the study or configuration to add).

For A < B the sides swap. A claim with several parts is *supported* if every part is, *contradicted* if any
part is, *not tested* if no part is tested, and *undecided at 95%* otherwise (every part is shown).

The 95% is per claim, not per part (Bonferroni): a claim with m tested parts gives each part a
1 − 0.05/m interval (97.5% for two parts, 99% for five), so that the chance that any of its parts is decided
wrongly stays at most 5%. Without it a report of ~25 parts at 95% each decides about one part by chance per
run, and a multi-part claim is the likeliest to be flipped by it (a second seed list of the built-in benchmark
did exactly that to claim (g) before this correction).
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence

import pandas as pd

from palbench.claims.definitions import CLAIMS
from palbench.claims.evidence import Part, is_missing
from palbench.claims.parts import claim_parts
from palbench.regimes import regime_of_study
from palbench.results import paired_comparison

SUPPORTED, CONTRADICTED, UNDECIDED, NOT_TESTED = "supported", "contradicted", "undecided at 95%", "not tested"
#: Verdicts in the order the headline counts them.
VERDICTS = (SUPPORTED, CONTRADICTED, UNDECIDED, NOT_TESTED)
#: Columns of :func:`claims_table`.
COLUMNS = ("claim", "statement", "section", "part", "a", "b", "a_configs", "b_configs", "claimed", "unit",
           "n_pairs", "diff", "ci_low", "ci_high", "confidence", "p", "verdict", "reason")
#: The family-wise confidence of each claim: a claim's m tested parts each get a 1 − 0.05/m interval.
FAMILY_CONFIDENCE = 0.95


def verdict(ci_low: float, ci_high: float, n_pairs: int, claimed: str = ">", confidence: float = 0.95
            ) -> tuple[str, str]:
    """``(verdict, reason)`` of a part claiming A > B (``claimed = ">"``) or A < B (``"<"``) from the
    ``confidence`` interval of A − B over ``n_pairs`` paired seeds (see the module docstring)."""
    if n_pairs < 2 or is_missing(ci_low) or is_missing(ci_high):
        what = "no seed in common" if n_pairs == 0 else f"{n_pairs} paired seed"
        return UNDECIDED, f"{what}: no interval (needs 2 seeds or more)"
    if ci_low == ci_high:
        return UNDECIDED, f"the {n_pairs} paired differences are all equal: no spread, no interval"
    above, below = ci_low > 0, ci_high < 0
    level = f"{100 * confidence:.4g}% interval"
    if not (above or below):
        return UNDECIDED, f"the {level} contains 0"
    side = "above" if above else "below"
    agrees = above if claimed == ">" else below
    return (SUPPORTED if agrees else CONTRADICTED), f"the {level} lies {side} 0"


def combine(verdicts: Sequence[str]) -> str:
    """The verdict of a claim from those of its parts (see the module docstring)."""
    if any(v == CONTRADICTED for v in verdicts):
        return CONTRADICTED
    if verdicts and all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    if all(v == NOT_TESTED for v in verdicts):
        return NOT_TESTED
    return UNDECIDED


def evaluate(part: Part, confidence: float = 0.95) -> dict:
    """One row of :func:`claims_table`: the part, A − B (×100) with its ``confidence`` interval and p, the
    verdict."""
    claim = CLAIMS[part.claim]
    row = {"claim": part.claim, "statement": claim.statement, "section": claim.section, "part": part.name,
           "a": part.a.label, "b": part.b.label, "a_configs": ", ".join(part.a.configs),
           "b_configs": ", ".join(part.b.configs), "claimed": f"A {part.claimed} B", "unit": part.unit,
           "n_pairs": 0, "diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "confidence": confidence,
           "p": math.nan}
    missing = "; ".join(dict.fromkeys(m for m in (part.a.missing, part.b.missing) if m))
    if missing:
        return {**row, "verdict": NOT_TESTED, "reason": missing}
    with warnings.catch_warnings():  # scipy's "precision loss" when the differences are all but equal: the p-value
        warnings.simplefilter("ignore", RuntimeWarning)  # may be off, the interval (the verdict) is not
        c = paired_comparison(part.a.seeds, part.b.seeds, confidence)
    row.update(n_pairs=int(c["n_pairs"]), diff=100 * c["diff"], ci_low=100 * c["diff_ci_low"],
               ci_high=100 * c["diff_ci_high"], p=c["p"])
    v, reason = verdict(row["ci_low"], row["ci_high"], row["n_pairs"], part.claimed, confidence)
    return {**row, "verdict": v, "reason": reason}


def claims_table(runs: pd.DataFrame, params: Mapping, catalogue: Sequence[Mapping | tuple] | None = None,
                 metric: str = "test_accuracy") -> pd.DataFrame:
    """One row per claim part (:data:`COLUMNS`): the claim, what is compared (A, B and their configurations),
    the paired difference A − B in points with its interval (family-wise 95% per claim: 1 − 0.05/m for each of
    a claim's m tested parts) and p, the verdict and its reason.

    Args:
        runs: ``results/runs.csv`` (:func:`palbench.results.collect_runs`): ``seed``, settings, ``metric``.
        params: ``params.yaml`` (``train``, ``seeds``, ``studies``, ``protocol``).
        catalogue: the layers study backbone's layers in input → output order, as
            :func:`palbench.reports.maps.layer_positions` rows (``name``, ``before_pool``) or
            ``(name, before_pool)`` pairs; ``None``: claims (d) and (e) are not tested.
        metric: the per-run accuracy compared, in [0, 1].
    """
    parts = claim_parts(runs, params, catalogue, metric)
    tested = Counter(p.claim for p in parts if not (p.a.missing or p.b.missing))
    rows = [evaluate(p, 1 - (1 - FAMILY_CONFIDENCE) / max(tested[p.claim], 1)) for p in parts]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def claim_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per claim (index: claim id): ``statement, section, verdict`` (:func:`combine` of its parts),
    ``parts`` (how many) and ``reason`` (the parts that decide it)."""
    rows = []
    for claim, parts in table.groupby("claim", sort=True):
        v = combine(list(parts["verdict"]))
        rows.append({"claim": claim, "statement": parts["statement"].iloc[0], "section": parts["section"].iloc[0],
                     "verdict": v, "parts": len(parts), "reason": _summary_reason(parts, v)})
    columns = ["claim", "statement", "section", "verdict", "parts", "reason"]
    return pd.DataFrame(rows, columns=columns).set_index("claim")


def _summary_reason(parts: pd.DataFrame, v: str) -> str:
    if len(parts) == 1:
        return str(parts["reason"].iloc[0])
    by = {k: list(g["part"]) for k, g in parts.groupby("verdict", sort=False)}
    if v == SUPPORTED:
        return f"all {len(parts)} parts supported"
    if v == NOT_TESTED:
        return "; ".join(dict.fromkeys(parts["reason"]))
    return "; ".join(f"{k}: {', '.join(by[k])}" for k in VERDICTS if k in by)


def claim_regime(params: Mapping, claim: str) -> str:
    """Where claim ``claim`` is tested: the regime (:func:`palbench.regimes.regime_of_study`) of the first of its
    studies the protocol has (``tested in the scratch × decoy regime``, ``tested in the protocol's default
    regime``); ``–`` when the protocol has none of them."""
    studies = params.get("studies") or {}
    study = next((s for s in CLAIMS[claim].studies if s in studies), None)
    return "–" if study is None else regime_of_study(params, study)


def evaluate_claims(runs: pd.DataFrame, params: Mapping, catalogue: Sequence[Mapping | tuple] | None = None,
                    metric: str = "test_accuracy") -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(parts, summary)``: :func:`claims_table` and :func:`claim_summary`, with a ``regime`` column
    (:func:`claim_regime`)."""
    table = claims_table(runs, params, catalogue, metric)
    summary = claim_summary(table)
    summary["regime"] = [claim_regime(params, k) for k in summary.index]
    return table, summary
