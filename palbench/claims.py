"""The paper's comparative claims (§IV-C ablation study, §IV-D comparison) as verdicts computed from the runs.

Each claim is one or more *parts* "A > B" (or "A < B" for a trend). A part compares two arms over the same
seeds: the per-seed accuracies of two configurations, or a per-seed mean over several configurations (the
late and early layers of Fig. 3), or a per-seed least-squares slope (accuracy against the landmark noise σ,
Fig. 4) against 0. The difference A − B, its 95% Student-t interval and the paired p-value come from
:func:`palbench.results.paired_comparison` (paired over the seeds both arms have); differences are reported in
accuracy points (×100; a slope in points per pixel of σ). The verdict of a part claiming A > B:

* **supported** — the 95% interval lies entirely above 0;
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

Configurations are found by their settings, never by their names: a study's configurations are
:func:`palbench.config.study_configs` (the ``train`` defaults + the study's ``set`` + a point of its ``vary``,
the baseline being the same with ``pal_weight = 0``), and a configuration's runs are the rows of the per-run
table whose setting columns equal it. This module imports no torch: the layer catalogue that claims (d) and
(e) need (:func:`palbench.reports.maps.layer_positions`) is an argument.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from palbench.config.names import config_name
from palbench.config.protocol import canonical, study_configs, train_settings
from palbench.results import paired_comparison

SUPPORTED, CONTRADICTED, UNDECIDED, NOT_TESTED = "supported", "contradicted", "undecided at 95%", "not tested"
#: Verdicts in the order the headline counts them.
VERDICTS = (SUPPORTED, CONTRADICTED, UNDECIDED, NOT_TESTED)
#: The Table II values of C1 (fractions of the layer's channels C).
PAPER_C1 = (0.25, 0.5, 0.75, 1.0)
#: Columns of :func:`claims_table`.
COLUMNS = ("claim", "statement", "section", "part", "a", "b", "a_configs", "b_configs", "claimed", "unit",
           "n_pairs", "diff", "ci_low", "ci_high", "confidence", "p", "verdict", "reason")
#: The family-wise confidence of each claim: a claim's m tested parts each get a 1 − 0.05/m interval.
FAMILY_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Claim:
    """One claim of the paper: ``id`` (a–g), ``statement`` (in the paper's words), ``section`` (where the
    paper makes it) and the ``studies`` (protocol keys) whose runs test it."""

    id: str
    statement: str
    section: str
    studies: tuple[str, ...]


CLAIMS: dict[str, Claim] = {c.id: c for c in (
    Claim("a", "PAL improves on the baseline: the protocol's default PAL configuration beats cross-entropy alone",
          "§IV-C.3 (Tables I–II), §IV-D (Table III)", ("comparison", "ablation", "channels")),
    Claim("b", "Grad × Input works better than Grad whichever channel strategy is used",
          "§IV-C.2, Table I", ("ablation",)),
    Claim("c", "Forcing all channels to resemble the prior is too strong a constraint: All Channels is worse "
          "than Mean and than Mean of half (Grad rows)", "§IV-C.3, Table I", ("ablation",)),
    Claim("d", "PAL gives an important performance boost when applied to the last layers rather than the first",
          "§IV-C.1, Fig. 3", ("layers",)),
    Claim("e", "Layers that precede a max-pooling layer do worse than their neighbours (sparse attribution maps)",
          "§IV-C.1, Fig. 3", ("layers",)),
    Claim("f", "Correct landmarks (σ = 0) work best, accuracy decreases as σ grows, and PAL stays above the "
          "baseline at every σ", "§IV-C.4, Fig. 4", ("noise",)),
    Claim("g", "C1 = C/2 (Mean of half) gives the best results of Table II, and C1 = C/4 beats 3C/4 and C",
          "§IV-C.3, Table II", ("channels",)),
)}  # fmt: skip
#: Every study some claim reads (a report on the claims is worth running when the protocol has any of them).
CLAIM_STUDIES: tuple[str, ...] = ("layers", "ablation", "channels", "noise", "comparison")
#: What each study reproduces, for the reasons of untested parts.
STUDY_FIGURES = {"layers": "Fig. 3", "ablation": "Table I", "channels": "Table II", "noise": "Fig. 4",
                 "comparison": "Table III"}


# ---------------------------------------------------------------- the runs of a configuration
@dataclass(frozen=True)
class Arm:
    """One side of a comparison.

    Attributes:
        label: what it is, in the paper's words.
        seeds: ``{seed: value}`` (accuracy in [0, 1], or a per-seed statistic); empty when ``missing``.
        configs: the configuration names whose runs it reads.
        missing: why it cannot be measured ('' when it can).
    """

    label: str
    seeds: Mapping[int, float]
    configs: tuple[str, ...] = ()
    missing: str = ""


@dataclass(frozen=True)
class Part:
    """One comparison of a claim: ``a`` against ``b``, claimed ``">"`` (A > B) or ``"<"`` (A < B)."""

    claim: str
    name: str
    a: Arm
    b: Arm
    claimed: str = ">"
    unit: str = "points"


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def same_setting(value: Any, wanted: Any) -> bool:
    """Whether a ``runs.csv`` cell holds the setting ``wanted`` (numbers compared as floats, booleans and text
    as text; an absent setting matches an empty cell)."""
    if _missing(wanted) or _missing(value):
        return _missing(wanted) and _missing(value)
    if isinstance(wanted, (bool, np.bool_)) or isinstance(value, (bool, np.bool_)):
        return str(value).lower() == str(wanted).lower()
    if isinstance(wanted, (int, float)):
        try:
            return math.isclose(float(value), float(wanted), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return str(value) == str(wanted)


@dataclass(frozen=True, eq=False)
class Evidence:
    """The per-run table (``results/runs.csv``) and the protocol params it was trained for.

    Attributes:
        runs: one row per run: ``run, config, seed``, the settings, and ``metric``.
        params: ``params.yaml`` (``train``, ``seeds``, ``studies``).
        metric: the accuracy compared (in [0, 1]).
    """

    runs: pd.DataFrame
    params: Mapping
    metric: str = "test_accuracy"

    @property
    def defaults(self) -> dict:
        """The settings of every configuration that a study does not change (``params["train"]``)."""
        return train_settings(self.params)

    def has_study(self, study: str) -> bool:
        return study in (self.params.get("studies") or {})

    def study(self, study: str) -> list[dict]:
        """The study's configurations, its baseline first (:func:`palbench.config.study_configs`)."""
        return study_configs(self.params, study)

    @cached_property
    def setting_keys(self) -> list[str]:
        """Every setting a configuration of the protocol can have (the ``train`` keys and the studies' keys)."""
        keys = dict.fromkeys(self.defaults)
        for study in self.params.get("studies") or {}:
            for conf in self.study(study):
                keys.update(dict.fromkeys(conf))
        return list(keys)

    def runs_of(self, conf: Mapping[str, Any]) -> pd.DataFrame:
        """The rows whose settings are ``conf`` (a setting ``conf`` lacks must be empty in the row)."""
        mask = pd.Series(True, index=self.runs.index)
        for key in self.setting_keys:
            wanted = conf.get(key)
            if key not in self.runs.columns:
                if not _missing(wanted):
                    return self.runs.iloc[0:0]
                continue
            mask &= self.runs[key].map(lambda v, w=wanted: same_setting(v, w)).astype(bool)
        return self.runs[mask]

    def arm(self, label: str, conf: Mapping[str, Any] | None, why_absent: str = "") -> Arm:
        """The runs of configuration ``conf`` as an arm; ``conf = None`` (not in the protocol): ``why_absent``."""
        if conf is None:
            return Arm(label, {}, missing=why_absent)
        rows = self.runs_of(conf)
        rows = rows[pd.to_numeric(rows[self.metric], errors="coerce").notna()] if len(rows) else rows
        if rows.empty:
            name = config_name(conf, self.defaults)
            return Arm(label, {}, (name,), f"no run of {label} (configuration {name}) in results/runs.csv")
        seeds = {int(s): float(v) for s, v in zip(rows["seed"], rows[self.metric])}
        return Arm(label, seeds, tuple(dict.fromkeys(str(c) for c in rows["config"])))

    def point(self, study: str, **settings: Any) -> dict | None:
        """The study's PAL configuration with ``settings`` (``None`` when the study has none)."""
        for conf in self.study(study)[1:]:
            if all(same_setting(conf.get(k), v) for k, v in settings.items()):
                return conf
        return None


