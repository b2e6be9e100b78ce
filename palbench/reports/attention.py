"""Fig. 7: what the comparison study's attribution maps show — both models' predictions on the images shown,
and the test-set alignment of the attribution with the prior (and the decoy share where the data have one).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def attention_headline(table: pd.DataFrame, shown: dict) -> str:
    """Predictions on the images shown and the test-set attention metrics of the comparison study.

    Args:
        table: the comparison study table (``test_alignment_*_mean``, ``test_decoy_share_mean`` over seeds).
        shown: :func:`palbench.reports.maps.attribution_maps`'s result (``labels``, ``pal_pred``, ``base_pred``).
    """
    n = len(shown["labels"])
    right = lambda pred: int((np.asarray(pred) == np.asarray(shown["labels"])).sum())  # noqa: E731
    base, pal = table.iloc[0], table[~table["baseline"]].iloc[0]
    fmt = lambda v: f"{v:.2f}" if np.isfinite(v) else "–"  # noqa: E731
    text = (f"On the {n} test images shown, PAL predicts {right(shown['pal_pred'])}/{n} correctly, the baseline "
            f"{right(shown['base_pred'])}/{n}. Over the whole {shown['split']} set (mean over seeds), the "
            f"constrained channels' attribution correlates with the prior at r = "
            f"{fmt(pal['test_alignment_constrained_mean'])} for PAL vs {fmt(base['test_alignment_constrained_mean'])} "
            f"for the baseline (free channels: {fmt(pal['test_alignment_free_mean'])} vs "
            f"{fmt(base['test_alignment_free_mean'])})")
    if np.isfinite(pal.get("test_decoy_share_mean", np.nan)):
        text += (f"; share of the input attribution on the decoy: PAL {pal['test_decoy_share_mean']:.3f} vs "
                 f"baseline {base['test_decoy_share_mean']:.3f} "
                 f"(a uniform map: {base['test_decoy_area_share_mean']:.3f})")
    return text + "."


def prediction_table(maps: dict, classes: list[str]) -> pd.DataFrame:
    """The images of Fig. 7: samples.csv row, true class, each model's prediction."""
    return pd.DataFrame({"samples.csv row": maps["index"], "true class": [classes[k] for k in maps["labels"]],
                         "PAL prediction": [classes[k] for k in maps["pal_pred"]],
                         "baseline prediction": [classes[k] for k in maps["base_pred"]]}).set_index("samples.csv row")

