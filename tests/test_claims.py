"""The claims report's verdicts (palbench.claims) on hand-made per-run tables whose verdicts are known.

Each table is what ``palbench aggregate`` writes as ``results/runs.csv`` (one row per run: run, config, seed,
the configuration's settings, test_accuracy), built from a hand-made protocol and written through CSV, with
accuracies chosen so that every verdict is known in advance. Nothing trains.
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from palbench import claims as c
from palbench.config import grid, run_name
from palbench.results import paired_comparison

TRAIN = {"arch": "vgg16_bn", "size": 32, "epochs": 1, "layer": "l5", "method": "grad_input", "strategy": "mean",
         "c1": 0.5, "pal_weight": 1.0, "prior_sigma": 1.0}
ABLATION = {"vary": [{"method": m, "strategy": s, "c1": c1} for m in ("grad", "grad_input")
                     for s, c1 in (("all", 1.0), ("mean", 1.0), ("mean", 0.5))]}
#: A hand-made catalogue: 4 max-pool blocks l1–l2 | l3–l4 | l5–l6 | l7–l8 (``*`` feeds a max-pool).
CATALOGUE = [{"name": f"l{i}", "before_pool": i % 2 == 0} for i in range(1, 9)]
#: Seed noise shared by every configuration, and a small jitter that differs between configurations.
SEED = {0: 0.0, 1: 0.01, 2: -0.01, 3: 0.005}


def protocol(studies: dict, seeds: tuple[int, ...] = (0, 1, 2)) -> dict:
    return {"protocol": "hand", "train": dict(TRAIN), "seeds": list(seeds), "studies": studies}


def runs_table(params: dict, accuracy: Callable[[dict], float], spread: float = 0.002) -> pd.DataFrame:
    """``runs.csv`` of every configuration × seed: ``accuracy(settings) + SEED[seed] + jitter``, via CSV."""
    rows, seen = [], set()
    for row in grid(params):
        if row["config"] in seen:
            continue
        seen.add(row["config"])
        for seed in params["seeds"]:
            jitter = spread * np.random.default_rng([seed, len(seen)]).uniform(-1, 1)  # differs per pair of arms
            rows.append({"run": run_name(row["config"], seed), "config": row["config"], "seed": seed,
                         **row["settings"], "test_accuracy": accuracy(row["settings"]) + SEED[seed] + jitter})
    return pd.read_csv(io.StringIO(pd.DataFrame(rows).to_csv(index=False)))


def pal(s: dict) -> bool:
    return s["pal_weight"] > 0


def parts_of(table: pd.DataFrame, claim: str) -> pd.DataFrame:
    return table[table["claim"] == claim].set_index("part")


# ---------------------------------------------------------------- the verdict rule
def test_verdict_rule_on_intervals():
    assert c.verdict(0.1, 2.0, 3)[0] == c.SUPPORTED
    assert c.verdict(-2.0, -0.1, 3)[0] == c.CONTRADICTED
    assert c.verdict(-1.0, 2.0, 3) == (c.UNDECIDED, "the 95% interval contains 0")
    assert c.verdict(-2.0, -0.1, 3, claimed="<")[0] == c.SUPPORTED
    assert c.verdict(0.1, 2.0, 3, claimed="<")[0] == c.CONTRADICTED
    nan = float("nan")
    assert c.verdict(nan, nan, 1) == (c.UNDECIDED, "1 paired seed: no interval (needs 2 seeds or more)")
    assert c.verdict(nan, nan, 0)[1].startswith("no seed in common")
    # equal differences in every seed (e.g. -2 images out of 700 three times): a zero-width interval
    assert c.verdict(-0.286, -0.286, 3) == (c.UNDECIDED, "the 3 paired differences are all equal: no spread, no interval")


def test_composite_verdicts():
    S, C, U, N = c.SUPPORTED, c.CONTRADICTED, c.UNDECIDED, c.NOT_TESTED
    assert c.combine([S, S]) == S
    assert c.combine([S, C, U]) == C
    assert c.combine([S, U]) == U
    assert c.combine([S, N]) == U
    assert c.combine([N, N]) == N
    assert c.combine([N, C]) == C


# ---------------------------------------------------------------- claims on known tables
def test_supported_pal_over_baseline():
    params = protocol({"comparison": {"vary": {"pal_weight": [1.0]}}})
    runs = runs_table(params, lambda s: 0.60 if pal(s) else 0.55)
    parts, summary = c.evaluate_claims(runs, params)
    a = parts_of(parts, "a").iloc[0]
    assert a["verdict"] == c.SUPPORTED and a["n_pairs"] == 3
    assert a["diff"] == pytest.approx(5.0, abs=0.5)  # points, not a fraction
    assert a["ci_low"] > 0 and a["a_configs"] == "pal" and a["b_configs"] == "base"
    assert summary.loc["a", "verdict"] == c.SUPPORTED


def test_contradicted_grad_input_below_grad():
    params = protocol({"ablation": ABLATION})
    runs = runs_table(params, lambda s: 0.5 + (0.0 if s["method"] == "grad_input" else 0.03) * pal(s))
    b = parts_of(c.claims_table(runs, params), "b")
    assert list(b.index) == ["Grad × Input − Grad, All Channels", "Grad × Input − Grad, Mean",
                             "Grad × Input − Grad, Mean of half"]
    assert (b["verdict"] == c.CONTRADICTED).all() and (b["ci_high"] < 0).all()


def test_wide_interval_is_undecided():
    params = protocol({"comparison": {"vary": {"pal_weight": [1.0]}}})
    runs = runs_table(params, lambda s: 0.5)
    swing = {0: 0.10, 1: -0.08, 2: 0.09}
    is_pal = runs["pal_weight"] > 0
    runs.loc[is_pal, "test_accuracy"] += runs.loc[is_pal, "seed"].map(swing)
    a = parts_of(c.claims_table(runs, params), "a").iloc[0]
    assert a["diff"] > 0 and a["ci_low"] < 0 < a["ci_high"]
    assert a["verdict"] == c.UNDECIDED and a["reason"] == "the 95% interval contains 0"


def test_one_seed_is_undecided_without_interval():
    params = protocol({"comparison": {"vary": {"pal_weight": [1.0]}}}, seeds=(0,))
    runs = runs_table(params, lambda s: 0.60 if pal(s) else 0.40)
    parts, summary = c.evaluate_claims(runs, params)
    a = parts_of(parts, "a").iloc[0]
    assert a["n_pairs"] == 1 and a["diff"] == pytest.approx(20.0, abs=0.5) and np.isnan(a["ci_low"])
    assert a["verdict"] == c.UNDECIDED and "no interval" in a["reason"]
    notes = c.caveats(parts, runs, params, n_classes=7)
    assert any(n.startswith("Only 1 seed was run: no interval") for n in notes)
    assert "nan" not in c.headline(summary, notes).lower()


def test_missing_study_is_not_tested_naming_it():
    params = protocol({"comparison": {"vary": {"pal_weight": [1.0]}}})
    runs = runs_table(params, lambda s: 0.6 if pal(s) else 0.5)
    parts, summary = c.evaluate_claims(runs, params, CATALOGUE)
    for claim, study in (("b", "ablation"), ("c", "ablation"), ("d", "layers"), ("e", "layers"), ("f", "noise"),
                         ("g", "channels")):
        assert summary.loc[claim, "verdict"] == c.NOT_TESTED, claim
        assert f"no `{study}` study" in summary.loc[claim, "reason"], claim
    assert summary.loc["a", "verdict"] == c.SUPPORTED
    assert c.counts_text(summary) == "1 supported (a), 6 not tested (b, c, d, e, f, g) of 7 claims"
    notes = c.caveats(parts, runs, params, n_classes=7)
    assert any("not tested: claims b, c, d, e, f, g" in n for n in notes)


def test_configuration_missing_from_the_results_is_not_tested():
    params = protocol({"comparison": {"vary": {"pal_weight": [1.0]}}})
    runs = runs_table(params, lambda s: 0.6 if pal(s) else 0.5)
    a = parts_of(c.claims_table(runs[runs["pal_weight"] == 0], params), "a").iloc[0]
    assert a["verdict"] == c.NOT_TESTED and "no run of PAL" in a["reason"] and "(configuration pal)" in a["reason"]


def test_composite_claim_with_one_contradicted_part():
    """(c): Mean − All supported, Mean of half − All contradicted → the claim is contradicted, both shown."""
    params = protocol({"ablation": ABLATION})
    level = {("all", 1.0): 0.50, ("mean", 1.0): 0.55, ("mean", 0.5): 0.45}
    runs = runs_table(params, lambda s: level[(s["strategy"], s["c1"])] if pal(s) else 0.4)
    parts, summary = c.evaluate_claims(runs, params)
    part = parts_of(parts, "c")["verdict"].to_dict()
    assert part == {"Mean − All Channels (Grad)": c.SUPPORTED, "Mean of half − All Channels (Grad)": c.CONTRADICTED}
    assert summary.loc["c", "verdict"] == c.CONTRADICTED and summary.loc["c", "parts"] == 2
    assert "contradicted: Mean of half − All Channels (Grad)" in summary.loc["c", "reason"]


def test_configurations_are_found_by_settings_not_names():
    params = protocol({"ablation": ABLATION})
    runs = runs_table(params, lambda s: 0.5 + (0.03 if s["method"] == "grad_input" else 0.0) * pal(s))
    before = c.claims_table(runs, params)
    renamed = runs.assign(config=[f"x{i}" for i in runs.groupby("config", sort=False).ngroup()], run="?")
    after = c.claims_table(renamed, params)
    pd.testing.assert_series_equal(before["diff"], after["diff"])
    assert (after.loc[after["claim"] == "b", "verdict"] == c.SUPPORTED).all()
    # a run with another setting (here: more epochs) is not the configuration's run
    other = runs.assign(epochs=2)
    assert (c.claims_table(other, params)["verdict"] == c.NOT_TESTED).all()


def test_late_and_early_layers_and_pre_pool_layers():
    """(d) late − early > 0 and (e) pre-pool − neighbours < 0 on a hand-made catalogue."""
    layers = ["l1", "l3", "l4", "l5", "l7", "l8"]
    params = protocol({"layers": {"set": {"method": "grad"}, "vary": {"layer": layers}}})
    level = {"l1": 0.50, "l3": 0.52, "l4": 0.46, "l5": 0.58, "l7": 0.60, "l8": 0.55}
    runs = runs_table(params, lambda s: level[s["layer"]] if pal(s) else 0.4)
    assert c.layer_blocks(CATALOGUE) == [["l1", "l2"], ["l3", "l4"], ["l5", "l6"], ["l7", "l8"]]
    assert c.early_and_late(CATALOGUE) == (["l1", "l2", "l3", "l4"], ["l5", "l6", "l7", "l8"])
    assert c.pool_neighbours(CATALOGUE, layers) == {"l4": ["l3", "l5"], "l8": ["l7"]}
    parts = c.claims_table(runs, params, CATALOGUE)
    d = parts_of(parts, "d").iloc[0]
    early, late = np.mean([0.50, 0.52, 0.46]), np.mean([0.58, 0.60, 0.55])
    assert d["diff"] == pytest.approx(100 * (late - early), abs=0.3) and d["verdict"] == c.SUPPORTED
    assert d["a"].startswith("late layers (l5–l8)") and "l1, l3, l4" in d["b"]
    e = parts_of(parts, "e").iloc[0]
    pre, near = np.mean([0.46, 0.55]), np.mean([0.52, 0.58, 0.60])
    assert e["claimed"] == "A < B" and e["diff"] == pytest.approx(100 * (pre - near), abs=0.3)
    assert e["verdict"] == c.SUPPORTED
    grouping = c.layer_grouping(params, CATALOGUE).set_index("layer")
    assert grouping.loc["l4", "(e) role"] == "pre-pool" and grouping.loc["l3", "(e) role"] == "neighbour"
    assert grouping.loc["l2", "(d) group"] == "early" and not grouping.loc["l2", "studied"]
    # pairs as (name, before_pool) and the same numbers; without a catalogue, not tested
    pairs = [(r["name"], r["before_pool"]) for r in CATALOGUE]
    assert c.claims_table(runs, params, pairs)["diff"].equals(parts["diff"])
    assert (parts_of(c.claims_table(runs, params, None), "d")["verdict"] == c.NOT_TESTED).all()


def test_pre_pool_layers_without_studied_neighbours_name_the_layers_to_add():
    params = protocol({"layers": {"set": {"method": "grad"}, "vary": {"layer": ["l2", "l4", "l8"]}}})
    runs = runs_table(params, lambda s: 0.5)
    e = parts_of(c.claims_table(runs, params, CATALOGUE), "e").iloc[0]
    assert e["verdict"] == c.NOT_TESTED
    assert "add one of l1, l3, l5, l7 to studies.layers.vary.layer" in e["reason"]


def test_landmark_noise_three_parts():
    params = protocol({"noise": {"vary": {"landmark_noise": [0, 2, 4]}}})
    runs = runs_table(params, lambda s: 0.60 - 0.01 * s["landmark_noise"] if pal(s) else 0.50)
    f = parts_of(c.claims_table(runs, params), "f")
    assert list(f.index) == ["σ = 0 − σ = 2", "σ = 0 − σ = 4", "slope against σ", "σ = 0 − baseline",
                             "σ = 2 − baseline", "σ = 4 − baseline"]
    assert (f["verdict"] == c.SUPPORTED).all()
    slope = f.loc["slope against σ"]
    assert slope["diff"] == pytest.approx(-1.0, abs=0.2) and slope["unit"] == "points per pixel of σ"
    # noise that helps contradicts the trend part and the "best at 0" parts
    runs = runs_table(params, lambda s: 0.50 + 0.01 * s["landmark_noise"] if pal(s) else 0.40)
    f = parts_of(c.claims_table(runs, params), "f")
    assert f.loc["slope against σ", "verdict"] == c.CONTRADICTED
    assert c.combine(list(f["verdict"])) == c.CONTRADICTED


def test_channels_parts_include_table_ii_values_not_studied():
    params = protocol({"channels": {"vary": {"c1": [0.25, 0.5]}}})
    runs = runs_table(params, lambda s: {0.25: 0.52, 0.5: 0.55}[s["c1"]] if pal(s) else 0.5)
    parts, summary = c.evaluate_claims(runs, params)
    g = parts_of(parts, "g")["verdict"].to_dict()
    assert g["C/2 − C/4"] == c.SUPPORTED
    assert g["C/4 − 3C/4"] == c.NOT_TESTED and g["C/2 − C"] == c.NOT_TESTED
    assert summary.loc["g", "verdict"] == c.UNDECIDED  # one part supported, the others not tested


def test_chance_level_is_said_plainly():
    params = protocol({"comparison": {"vary": {"pal_weight": [1.0]}}})
    runs = runs_table(params, lambda s: 1 / 7)
    parts, summary = c.evaluate_claims(runs, params)
    notes = c.caveats(parts, runs, params, n_classes=7, n_test=700)
    assert any(n.startswith("Every configuration compared is at chance level") for n in notes)
    assert "say nothing about PAL" in c.headline(summary, notes)
    assert c.chance_configs(parts, runs.assign(test_accuracy=0.6), 7, 700)[0] == []


def test_table_columns_and_formatting():
    params = protocol({"comparison": {"vary": {"pal_weight": [1.0]}}})
    table = c.claims_table(runs_table(params, lambda s: 0.6 if pal(s) else 0.5), params)
    assert tuple(table.columns) == c.COLUMNS and list(table["claim"].unique()) == list("abcdefg")
    shown = c.format_parts(table)
    assert shown.loc[("a", "PAL − baseline"), "verdict"] == c.SUPPORTED
    assert shown.loc[("b", "Grad × Input − Grad"), "A − B"] == "–"


def test_notebook_registry_matches_the_claims():
    from palbench.reports import NOTEBOOKS, Project
    from palbench.reports.render import plan

    assert next(iter(NOTEBOOKS)) == "claims"
    assert set(NOTEBOOKS["claims"][0]) == set(c.CLAIM_STUDIES) == {s for k in c.CLAIMS.values() for s in k.studies}
    with_noise = Project(root=None, params=protocol({"noise": {"vary": {"landmark_noise": [0, 4]}}}), out=None)
    assert plan(with_noise)["claims"] is None
    assert plan(with_noise)["layers"] == "not in protocol hand (no `layers` study)"
    without = Project(root=None, params=protocol({"other": {"vary": {"c1": [1.0]}}}), out=None)
    assert plan(without)["claims"].startswith("not in protocol hand (none of the `layers`, `ablation`")


def test_forest_plot():
    import matplotlib

    matplotlib.use("Agg")  # the test process only
    import matplotlib.pyplot as plt

    from palbench.reports import plot_claims

    params = protocol({"ablation": ABLATION, "noise": {"vary": {"landmark_noise": [0, 4]}}})
    table = c.claims_table(runs_table(params, lambda s: 0.6 if pal(s) else 0.5), params)
    fig = plot_claims(table, "test")
    ax = fig.axes[0]
    assert len(ax.get_yticklabels()) == len(table)
    assert {t.get_text() for t in fig.legends[0].get_texts()} == set(table["verdict"])
    plt.close(fig)


def test_claims_module_imports_no_torch():
    res = subprocess.run([sys.executable, "-X", "importtime", "-c", "import palbench.claims"], check=False,
                         capture_output=True, text=True, timeout=300)
    modules = {line.rsplit("|", 1)[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
    assert res.returncode == 0 and "palbench.claims" in modules and "pandas" in modules
    assert "torch" not in modules and "matplotlib" not in modules


def test_multi_part_claim_is_decided_at_family_wise_95():
    """A claim's m parts each get a 1 − 0.05/m interval (Bonferroni): a difference that a lone 95% interval
    would decide is undecided as one of claim (c)'s two parts, whose 97.5% intervals are wider."""
    params = protocol({"ablation": ABLATION})
    diffs = {0: 0.010, 1: 0.020, 2: 0.016}  # mean 1.53 points; 95% t-interval ≈ [+0.29, +2.78], 97.5% contains 0
    runs = runs_table(params, lambda s: 0.5, spread=0.0)
    better = (runs["strategy"] == "mean") & (runs["pal_weight"] > 0)
    runs.loc[better, "test_accuracy"] += runs.loc[better, "seed"].map(diffs)
    cpart = parts_of(c.claims_table(runs, params), "c")
    assert len(cpart) == 2 and np.allclose(cpart["confidence"], 0.975)
    lone = paired_comparison({s: 0.5 + d for s, d in diffs.items()}, {s: 0.5 for s in diffs})
    assert lone["diff_ci_low"] > 0  # one part alone at 95% would be supported ...
    assert (cpart["ci_low"] < 0).all() and (cpart["verdict"] == c.UNDECIDED).all()  # ... as 1 of 2, it is not
    assert cpart["reason"].iloc[0] == "the 97.5% interval contains 0"
    a = parts_of(c.claims_table(runs, params), "a")
    assert np.allclose(a["confidence"], 0.95)  # a one-part claim keeps its 95%