def mean_arm(label: str, arms: Sequence[Arm]) -> Arm:
    """The per-seed mean of several arms over the seeds they all have (missing if any of them is)."""
    missing = [a.missing for a in arms if a.missing]
    configs = tuple(c for a in arms for c in a.configs)
    if missing or not arms:
        return Arm(label, {}, configs, "; ".join(missing) or "no configuration")
    seeds = sorted(set.intersection(*(set(a.seeds) for a in arms)))
    return Arm(label, {s: float(np.mean([a.seeds[s] for a in arms])) for s in seeds}, configs)


def absent(label: str, reason: str) -> Arm:
    return Arm(label, {}, missing=reason)


def no_study(study: str, protocol: str) -> str:
    return (f"protocol {protocol} has no `{study}` study ({STUDY_FIGURES.get(study, study)}); add studies.{study} "
            "to the protocol")


# ---------------------------------------------------------------- verdicts
def verdict(ci_low: float, ci_high: float, n_pairs: int, claimed: str = ">", confidence: float = 0.95
            ) -> tuple[str, str]:
    """``(verdict, reason)`` of a part claiming A > B (``claimed = ">"``) or A < B (``"<"``) from the
    ``confidence`` interval of A − B over ``n_pairs`` paired seeds (see the module docstring)."""
    if n_pairs < 2 or _missing(ci_low) or _missing(ci_high):
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


