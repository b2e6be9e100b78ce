"""What claims (a), (b), (c), (f) and (g) compare: their parts, built from the runs of the protocol's studies.

Each builder reads an :class:`~palbench.claims.evidence.Evidence` and returns the claim's parts, every arm
labelled in the paper's words (:mod:`palbench.vocabulary`); a part whose configuration the protocol or the
results lack has a *missing* arm saying which study or setting to add. Claims (d) and (e), which group the
layers of Fig. 3, are :mod:`palbench.claims.layers`; :func:`claim_parts` gives the parts of all seven.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from palbench.claims.definitions import PAPER_C1
from palbench.claims.evidence import Arm, Evidence, Part, absent, no_study, slope_arm
from palbench.claims.layers import claim_d, claim_e
from palbench.config import PalConfig
from palbench.config.protocol import canonical
from palbench.vocabulary import c1_name, channels_name, method_name


def _setting_words(conf: Mapping[str, Any]) -> str:
    """``Grad × Input, Mean of half at conv10`` (the settings ``conf`` has)."""
    words = [method_name(conf["method"])] if "method" in conf else []
    if "strategy" in conf:
        words.append(channels_name(conf["strategy"], conf.get("c1", 1.0)))
    return ", ".join(words) + (f" at {conf['layer']}" if "layer" in conf else "")


# ---------------------------------------------------------------- (a) PAL > baseline
def claim_a(ev: Evidence) -> list[Part]:
    """(a) The protocol's default PAL configuration (``train``, σ = 0) − its baseline (``pal_weight = 0``)."""
    defaults = ev.defaults
    base = ev.arm("the baseline (cross-entropy only)", canonical({**defaults, "pal_weight": 0}, defaults))
    if not float(defaults.get("pal_weight", PalConfig.pal_weight)) > 0:  # as canonical() reads it
        return [Part("a", "PAL − baseline", absent("PAL", "train.pal_weight is 0: the default is the baseline"),
                     base)]
    pal = ev.arm(f"PAL (the default: {_setting_words(defaults)})", canonical(defaults, defaults))
    if pal.missing:
        pal = absent(pal.label, pal.missing + "; a study that trains the default configuration (e.g. `comparison`, "
                                              "Table III) provides it")
    return [Part("a", "PAL − baseline", pal, base)]


# ---------------------------------------------------------------- (b), (c) Table I
def claim_b(ev: Evidence) -> list[Part]:
    """(b) Grad × Input − Grad for each channel strategy of the ablation study that has both methods."""
    if not ev.has_study("ablation"):
        reason = no_study("ablation", ev.params.get("protocol", "?"))
        return [Part("b", "Grad × Input − Grad", absent("Grad × Input", reason), absent("Grad", reason))]
    parts, confs = [], ev.study("ablation")[1:]
    for conf in confs:
        if conf.get("method") != "grad_input":
            continue
        grad = next((c for c in confs if c == {**conf, "method": "grad"}), None)
        if grad is None:
            continue
        channels = channels_name(conf["strategy"], conf["c1"])
        parts.append(Part("b", f"Grad × Input − Grad, {channels}", ev.arm(f"Grad × Input, {channels}", conf),
                          ev.arm(f"Grad, {channels}", grad)))
    if not parts:
        reason = "the `ablation` study has no channel strategy trained with both Grad and Grad × Input"
        return [Part("b", "Grad × Input − Grad", absent("Grad × Input", reason), absent("Grad", reason))]
    return parts


def _ablation_arm(ev: Evidence, strategy: str, c1: float) -> Arm:
    label = f"Grad, {channels_name(strategy, c1)}"
    if not ev.has_study("ablation"):
        return absent(label, no_study("ablation", ev.params.get("protocol", "?")))
    conf = ev.point("ablation", method="grad", strategy=strategy, c1=c1)
    return ev.arm(label, conf, f"the `ablation` study has no {label} configuration; add "
                               f"{{method: grad, strategy: {strategy}, c1: {c1}}} to studies.ablation.vary")


def claim_c(ev: Evidence) -> list[Part]:
    """(c) Mean − All Channels and Mean of half − All Channels, Grad rows of the ablation study."""
    every = _ablation_arm(ev, "all", 1.0)
    return [Part("c", f"{channels_name('mean', c1)} − All Channels (Grad)", _ablation_arm(ev, "mean", c1), every)
            for c1 in (1.0, 0.5)]


# ---------------------------------------------------------------- (f) Fig. 4
def claim_f(ev: Evidence) -> list[Part]:
    """(f) σ = 0 − each σ > 0; the per-seed slope against σ < 0; each σ − the baseline."""
    if not ev.has_study("noise"):
        reason = no_study("noise", ev.params.get("protocol", "?"))
        return [Part("f", "noisy landmarks", absent("σ = 0", reason), absent("σ > 0", reason))]
    confs = ev.study("noise")
    by_sigma = {float(c.get("landmark_noise", 0)): c for c in confs[1:]}
    arms = {s: ev.arm(f"σ = {s:g}", by_sigma[s]) for s in sorted(by_sigma)}
    clean = arms.get(0.0) or absent("σ = 0", "the `noise` study has no σ = 0 (correct landmarks); add 0 to "
                                             "studies.noise.vary.landmark_noise")
    noisy = [s for s in arms if s > 0]
    parts = [Part("f", f"σ = 0 − σ = {s:g}", clean, arms[s]) for s in noisy]
    if not noisy:
        parts.append(Part("f", "σ = 0 − σ > 0", clean, absent("σ > 0", "the `noise` study has no σ > 0")))
    slope = slope_arm("slope of accuracy against σ", arms)
    parts.append(Part("f", "slope against σ", slope, Arm("0 (no trend)", {s: 0.0 for s in slope.seeds}),
                      claimed="<", unit="points per pixel of σ"))
    base = ev.arm("the baseline", confs[0])
    parts += [Part("f", f"σ = {s:g} − baseline", arms[s], base) for s in arms]
    return parts


# ---------------------------------------------------------------- (g) Table II
def claim_g(ev: Evidence) -> list[Part]:
    """(g) C/2 − each other C1 of the channels study (and Table II's), C/4 − 3C/4, C/4 − C."""
    if not ev.has_study("channels"):
        reason = no_study("channels", ev.params.get("protocol", "?"))
        return [Part("g", "C/2 − other C1", absent("C/2", reason), absent("other C1", reason))]
    studied = [float(c["c1"]) for c in ev.study("channels")[1:]]
    values = list(dict.fromkeys([*PAPER_C1, *studied]))

    def arm(c1: float) -> Arm:
        label = f"Mean of {c1_name(c1)}" if c1 != 1.0 else "Mean (C1 = C)"
        return ev.arm(label, ev.point("channels", c1=c1),
                      f"the `channels` study has no C1 = {c1_name(c1)}; add {c1:g} to studies.channels.vary.c1")

    pairs = [(0.5, c1) for c1 in values if c1 != 0.5] + [(0.25, 0.75), (0.25, 1.0)]
    return [Part("g", f"{c1_name(a)} − {c1_name(b)}", arm(a), arm(b)) for a, b in pairs]


# ---------------------------------------------------------------- all claims
def claim_parts(runs: pd.DataFrame, params: Mapping, catalogue: Sequence[Mapping | tuple] | None = None,
                metric: str = "test_accuracy") -> list[Part]:
    """Every part of claims (a)–(g), in order."""
    ev = Evidence(runs, params, metric)
    return [*claim_a(ev), *claim_b(ev), *claim_c(ev), *claim_d(ev, catalogue), *claim_e(ev, catalogue),
            *claim_f(ev), *claim_g(ev)]
