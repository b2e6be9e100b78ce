"""The evidence a claim is tested on: the runs of a configuration, found by its settings, as the arms of a
comparison.

A *part* of a claim compares two arms "A > B" (or "A < B" for a trend) over the same seeds. An arm is the
per-seed accuracies of one configuration, or a per-seed statistic of several (:func:`mean_arm`: the mean over
the late or early layers of Fig. 3; :func:`slope_arm`: the least-squares slope of accuracy against the landmark
noise σ, Fig. 4), or *missing* with the reason why it cannot be measured.

Configurations are found by their settings, never by their names: a study's configurations are
:func:`palbench.config.study_configs` (the ``train`` defaults + the study's ``set`` + a point of its ``vary``,
the baseline being the same with ``pal_weight = 0``), and a configuration's runs are the rows of the per-run
table whose setting columns equal it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from palbench.claims.definitions import STUDY_FIGURES
from palbench.config.names import config_name
from palbench.config.protocol import study_configs, train_settings


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


def is_missing(v: Any) -> bool:
    """Whether a setting or statistic is absent: ``None`` or a float NaN."""
    return v is None or (isinstance(v, float) and math.isnan(v))


def same_setting(value: Any, wanted: Any) -> bool:
    """Whether a ``runs.csv`` cell holds the setting ``wanted`` (numbers compared as floats, booleans and text
    as text; an absent setting matches an empty cell)."""
    if is_missing(wanted) or is_missing(value):
        return is_missing(wanted) and is_missing(value)
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
        """The settings of every configuration that a study does not change
        (:func:`~palbench.config.train_settings`)."""
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
                if not is_missing(wanted):
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
    """An arm that cannot be measured, and why."""
    return Arm(label, {}, missing=reason)


def no_study(study: str, protocol: str) -> str:
    """The reason of a part whose study the protocol lacks (naming what the study reproduces)."""
    return (f"protocol {protocol} has no `{study}` study ({STUDY_FIGURES.get(study, study)}); add studies.{study} "
            "to the protocol")


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