# ---------------------------------------------------------------- names in the paper's words
def c1_name(c1: float) -> str:
    """``C/4``, ``C/2``, ``3C/4``, ``C`` (else ``0.3C``)."""
    f = Fraction(float(c1)).limit_denominator(16)
    if abs(float(f) - float(c1)) > 1e-9:
        return f"{float(c1):g}C"
    num = "" if f.numerator == 1 else str(f.numerator)
    return f"{num}C" if f.denominator == 1 else f"{num}C/{f.denominator}"


def channels_name(strategy: str, c1: float) -> str:
    """``All Channels``, ``Mean``, ``Mean of half``, ``Mean of C/4`` (the paper's names)."""
    if strategy == "all":
        return "All Channels" if float(c1) == 1.0 else f"All of {c1_name(c1)}"
    return {1.0: "Mean", 0.5: "Mean of half"}.get(float(c1), f"Mean of {c1_name(c1)}")


METHOD_NAMES = {"grad": "Grad", "grad_input": "Grad × Input", "gradcam": "Grad-CAM"}


def _span(layers: Sequence[str]) -> str:
    return f"{layers[0]}–{layers[-1]}" if len(layers) > 1 else layers[0]


def _setting_words(conf: Mapping[str, Any]) -> str:
    """``Grad × Input, Mean of half at conv10`` (the settings ``conf`` has)."""
    words = [METHOD_NAMES.get(conf["method"], conf["method"])] if "method" in conf else []
    if "strategy" in conf:
        words.append(channels_name(conf["strategy"], conf.get("c1", 1.0)))
    return ", ".join(words) + (f" at {conf['layer']}" if "layer" in conf else "")


# ---------------------------------------------------------------- (a) PAL > baseline
def claim_a(ev: Evidence) -> list[Part]:
    """(a) The protocol's default PAL configuration (``train``, σ = 0) − its baseline (``pal_weight = 0``)."""
    defaults = ev.defaults
    base = ev.arm("the baseline (cross-entropy only)", canonical({**defaults, "pal_weight": 0}, defaults))
    if not float(defaults.get("pal_weight", 1.0)) > 0:  # 1.0: TrainConfig's default, as canonical() reads it
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


