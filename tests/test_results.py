"""Aggregation statistics against scipy computed independently, and the study table's shape and pairing."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from palbench.errors import DataError
from palbench.results import paired_comparison, read_run, study_table, summarize


def test_summarize_matches_scipy_t_interval():
    x = [0.81, 0.84, 0.79, 0.86, 0.83]
    s = summarize(x)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert s["n"] == 5 and s["mean"] == pytest.approx(np.mean(x)) and s["std"] == pytest.approx(np.std(x, ddof=1))
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((lo, hi))


def test_summarize_small_samples():
    assert summarize([])["n"] == 0 and math.isnan(summarize([])["mean"])
    one = summarize([0.5])
    assert one["mean"] == 0.5 and one["n"] == 1 and math.isnan(one["std"]) and math.isnan(one["ci_low"])
    assert summarize([0.5, float("nan"), 0.7])["n"] == 2


def test_paired_comparison_uses_common_seeds_and_ttest_rel():
    pal = {0: 0.86, 1: 0.88, 2: 0.85, 3: 0.90}
    base = {0: 0.84, 1: 0.85, 2: 0.85, 4: 0.99}  # seed 3/4 unpaired: ignored
    c = paired_comparison(pal, base)
    a, b = [0.86, 0.88, 0.85], [0.84, 0.85, 0.85]
    ref = stats.ttest_rel(a, b)
    assert c["n_pairs"] == 3 and c["diff"] == pytest.approx(np.mean(np.subtract(a, b)))
    assert (c["t"], c["p"]) == pytest.approx((ref.statistic, ref.pvalue))
    lo, hi = stats.t.interval(0.95, 2, loc=c["diff"], scale=stats.sem(np.subtract(a, b)))
    assert (c["diff_ci_low"], c["diff_ci_high"]) == pytest.approx((lo, hi))
    assert math.isnan(paired_comparison({0: 1.0}, {0: 0.5})["p"])


def test_study_table_rows_and_pairing():
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(3):
        rows.append({"layer": "conv10", "pal_weight": 0.0, "seed": seed, "test_accuracy": 0.80 + 0.01 * seed})
        for layer, gain in (("conv7", 0.01), ("conv13", 0.03)):
            rows.append({"layer": layer, "pal_weight": 1.0, "seed": seed,
                         "test_accuracy": 0.80 + 0.01 * seed + gain + rng.normal(0, 0.002)})
    table = study_table(pd.DataFrame(rows), ["layer"], {"pal_weight": 0.0})
    assert table["layer"].tolist() == ["baseline", "conv13", "conv7"]
    assert table["n"].tolist() == [3, 3, 3]
    c13 = table.set_index("layer").loc["conv13"]
    assert c13["diff"] == pytest.approx(0.03, abs=0.003) and c13["p"] < 0.01 and c13["n_pairs"] == 3
    with pytest.raises(DataError, match="no baseline runs"):
        study_table(pd.DataFrame(rows), ["layer"], {"pal_weight": 5.0})


def test_read_run(tmp_path):
    run = tmp_path / "r"
    (run / "test").mkdir(parents=True)
    # a config.json of an older palbench: no landmark_noise key (its default, 0, is read)
    (run / "config.json").write_text(json.dumps({"data": "d", "layer": "conv10", "seed": 2, "pal_weight": 1.0, "extra": {}}))
    (run / "metrics.json").write_text(json.dumps({"best_val_accuracy": 0.7, "seconds": 12.0}))
    (run / "test" / "metrics.json").write_text(json.dumps({"accuracy": 0.6, "alignment_constrained": 0.9}))
    row = read_run(run)
    cfg = row["config"]
    assert cfg["layer"] == "conv10" and cfg["seed"] == 2 and cfg["landmark_noise"] == 0
    assert row["val_accuracy"] == 0.7 and row["test_accuracy"] == 0.6 and row["test_alignment_constrained"] == 0.9
    assert row["test_decoy_share"] is None
    with pytest.raises(DataError, match="not found"):
        read_run(tmp_path / "missing")
