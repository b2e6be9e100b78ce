"""The regime map (palbench.regimes, palbench.reports.regimes, notebooks/regimes.ipynb) on a hand-made protocol.

Four regime cells with per-seed accuracies chosen so that every verdict is known in advance; the differences,
intervals and counts are recomputed here independently (numpy, scipy.stats). The same protocol, written as
``params.yaml`` with fake run folders, goes through ``palbench aggregate`` and the notebook (papermill). Nothing
trains.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

matplotlib.use("Agg")  # the test process only

import matplotlib.pyplot as plt  # noqa: E402

from palbench import claims as c  # noqa: E402
from palbench import regimes as g  # noqa: E402
from palbench.config import TrainConfig, config_seeds, grid, run_configs, run_names, study_seeds  # noqa: E402
from palbench.config.protocol import params_from_protocol, write_params  # noqa: E402
from palbench.results import EXTRA_METRICS, study_tables  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SEEDS = [0, 1, 2, 3, 4]
TRAIN = {"arch": "vgg16_bn", "width": 0.0625, "weights": "w.pt", "size": 32, "epochs": 2, "lr": 0.001,
         "layer": "conv7", "method": "grad_input", "strategy": "mean", "c1": 0.5, "pal_weight": 1.0,
         "prior_sigma": 1.0}
DECOY = "data/hand-decoy"
PAIR = {"vary": {"pal_weight": [1.0]}}
STUDIES = {
    "scratch-none": {**PAIR, "set": {"weights": None}, "regime": {"start": "scratch", "shortcut": "none"}},
    "scratch-decoy": {**PAIR, "set": {"weights": None, "data": DECOY},
                      "regime": {"start": "scratch", "shortcut": "decoy"}},
    "partial-decoy": {**PAIR, "set": {"keep_up_to": "conv4", "data": DECOY},
                      "regime": {"start": "partial", "shortcut": "decoy"}},
    "pretrained-decoy": {**PAIR, "set": {"data": DECOY}, "regime": {"start": "pretrained", "shortcut": "decoy"},
                         "seeds": [0, 1, 2]},
    "comparison": {**PAIR},  # the protocol's default regime
    "channels": {"set": {"data": DECOY}, "vary": {"c1": [0.25, 0.5]}},  # the pretrained × decoy regime
}
#: Per cell: baseline and PAL test accuracy per seed, and the other metrics (means), all hand-made.
CELLS = {
    "scratch-none": {"base": [0.68, 0.70, 0.66, 0.69, 0.67], "pal": [0.685, 0.695, 0.665, 0.70, 0.665],
                     "val": 0.72, "follow": None, "decoy": None},  # +0.2 points, ±0.8: neutral
    "scratch-decoy": {"base": [0.14, 0.15, 0.13, 0.14, 0.16], "pal": [0.45, 0.49, 0.40, 0.47, 0.44],
                      "val": 0.60, "follow": 0.10, "decoy": (0.13, 0.016)},  # +30.6 points: helps; misled
    "partial-decoy": {"base": [0.50, 0.52, 0.49, 0.51, 0.50], "pal": [0.44, 0.47, 0.43, 0.45, 0.46],
                      "val": 0.55, "follow": 0.20, "decoy": (0.02, 0.016)},  # −5.4: hurts; misled (follow)
    "pretrained-decoy": {"base": [0.60, 0.70, 0.65], "pal": [0.70, 0.60, 0.66],
                         "val": 0.70, "follow": 0.05, "decoy": (0.05, 0.016)},  # undecided; misled (decoy share)
}


def protocol() -> dict:
    return {"protocol": "hand", "data": {"name": "hand", "command": "synth", "input": "palbench/data/synth",
                                         "args": {"n_train": 14, "size": 32, "seed": 0, "decoy_p": 0.0}},
            "variants": {"hand-decoy": {"decoy_p": 0.9}}, "landmarks": {"backend": "truth"},
            "priors": {"landmark_noise": [0]}, "train": dict(TRAIN), "evaluate": {"split": "test"},
            "seeds": list(SEEDS), "studies": json.loads(json.dumps(STUDIES))}


def cell_of(params: dict, config: str) -> tuple[str, bool] | None:
    """(regime study, is PAL) of a configuration trained by a regime cell."""
    for row in grid(params):
        if row["config"] == config and row["study"] in CELLS:
            return row["study"], not row["baseline"]
    return None


def run_metrics(params: dict, config: str, seed: int) -> dict:
    """A run's metrics: a regime cell's hand-made values; 0.5 for any other configuration."""
    found = cell_of(params, config)
    if found is None:
        return {"test_accuracy": 0.5, "val_accuracy": 0.5}
    study, pal = found
    cell = CELLS[study]
    seeds = study_seeds(params, study)  # the pretrained × decoy baseline is also the channels study's, 5 seeds
    acc = cell["pal" if pal else "base"][seeds.index(seed)] if seed in seeds else 0.62
    share, area = cell["decoy"] or (None, None)
    return {"test_accuracy": acc, "val_accuracy": cell["val"] + (0.1 if pal else 0.0),
            "test_decoy_share": (area if pal else share) if share is not None else None,
            "test_decoy_area_share": area,
            "test_shortcut_follow": None if cell["follow"] is None else 0.02 if pal else cell["follow"],
            "test_alignment_constrained": 0.9 if pal else 0.3}


def runs_table(params: dict) -> pd.DataFrame:
    """``results/runs.csv`` as collect_runs writes it: every run of the grid with its settings and metrics."""
    settings = {row["config"]: row["settings"] for row in grid(params)}
    rows = []
    for config, group in run_configs(params).items():
        for seed in config_seeds(params, config, group):
            rows.append({"run": f"{group}/{config}/s{seed}", "config": config, "seed": seed, **settings[config],
                         **{m: None for m in EXTRA_METRICS}, "seconds": 1.0, **run_metrics(params, config, seed)})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def params() -> dict:
    return params_from_protocol(protocol())


@pytest.fixture(scope="module")
def table(params) -> pd.DataFrame:
    runs = runs_table(params)
    return g.regime_table(params, study_tables(params, runs), runs)


def rows_of(table: pd.DataFrame, study: str) -> tuple[pd.Series, pd.Series]:
    rows = table[table["study"] == study]
    return rows.iloc[0], rows.iloc[1]


# ---------------------------------------------------------------- the table
def test_cells_in_protocol_order_with_their_regime(table):
    assert g.regime_studies(protocol()) == list(CELLS)
    assert table["study"].tolist() == [s for s in CELLS for _ in range(2)]
    assert table["baseline"].tolist() == [True, False] * len(CELLS)
    assert list(table.columns[:5]) == ["start", "shortcut", "study", "config", "baseline"]
    assert list(table.columns[-5:]) == ["decided", "verdict", "pal_ahead", "misled", "faces_learned"]
    for col in ("mean", "diff_ci_low", "n_pairs", "val_accuracy_mean", "test_decoy_share_mean",
                "test_shortcut_follow_mean"):
        assert col in table.columns
    first = table[table["study"] == "partial-decoy"].iloc[0]
    assert (first["start"], first["shortcut"]) == ("partial", "decoy")


@pytest.mark.parametrize("study", list(CELLS))
def test_difference_interval_and_seed_count_match_an_independent_computation(table, study):
    base, pal = rows_of(table, study)
    a, b = np.array(CELLS[study]["pal"]), np.array(CELLS[study]["base"])
    d = a - b
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    assert pal["diff"] == pytest.approx(d.mean()) and pal["n_pairs"] == len(d)
    assert (pal["diff_ci_low"], pal["diff_ci_high"]) == pytest.approx((lo, hi))
    assert pal["p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert pal["pal_ahead"] == int((a > b).sum())
    assert base["mean"] == pytest.approx(b.mean()) and pal["mean"] == pytest.approx(a.mean())
    assert pd.isna(base["pal_ahead"]) and pd.isna(base["verdict"]) and pd.isna(pal["misled"])


def test_verdicts(table):
    expected = {"scratch-none": (True, "neutral"), "scratch-decoy": (True, "helps"),
                "partial-decoy": (True, "hurts"), "pretrained-decoy": (False, "undecided")}
    for study, (decided, verdict) in expected.items():
        _, pal = rows_of(table, study)
        d = np.subtract(CELLS[study]["pal"], CELLS[study]["base"])
        half = stats.t.ppf(0.975, len(d) - 1) * stats.sem(d)
        lo, hi = d.mean() - half, d.mean() + half
        assert decided == bool(half <= 0.03 or lo > 0 or hi < 0), study  # the rule, recomputed
        assert (pal["decided"], pal["verdict"]) == (decided, verdict), study
    assert [rows_of(table, s)[1]["pal_ahead"] for s in CELLS] == [3, 5, 0, 2]


def test_decision_rule_edges():
    nan = math.nan
    assert g.decision({"diff_ci_low": nan, "diff_ci_high": nan}) == {"decided": False, "verdict": "undecided"}
    assert g.decision({"diff_ci_low": -0.03, "diff_ci_high": 0.03}) == {"decided": True, "verdict": "neutral"}
    assert g.decision({"diff_ci_low": -0.031, "diff_ci_high": 0.031})["verdict"] == "undecided"
    assert g.decision({"diff_ci_low": 0.001, "diff_ci_high": 0.2}) == {"decided": True, "verdict": "helps"}
    assert g.decision({"diff_ci_low": -0.2, "diff_ci_high": -0.001})["verdict"] == "hurts"


def test_misled_and_faces_learned(table):
    misled = {s: rows_of(table, s)[0]["misled"] for s in CELLS}
    assert misled == {"scratch-none": False, "scratch-decoy": True, "partial-decoy": True, "pretrained-decoy": True}
    # the reasons, one criterion each: partial's follow rate 0.20 >= 2 · (1 − 0.504) / 6 = 0.165 (gap 4.6 points,
    # decoy share 1.25× its area); pretrained's decoy share 0.05 >= 2 · 0.016 (gap 5 points, follow 0.05 < 0.117)
    assert 0.20 >= 2 * (1 - np.mean(CELLS["partial-decoy"]["base"])) / 6
    assert 0.05 < 2 * (1 - np.mean(CELLS["pretrained-decoy"]["base"])) / 6
    assert g.misled({"mean": 0.5, "val_accuracy_mean": 0.6}) and not g.misled({"mean": 0.5, "val_accuracy_mean": 0.59})
    assert not g.misled({"mean": 0.5, "val_accuracy_mean": 0.5, "test_decoy_share_mean": 0.03,
                         "test_decoy_area_share_mean": 0.016, "test_shortcut_follow_mean": 0.16})
    # scratch × none's baseline tests 68%: the scratch cells learn faces; no partial/pretrained × none cell: None
    learned = {s: set(table.loc[table["study"] == s, "faces_learned"]) for s in CELLS}
    assert learned == {"scratch-none": {True}, "scratch-decoy": {True}, "partial-decoy": {None},
                       "pretrained-decoy": {None}}


def test_largest_effect(table):
    best = g.largest_effect(table)
    assert best["study"] == "scratch-decoy" and best["diff"] == pytest.approx(np.mean(
        np.subtract(CELLS["scratch-decoy"]["pal"], CELLS["scratch-decoy"]["base"])))
    without = table[table["study"] != "scratch-decoy"]
    assert g.largest_effect(without)["study"] == "partial-decoy"  # |−5.4| > |+0.2|
    assert g.largest_effect(table[table["study"] == "pretrained-decoy"]) is None  # nothing decided
    assert g.largest_effect(table[table["baseline"]]) is None


def test_no_regime_study(params):
    plain = {**params, "studies": {"comparison": STUDIES["comparison"]}}
    assert g.regime_studies(plain) == []
    assert g.regime_table(plain, {}, runs_table(params)).empty


# ---------------------------------------------------------------- where a study is tested
def test_regime_of_study(params):
    assert g.regime_of_study(params, "scratch-decoy") == "tested in the scratch × decoy regime"
    assert g.regime_of_study(params, "channels") == "tested in the pretrained × decoy regime"
    assert g.regime_of_study(params, "comparison") == "tested in the protocol's default regime"
    # the same data named explicitly, and a PAL setting (reset in the baseline), are the same regime
    same = json.loads(json.dumps(params))
    same["studies"]["pretrained-none"] = {"set": {"data": "data/hand", "method": "grad"}, **PAIR,
                                          "regime": {"start": "pretrained", "shortcut": "none"}}
    assert g.regime_of_study(same, "comparison") == "tested in the pretrained × none regime"
    # another epoch count is another regime
    other = json.loads(json.dumps(params))
    other["studies"]["channels"]["set"]["epochs"] = 3
    assert g.regime_of_study(other, "channels") == "tested in the protocol's default regime"


def test_claims_summary_says_the_regime(params):
    runs = runs_table(params)
    _, summary = c.evaluate_claims(runs, params)
    assert summary.loc["a", "regime"] == "tested in the protocol's default regime"  # comparison
    assert summary.loc["g", "regime"] == "tested in the pretrained × decoy regime"  # channels
    assert summary.loc["b", "regime"] == "–"  # no ablation study
    assert c.claim_regime(params, "g") == summary.loc["g", "regime"]


# ---------------------------------------------------------------- report library
def test_report_functions(table):
    from palbench import reports as r

    levels = {"chance": 1 / 7, "majority": 1 / 7, "majority_class": "anger", "n": 700, "level": 1 / 7}
    shown = r.regime_summary(table, levels)
    assert shown.index.tolist() == ["scratch × none", "scratch × decoy", "partial × decoy", "pretrained × decoy",
                                    "partial × none", "pretrained × none"]
    assert shown.loc["scratch × decoy", "verdict"] == "helps"
    assert shown.loc["scratch × decoy", "PAL ahead (seeds)"] == "5/5"
    assert shown.loc["scratch × decoy", "baseline val / test (%)"] == "60.0 / 14.4"
    assert shown.loc["scratch × decoy", "vs chance"] == "baseline at chance"  # 14.4% with a CI reaching 14.3%
    assert shown.loc["partial × none", "verdict"] == "no results"
    assert shown.loc["partial × decoy", "faces learned"] == "unknown (no partial × none cell)"
    text = r.regimes_headline(table, levels)
    assert text.startswith("Regime map (4 cells): PAL helps in scratch × decoy; it is neutral in scratch × none; it "
                           "hurts in partial × decoy; undecided in pretrained × decoy.")
    assert "The largest decided effect: scratch × decoy, PAL − baseline = +30.6 points, 95% CI [" in text
    assert text.count("PAL ahead in 5/5 seeds") == 1
    assert "Misled cells where faces are learned: scratch × decoy." in text
    assert "At chance, so not interpretable: scratch × decoy (baseline at chance)." in text
    assert "No results for partial × none, pretrained × none." in text and "nan" not in text.lower()
    assert "no cell of the same start without a shortcut to say whether faces are learned: partial × decoy, " in text
    assert "Starts this protocol's map does not run" not in text  # all three starts have a cell
    no_scratch = r.regimes_headline(table[table["start"] != "scratch"], levels)
    assert "Starts this protocol's map does not run: scratch (docs/regimes.md" in no_scratch
    assert set(r.regime_summary(table, None)["vs chance"].iloc[:4]) == {"unknown (no test-split counts)"}
    fig = r.plot_regimes(table, "test", levels)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert sum("undecided" in t for t in texts) == 1 and texts.count("no results") == 2
    assert any(t.startswith("helps: +30.6 points\n95% CI [") and "PAL ahead in 5/5 seeds" in t for t in texts)
    assert any(t.startswith("undecided: +0.3 points") for t in texts)
    plt.close(fig)
    undecided = table[table["study"] == "pretrained-decoy"]
    assert "No cell is decided, so there is no largest effect." in r.regimes_headline(undecided, None)


def test_one_seed_nothing_decided_and_at_chance_is_said():
    """One seed: no interval, so every cell is undecided (said in the figure and the reading); the scratch × decoy
    baseline (14%, within two binomial standard errors of 1/7 on 700 images) is at chance; an empty map renders."""
    from palbench import reports as r

    proto = protocol()
    proto["seeds"] = [0]
    proto["studies"]["pretrained-decoy"]["seeds"] = [0]
    params = params_from_protocol(proto)
    runs = runs_table(params)
    table = g.regime_table(params, study_tables(params, runs), runs)
    assert table.loc[~table["baseline"], "verdict"].tolist() == ["undecided"] * 4
    assert not table.loc[~table["baseline"], "decided"].any()
    levels = {"chance": 1 / 7, "majority": 1 / 7, "majority_class": "anger", "n": 700, "level": 1 / 7}
    text = r.regimes_headline(table, levels)
    assert "undecided in scratch × none, scratch × decoy, partial × decoy, pretrained × decoy." in text
    assert "No cell is decided, so there is no largest effect." in text
    assert "scratch × decoy (baseline at chance)" in text and "nan" not in text.lower()
    fig = r.plot_regimes(table, "one seed", levels)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert sum(t.startswith("undecided: ") for t in texts) == 4
    assert any("95% CI –" in t and "PAL ahead in 1/1 seeds" in t and "baseline at chance" in t for t in texts)
    plt.close(fig)
    empty = g.regime_table({**params, "studies": {}}, {}, runs)
    assert r.regimes_headline(empty) == "The regime map has no cell with results yet."
    plt.close(r.plot_regimes(empty, "empty"))
    assert r.regime_summary(empty).empty


# ---------------------------------------------------------------- aggregate and the notebook
def write_runs(root: Path, params: dict) -> None:
    """Fake run folders (config.json, metrics.json, test/metrics.json) as `palbench train` leaves them."""
    settings = {row["config"]: row["settings"] for row in grid(params)}
    for name in run_names(params):
        group, config, seed = name.split("/")
        seed = int(seed[1:])
        folder = root / "runs" / name
        (folder / "test").mkdir(parents=True)
        conf = TrainConfig.from_dict({"data": "data/hand", **settings[config], "seed": seed}).to_dict()
        m = run_metrics(params, config, seed)
        (folder / "config.json").write_text(json.dumps(conf))
        (folder / "metrics.json").write_text(json.dumps({"best_val_accuracy": m["val_accuracy"], "seconds": 1.0}))
        test = {k.removeprefix("test_"): v for k, v in m.items() if k.startswith("test_")}
        (folder / "test" / "metrics.json").write_text(json.dumps(test))


@pytest.fixture(scope="module")
def project_root(tmp_path_factory) -> Path:
    from palbench.results import aggregate

    root = tmp_path_factory.mktemp("regimes") / "project"
    (root / "notebooks").mkdir(parents=True)
    shutil.copy(REPO / "notebooks" / "regimes.ipynb", root / "notebooks" / "regimes.ipynb")
    write_params(protocol(), root / "params.yaml")
    from palbench.config import read_params

    params = read_params(root / "params.yaml")
    write_runs(root, params)
    aggregate(root / "params.yaml", root / "runs", root / "results", root / "metrics.json")
    return root


def test_aggregate_writes_the_regime_table_and_metrics(project_root, table):
    written = pd.read_csv(project_root / "results" / "regimes.csv")
    assert written["study"].tolist() == table["study"].tolist()
    assert np.allclose(written["diff"].astype(float), table["diff"].astype(float), equal_nan=True)
    assert written["verdict"].fillna("").tolist() == table["verdict"].fillna("").tolist()
    metrics = json.loads((project_root / "metrics.json").read_text())["regimes"]
    assert sorted(metrics) == sorted(CELLS)  # metrics.json sorts its keys
    assert metrics["scratch-decoy"]["verdict"] == "helps" and metrics["scratch-decoy"]["start"] == "scratch"
    assert metrics["scratch-decoy"]["diff"] == pytest.approx(0.306, abs=1e-6)


def test_plan_lists_the_regime_map_after_the_claims(project_root):
    from palbench import reports as r
    from palbench.reports.render import plan

    assert list(r.NOTEBOOKS)[:2] == ["claims", "regimes"]
    assert plan(r.open_project(project_root))["regimes"] is None
    plain = r.Project(root=None, params={"protocol": "hand", "studies": {"comparison": PAIR}}, out=None)
    assert plan(plain)["regimes"] == "not in protocol hand (no study with a `regime`)"


def test_notebook_renders_the_map(project_root):
    import pipeline_project as pp

    res = subprocess.run([str(BIN / "papermill"), "notebooks/regimes.ipynb", "regimes.ipynb"], cwd=project_root,
                         env=pp.env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    nb = json.loads((project_root / "regimes.ipynb").read_text())
    outs = [o for cell in nb["cells"] for o in cell.get("outputs", [])]
    assert not [o for o in outs if o["output_type"] == "error"]
    assert not [o for o in outs if o["output_type"] == "stream" and o["name"] == "stderr"], "warnings in a report"
    assert len([o for o in outs if "image/png" in o.get("data", {})]) == 1
    assert (project_root / "reports" / "figures" / "regimes.png").is_file()
    shown = pd.read_csv(project_root / "reports" / "tables" / "regimes.csv").set_index("cell")
    assert shown.loc["scratch × decoy", "verdict"] == "helps"
    from palbench.reports.render import headline

    reading = headline(project_root / "regimes.ipynb")
    assert "PAL helps in scratch × decoy" in reading and "nan" not in reading.lower()


def test_doc_tables_script_prints_the_map_from_regimes_csv(project_root, tmp_path):
    """benchmarks/doc_tables.py: the README's map table, one row per cell with its verdict, from results/."""
    script = REPO / "benchmarks" / "doc_tables.py"
    res = subprocess.run([sys.executable, str(script), str(project_root / "results")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    rows = [line for line in res.stdout.splitlines()
            if line.startswith("| ") and " × " in line.split("|")[1] and "start × shortcut" not in line]
    written = pd.read_csv(project_root / "results" / "regimes.csv")
    assert len(rows) == written["study"].nunique()
    assert any(row.startswith("| **scratch × decoy** |") and "| **helps** |" in row for row in rows)
    missing = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True)
    assert missing.returncode == 1 and "regimes.csv: not found" in missing.stderr


def test_compare_claims_pools_two_runs_of_the_map(project_root):
    """benchmarks/compare_claims.py's regime part: each run's verdict per cell, and the pooled seeds' verdict by the
    map's own rule; a run beside itself is never seed-sensitive and pools to its own seeds."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from compare_claims import regime_comparison
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    text, sensitive, table = regime_comparison([project_root, project_root], ["A", "B"])
    written = pd.read_csv(project_root / "results" / "regimes.csv")
    pal = written[written["baseline"].astype(str) != "True"].set_index("study")
    assert sensitive == [] and "Seed-sensitive cells: none." in text
    assert set(table["study"]) == set(pal.index)
    for _, row in table.iterrows():
        assert row["A"] == row["B"] == row["pooled"] == g.decision(pal.loc[row["study"]])["verdict"]
        assert row["pooled_diff"] == pytest.approx(float(pal.loc[row["study"], "diff"]))