# ---------------------------------------------------------------- (d), (e) Fig. 3
def _catalogue(catalogue: Sequence[Mapping | tuple] | None) -> list[tuple[str, bool]]:
    """``[(layer, feeds a max-pool)]`` from :func:`palbench.reports.maps.layer_positions` rows or pairs."""
    rows = []
    for row in catalogue or []:
        name, pool = (row["name"], row["before_pool"]) if isinstance(row, Mapping) else row
        rows.append((str(name), bool(pool)))
    return rows


def layer_blocks(catalogue: Sequence[Mapping | tuple]) -> list[list[str]]:
    """The catalogue cut after every layer that feeds a max-pool: VGG16's five blocks conv1–2, conv3–4,
    conv5–7, conv8–10, conv11–13 (layers after the last pool form a last block)."""
    blocks, current = [], []
    for name, pool in _catalogue(catalogue):
        current.append(name)
        if pool:
            blocks.append(current)
            current = []
    return blocks + ([current] if current else [])


def early_and_late(catalogue: Sequence[Mapping | tuple]) -> tuple[list[str], list[str]]:
    """``(early, late)`` layers: the first and the last two blocks of :func:`layer_blocks` (one block each
    with fewer than four blocks; none with fewer than two)."""
    blocks = layer_blocks(catalogue)
    k = min(2, len(blocks) // 2)
    if k == 0:
        return [], []
    return [n for b in blocks[:k] for n in b], [n for b in blocks[-k:] for n in b]


def pool_neighbours(catalogue: Sequence[Mapping | tuple], studied: Sequence[str]) -> dict[str, list[str]]:
    """``{studied pre-pool layer: its studied immediate neighbours in the catalogue that feed no max-pool}``,
    for the pre-pool layers that have at least one."""
    rows = _catalogue(catalogue)
    out = {}
    for i, (name, pool) in enumerate(rows):
        if not pool or name not in studied:
            continue
        near = [rows[j][0] for j in (i - 1, i + 1) if 0 <= j < len(rows) and not rows[j][1] and rows[j][0] in studied]
        if near:
            out[name] = near
    return out


def studied_layers(ev: Evidence) -> dict[str, dict]:
    """``{layer: configuration}`` of the layers study's PAL configurations (empty without the study)."""
    if not ev.has_study("layers"):
        return {}
    return {str(conf["layer"]): conf for conf in ev.study("layers")[1:]}


def _layers_unavailable(ev: Evidence, catalogue: Sequence | None) -> str:
    if not ev.has_study("layers"):
        return no_study("layers", ev.params.get("protocol", "?"))
    if not catalogue:
        return "no layer catalogue was given (the order of the layers and their max-pools)"
    unknown = [layer for layer in studied_layers(ev) if layer not in dict(_catalogue(catalogue))]
    if unknown:
        return f"studied layer(s) {', '.join(unknown)} not in the backbone's catalogue"
    others = {repr(sorted((k, repr(v)) for k, v in c.items() if k != "layer")) for c in ev.study("layers")[1:]}
    if len(others) > 1 or len(studied_layers(ev)) < len(ev.study("layers")) - 1:
        return "the `layers` study varies more than the layer"
    return ""


def _layer_mean(ev: Evidence, label: str, layers: Sequence[str]) -> Arm:
    confs = studied_layers(ev)
    return mean_arm(label, [ev.arm(f"PAL at {layer}", confs[layer]) for layer in layers])


def claim_d(ev: Evidence, catalogue: Sequence | None) -> list[Part]:
    """(d) Per seed, the mean over the studied late layers − the mean over the studied early layers."""
    name = "late − early layers"
    why = _layers_unavailable(ev, catalogue)
    if why:
        return [Part("d", name, absent("late layers", why), absent("early layers", why))]
    early, late = early_and_late(catalogue)
    arms = []
    for group, layers in (("late", late), ("early", early)):
        studied = [layer for layer in layers if layer in studied_layers(ev)]
        label = f"{group} layers ({_span(layers) if layers else 'none'})"
        if not layers:
            arms.append(absent(label, "the catalogue has fewer than two max-pool blocks: no early and late layers"))
        elif not studied:
            arms.append(absent(label, f"no {group} layer ({', '.join(layers)}) studied; add one to "
                                      "studies.layers.vary.layer"))
        else:
            arms.append(_layer_mean(ev, f"{label}, mean of studied {', '.join(studied)}", studied))
    return [Part("d", name, *arms)]


def claim_e(ev: Evidence, catalogue: Sequence | None) -> list[Part]:
    """(e) Per seed, the mean over studied pre-pool layers − the mean over their studied neighbours."""
    name = "pre-pool − neighbouring layers"
    why = _layers_unavailable(ev, catalogue)
    if why:
        return [Part("e", name, absent("pre-pool layers", why), absent("neighbours", why), claimed="<")]
    rows = _catalogue(catalogue)
    studied = list(studied_layers(ev))
    pairs = pool_neighbours(catalogue, studied)
    if not pairs:
        pre = [n for n, pool in rows if pool and n in studied]
        index = {n: i for i, (n, _) in enumerate(rows)}
        wanted = [rows[j][0] for p in pre for j in (index[p] - 1, index[p] + 1)
                  if 0 <= j < len(rows) and not rows[j][1]]
        why = (f"no studied neighbour of the studied pre-pool layers {', '.join(pre)}: add one of "
               f"{', '.join(dict.fromkeys(wanted))} to studies.layers.vary.layer" if pre else
               f"no studied layer feeds a max-pool ({', '.join(n for n, pool in rows if pool)})")
        return [Part("e", name, absent("pre-pool layers", why), absent("neighbours", why), claimed="<")]
    near = [n for n, _ in rows if any(n in v for v in pairs.values())]
    return [Part("e", name, _layer_mean(ev, f"pre-pool layers, mean of {', '.join(pairs)}", list(pairs)),
                 _layer_mean(ev, f"their neighbours, mean of {', '.join(near)}", near), claimed="<")]


def layer_grouping(params: Mapping, catalogue: Sequence[Mapping | tuple] | None) -> pd.DataFrame:
    """The grouping claims (d) and (e) use, one row per catalogue layer: ``layer, block, feeds max-pool,
    (d) group`` (early / late / ''), ``(e) role`` (pre-pool / neighbour / ''), ``studied``."""
    ev = Evidence(pd.DataFrame(), params)
    studied = list(studied_layers(ev))
    early, late = early_and_late(catalogue or [])
    pairs = pool_neighbours(catalogue or [], studied)
    near = {n for v in pairs.values() for n in v}
    pools, rows = dict(_catalogue(catalogue)), []
    for b, block in enumerate(layer_blocks(catalogue or []), start=1):
        for layer in block:
            rows.append({"layer": layer, "block": b, "feeds max-pool": pools[layer],
                         "(d) group": "early" if layer in early else "late" if layer in late else "",
                         "(e) role": _role(layer, pools[layer], layer in studied, pairs, near),
                         "studied": layer in studied})
    return pd.DataFrame(rows, columns=["layer", "block", "feeds max-pool", "(d) group", "(e) role", "studied"])


def _role(layer: str, pool: bool, studied: bool, pairs: Mapping[str, list[str]], near: set[str]) -> str:
    if layer in pairs:
        return "pre-pool"
    if pool and studied:
        return "pre-pool, no studied neighbour (left out)"
    return "neighbour" if layer in near else ""


# ---------------------------------------------------------------- (f) Fig. 4
def slope_arm(label: str, by_sigma: Mapping[float, Arm]) -> Arm:
    """Per seed, the least-squares slope of accuracy against σ over every σ (seeds that have all of them)."""
    arms = list(by_sigma.values())
    configs = tuple(c for a in arms for c in a.configs)
    if len(by_sigma) < 2:
        return Arm(label, {}, configs, "fewer than two σ studied: no slope")
    missing = [a.missing for a in arms if a.missing]
    if missing:
        return Arm(label, {}, configs, "; ".join(missing))
    sigmas = np.array(list(by_sigma), dtype=np.float64)
    seeds = sorted(set.intersection(*(set(a.seeds) for a in arms)))
    slopes = {s: float(np.polyfit(sigmas, [a.seeds[s] for a in arms], 1)[0]) for s in seeds}
    return Arm(label, slopes, configs)


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


def evaluate_claims(runs: pd.DataFrame, params: Mapping, catalogue: Sequence[Mapping | tuple] | None = None,
                    metric: str = "test_accuracy") -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(parts, summary)``: :func:`claims_table` and :func:`claim_summary`."""
    table = claims_table(runs, params, catalogue, metric)
    return table, claim_summary(table)


# ---------------------------------------------------------------- reading
def counts_text(summary: pd.DataFrame) -> str:
    """``2 supported (a, g), 1 contradicted (c), 4 undecided at 95% (b, d, e, f) of 7 claims``."""
    groups = [f"{(summary['verdict'] == v).sum()} {v} ({', '.join(summary.index[summary['verdict'] == v])})"
              for v in VERDICTS if (summary["verdict"] == v).any()]
    return f"{', '.join(groups)} of {len(summary)} claims"


def guessing_margin(level: float, n: int) -> float:
    """Two binomial standard errors of a classifier scoring ``level`` on ``n`` test images."""
    return 2 * math.sqrt(level * (1 - level) / n)


def reaches_chance(ci_low, mean, level: float, n_test: int | None) -> np.ndarray:
    """The one at-chance rule (claims caveat, report tables): a configuration's accuracy is indistinguishable
    from guessing when the 95% interval of its mean over seeds reaches ``level`` (the larger of 1/K and the
    majority class's share); with one seed (no interval), when its mean is within two binomial standard
    errors of ``level`` on ``n_test`` images (2 points when unknown). Arrays ``[n]`` in, bool ``[n]`` out."""
    margin = guessing_margin(level, n_test) if n_test else 0.02
    ci_low, mean = np.asarray(ci_low, dtype=float), np.asarray(mean, dtype=float)
    return np.where(np.isfinite(ci_low), ci_low, mean - margin) <= level


def chance_configs(table: pd.DataFrame, runs: pd.DataFrame, n_classes: int, n_test: int | None = None,
                   metric: str = "test_accuracy", level: float | None = None) -> tuple[list[str], float]:
    """``(configurations, level)``: the configurations the tested parts read whose accuracy over seeds is at
    chance (:func:`reaches_chance`), with ``level`` the guessing level (default 1/K; the reports pass the
    larger of 1/K and the majority share)."""
    from palbench.results import summarize

    level = 1.0 / n_classes if level is None else level
    stats = {c: summarize(g[metric].to_numpy(float)) for c, g in runs.groupby("config")}
    tested = [c for c in tested_configs(table) if c in stats]
    flags = reaches_chance([stats[c]["ci_low"] for c in tested], [stats[c]["mean"] for c in tested], level, n_test)
    return [c for c, f in zip(tested, flags) if f], level


def tested_configs(table: pd.DataFrame) -> list[str]:
    """The configurations the tested parts of a :func:`claims_table` read, in order of appearance."""
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
    return "–" if _missing(x) else (f"{x:+.2f}" if signed else f"{x:.2f}")


def format_parts(table: pd.DataFrame) -> pd.DataFrame:
    """The parts as a readable table: claim, part, A, B, ``A − B`` and its interval (points; its level: 95% per
    claim, Bonferroni over the claim's parts), p, paired seeds, verdict, reason."""
    out = pd.DataFrame({
        "claim": table["claim"], "part": table["part"], "A": table["a"], "B": table["b"],
        "claimed": table["claimed"],
        "A − B": [_fmt(d) + ("" if u == "points" else f" ({u})") if not _missing(d) else "–"
                  for d, u in zip(table["diff"], table["unit"])],
        "CI": [f"[{_fmt(lo)}, {_fmt(hi)}]" if not _missing(lo) else "–"
               for lo, hi in zip(table["ci_low"], table["ci_high"])],
        "level": [f"{100 * c:.4g}%" for c in table["confidence"]],
        "p (paired t)": ["–" if _missing(p) else "< 0.001" if p < 0.001 else f"{p:.3f}" for p in table["p"]],
        "seeds": table["n_pairs"].astype(int), "verdict": table["verdict"], "reason": table["reason"],
    })  # fmt: skip
    return out.set_index(["claim", "part"])
