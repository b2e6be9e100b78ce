"""Expressions as action-unit (AU) activations, and what each AU does to the face geometry.

Each class is a prototype AU vector in the spirit of EMFACS (Friesen & Ekman): happiness = AU6+12 (+25),
surprise = AU1+2+5+25+26, fear = AU1+2+4+5+20+25(+26), anger = AU4+7+23(+17), sadness = AU1+4+15(+17),
disgust = AU9+10 (+4, 15, 17), neutral = none. A sample's AU vector is ``intensity * prototype`` plus a
little random activity in every AU (people are never perfectly still), with a share of low-intensity,
ambiguous faces. :func:`controls` turns an AU vector into geometric controls in face units (about half a
face width per unit, y pointing down) that :mod:`palbench.data.synth.face` applies to the landmarks and
:mod:`palbench.data.synth.render` uses for wrinkles and folds; nothing else in the image depends on the class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from palbench.data.canonical import CLASSES

#: Action units modelled (FACS numbering; AU43 = eyes closing/drooping lids).
AUS: tuple[str, ...] = (
    "AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU10",
    "AU12", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU43",
)  # fmt: skip
_AU = {name: i for i, name in enumerate(AUS)}

#: Prototype AU activations per class (RAF-DB order, see ``CLASSES``), at full intensity.
PROTOTYPES: dict[str, dict[str, float]] = {
    "surprise": {"AU1": 1.0, "AU2": 1.0, "AU5": 0.9, "AU25": 1.0, "AU26": 1.0},
    "fear": {"AU1": 1.0, "AU2": 0.5, "AU4": 0.8, "AU5": 1.0, "AU20": 1.0, "AU25": 1.0, "AU26": 0.3},
    "disgust": {"AU4": 0.4, "AU9": 1.0, "AU10": 1.0, "AU15": 0.4, "AU17": 0.5, "AU25": 0.2},
    "happiness": {"AU6": 1.0, "AU12": 1.0, "AU25": 1.0, "AU26": 0.2},
    "sadness": {"AU1": 1.0, "AU4": 0.6, "AU15": 1.0, "AU17": 0.6, "AU43": 0.5},
    "anger": {"AU4": 1.0, "AU5": 0.15, "AU7": 1.0, "AU17": 0.4, "AU23": 1.0},
    "neutral": {},
}


def prototype(label: int) -> np.ndarray:
    """Prototype AU vector ``[len(AUS)]`` (float64) of class ``label`` (index into ``CLASSES``)."""
    v = np.zeros(len(AUS))
    for name, a in PROTOTYPES[CLASSES[label]].items():
        v[_AU[name]] = a
    return v


def sample_expression(
    rng: np.random.Generator, label: int, low_share: float = 0.15, jitter: float = 0.05
) -> tuple[np.ndarray, float]:
    """Draw a sample's AU vector ``[len(AUS)]`` and its intensity in [0.1, 1].

    With probability ``low_share`` the intensity is low (0.1–0.35: ambiguous, close to neutral), otherwise
    0.35–1. Every AU gets extra ``|N(0, jitter)|`` activity, also for neutral faces. Neutral's intensity
    is reported as 0.
    """
    low = rng.random() < low_share
    intensity = rng.uniform(0.1, 0.35) if low else rng.uniform(0.35, 1.0)
    noise = np.abs(rng.normal(0.0, jitter, len(AUS)))
    if CLASSES[label] == "neutral":
        intensity = 0.0
    return np.clip(intensity * prototype(label) + noise, 0.0, 1.2), float(intensity)


@dataclass(frozen=True)
class Controls:
    """Geometric effect of an AU vector, in face units (y down) or as factors. All zero/one when neutral."""

    brow_inner_up: float  # inner brow ends move up (AU1)
    brow_outer_up: float  # outer brow ends move up (AU2)
    brow_down: float  # whole brow moves down, the inner end more (AU4, AU9)
    brow_together: float  # inner brow ends move toward the midline (AU4)
    upper_lid: float  # factor on the upper-lid opening (AU5 up; AU6, AU7, AU43 down)
    lower_lid: float  # factor on the lower-lid opening (AU6, AU7 raise the lower lid)
    cheek_up: float  # cheek raise (AU6): cheeks and the under-eye fold move up
    nose_up: float  # nose tip and wings move up (AU9, AU10)
    nostril_wide: float  # relative widening of the nose wings
    nose_wrinkle: float  # darkness of the wrinkles across the nose bridge (AU9)
    upper_lip_up: float  # upper lip moves up, baring the teeth (AU10)
    corner_dy: float  # lip corners: negative = up (AU12), positive = down (AU15)
    mouth_width: float  # factor on the mouth width (AU12, AU20 wider; AU23, AU26 narrower)
    lip_upper: float  # factor on the upper-lip thickness (AU23 presses the lips thin)
    lip_lower: float  # factor on the lower-lip thickness
    lower_lip_up: float  # lower lip pushed up by the chin (AU17)
    open_upper: float  # gap above the lip line (AU25, AU26)
    open_lower: float  # gap below the lip line, i.e. the lower lip drops with the jaw (AU25, AU26)
    jaw_drop: float  # chin moves down (AU26)
    fold: float  # darkness of the nasolabial folds
    forehead: float  # darkness of horizontal forehead wrinkles (AU1+AU2)
    glabella: float  # darkness of vertical lines between the brows (AU4)
    under_eye: float  # darkness of the fold under the eyes (AU6)


def controls(au: np.ndarray) -> Controls:
    """Map an AU vector ``[len(AUS)]`` to :class:`Controls`."""
    a = dict(zip(AUS, au.tolist()))
    press = min(a["AU23"], 1.0)
    return Controls(
        brow_inner_up=0.22 * a["AU1"],
        brow_outer_up=0.18 * a["AU2"],
        brow_down=0.11 * a["AU4"] + 0.05 * a["AU9"],
        brow_together=0.08 * a["AU4"] + 0.02 * a["AU9"],
        upper_lid=min(max(1 + 0.9 * a["AU5"] - 0.45 * a["AU7"] - 0.3 * a["AU6"] - 0.45 * a["AU43"], 0.3), 2.2),
        lower_lid=min(max(1 + 0.3 * a["AU5"] - 0.65 * a["AU7"] - 0.75 * a["AU6"], 0.15), 1.6),
        cheek_up=a["AU6"],
        nose_up=0.06 * a["AU9"] + 0.02 * a["AU10"],
        nostril_wide=0.2 * a["AU9"] + 0.1 * a["AU10"],
        nose_wrinkle=min(a["AU9"], 1.0),
        upper_lip_up=0.1 * a["AU10"] + 0.03 * a["AU9"],
        corner_dy=-0.16 * a["AU12"] + 0.13 * a["AU15"] + 0.02 * a["AU20"] - 0.02 * a["AU10"],
        mouth_width=1 + 0.2 * a["AU12"] + 0.3 * a["AU20"] - 0.12 * a["AU23"] - 0.2 * a["AU26"] + 0.05 * a["AU15"],
        lip_upper=max(0.3, 1 - 0.55 * a["AU23"] - 0.2 * a["AU12"] - 0.15 * a["AU20"] - 0.1 * a["AU10"]),
        lip_lower=max(0.3, 1 - 0.5 * a["AU23"] + 0.15 * a["AU17"] - 0.15 * a["AU20"] - 0.1 * a["AU12"]),
        lower_lip_up=0.04 * a["AU17"],
        open_upper=(0.02 * a["AU25"] + 0.05 * a["AU26"]) * (1 - press),
        open_lower=(0.05 * a["AU25"] + 0.27 * a["AU26"]) * (1 - press),
        jaw_drop=0.24 * a["AU26"] + 0.02 * a["AU25"],
        fold=min(0.15 + 0.55 * max(a["AU12"], a["AU9"], a["AU10"]), 0.8),
        forehead=min(0.6 * (a["AU1"] + a["AU2"]) / 2, 0.6),
        glabella=min(0.6 * a["AU4"], 0.6),
        under_eye=min(0.5 * a["AU6"], 0.5),
    )
