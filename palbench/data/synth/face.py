"""Face geometry: identities and the 68 iBUG landmarks in face units.

Face units: x to the image's right, y down, origin near the nose tip, about one unit per half face width
(the jaw at ear level is at x = ±W with W ≈ 1). The shape follows the proportions of the usual iBUG-68
mean shape (eyes at y ≈ -0.38, brows ≈ -0.62, nose tip ≈ 0.1, mouth ≈ 0.55, chin ≈ 1.25), built from a
handful of identity parameters so that faces differ in shape and feature sizes, and deformed by the
expression :class:`~palbench.data.synth.expressions.Controls`.

iBUG-68 order (point 0 is the subject's right jaw end = the image's LEFT): jaw 0–16, brows 17–21 (image
left, outer → inner) and 22–26 (inner → outer), nose bridge 27–30 (top → tip), nose base 31–35 (left →
right), eyes 36–41 (left eye: outer corner, upper lid ×2, inner corner, lower lid ×2) and 42–47 (right eye:
inner corner, upper lid ×2, outer corner, lower lid ×2), outer lip 48–59 (left corner, clockwise on the
image), inner lip 60–67.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from palbench.data.synth.expressions import Controls

#: ``MIRROR[i]`` is the iBUG index of point ``i``'s left/right counterpart (itself on the midline).
MIRROR = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # brows
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]  # nose
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]  # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lip
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner lip
)
# fmt: off
#: Points defined on the image-left half and the midline; the rest are mirrored from these.
_LEFT = np.array([*range(0, 9), *range(17, 22), 27, 28, 29, 30, 31, 32, 33, *range(36, 42),
                  48, 49, 50, 51, 57, 58, 59, 60, 61, 62, 66, 67])
# fmt: on

#: Groups of iBUG indices (for tests, previews and feature-wise checks).
GROUPS: dict[str, np.ndarray] = {
    "jaw": np.arange(0, 17),
    "brows": np.arange(17, 27),
    "nose": np.arange(27, 36),
    "eyes": np.arange(36, 48),
    "mouth": np.arange(48, 68),
}

_SKIN_LIGHT = np.array([240.0, 205.0, 180.0])
_SKIN_DARK = np.array([95.0, 62.0, 45.0])
_HAIR = np.array([[25, 20, 18], [60, 40, 28], [110, 75, 45], [180, 140, 90], [140, 135, 130], [85, 35, 20]], float)
_IRIS = np.array([[70, 45, 25], [40, 28, 20], [60, 95, 140], [75, 100, 70], [95, 95, 100]], float)


@dataclass(frozen=True)
class Identity:
    """Shape and colours of one person (face units; colours RGB 0–255 as float ``[3]``)."""

    jaw_w: float  # half width of the jaw at ear level
    jaw_top: float  # y of the jaw ends (points 0 and 16), about eye level
    chin: float  # y of the chin (point 8)
    jaw_round: float  # superellipse exponent of the jaw (2 = round, larger = squarer)
    forehead: float  # height of the skull above the jaw ends
    eye_y: float
    eye_dx: float  # half distance between the eye centres
    eye_w: float  # half eye width
    eye_h: float  # upper-lid opening
    eye_tilt: float  # outer corners higher (positive) or lower
    brow_gap: float  # brow base above the eye centre
    brow_inner: float  # x distance of the inner brow end from the midline
    brow_len: float
    brow_arch: float
    brow_thick: float
    nose_tip: float  # y of the nose tip (point 30)
    nose_w: float  # half width of the nose wings
    mouth_y: float  # y of the lip line
    mouth_w: float  # half mouth width (corner x)
    lip_upper: float
    lip_lower: float
    corner_rest: float  # resting lip-corner offset (some faces turn down at rest)
    gaze: tuple[float, float]  # iris offset as a fraction of the eye half-width / opening
    hair_style: int  # 0 bald/shaved, 1 short, 2 long
    hairline: float  # y of the hairline at the midline
    hair_sides: float  # how far the hairline drops toward the temples
    skin: np.ndarray
    lip: np.ndarray
    hair: np.ndarray
    brow: np.ndarray
    iris: np.ndarray
    asym: np.ndarray  # [68, 2] small per-point asymmetry


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw one identity from ``rng`` (face shape, feature sizes and placement, skin/hair/eye colours)."""
    u = rng.uniform
    eye_y = u(-0.42, -0.33)
    nose_tip = u(0.05, 0.16)
    mouth_y = nose_tip + 0.18 + u(0.2, 0.28)
    lip_lower = u(0.07, 0.11)
    tone = u(0.0, 1.0) ** 1.3
    skin = _SKIN_LIGHT * (1 - tone) + _SKIN_DARK * tone
    skin = np.clip(skin * u(0.95, 1.05) + rng.normal(0, 5, 3), 0, 255)
    lip = np.clip(skin * np.array([0.82, 0.52, 0.52]) + np.array([25.0, 0.0, 5.0]) * (1 - 0.5 * tone), 0, 255)
    hair = _HAIR[rng.integers(len(_HAIR))] * u(0.85, 1.15)
    brow = np.clip(np.minimum(hair, skin * 0.55) * u(0.7, 1.0), 0, 255)
    return Identity(
        jaw_w=u(0.92, 1.06),
        jaw_top=eye_y + u(-0.02, 0.06),
        chin=mouth_y + lip_lower + u(0.4, 0.52),
        jaw_round=u(2.0, 2.9),
        forehead=u(1.0, 1.2),
        eye_y=eye_y,
        eye_dx=u(0.39, 0.47),
        eye_w=u(0.155, 0.19),
        eye_h=u(0.055, 0.075),
        eye_tilt=u(-0.01, 0.03),
        brow_gap=u(0.2, 0.27),
        brow_inner=u(0.13, 0.2),
        brow_len=u(0.5, 0.62),
        brow_arch=u(0.03, 0.07),
        brow_thick=u(0.06, 0.095),
        nose_tip=nose_tip,
        nose_w=u(0.16, 0.22),
        mouth_y=mouth_y,
        mouth_w=u(0.33, 0.42),
        lip_upper=u(0.05, 0.08),
        lip_lower=lip_lower,
        corner_rest=u(-0.015, 0.025),
        gaze=(u(-0.25, 0.25), u(-0.15, 0.15)),
        hair_style=int(rng.choice(3, p=[0.2, 0.5, 0.3])),
        hairline=-u(1.05, 1.3),
        hair_sides=u(0.25, 0.55),
        skin=skin,
        lip=lip,
        hair=np.clip(hair, 0, 255),
        brow=brow,
        iris=_IRIS[rng.integers(len(_IRIS))],
        asym=rng.normal(0.0, 0.008, (68, 2)),
    )


def jaw_curve(idt: Identity, c: Controls, t: np.ndarray) -> np.ndarray:
    """Points ``[len(t), 2]`` of the jaw at parameters ``t`` in [0, 1] (0 = point 0, 1 = point 16)."""
    th = np.pi * t
    e = 2.0 / idt.jaw_round
    cs, sn = np.cos(th), np.abs(np.sin(th))
    x = -idt.jaw_w * np.sign(cs) * np.abs(cs) ** e
    chin = idt.chin + c.jaw_drop - 0.3 * c.lower_lip_up
    y = idt.jaw_top + (chin - idt.jaw_top) * sn**e
    return np.stack([x, y], axis=1)


def skull_curve(idt: Identity, n: int) -> np.ndarray:
    """``[n, 2]`` points over the top of the head from the right jaw end (point 16) to the left (point 0)."""
    th = np.linspace(0.0, np.pi, n)
    e = 2.0 / 2.3
    cs, sn = np.cos(th), np.sin(th)
    x = idt.jaw_w * 1.01 * np.sign(cs) * np.abs(cs) ** e
    y = idt.jaw_top - idt.forehead * np.abs(sn) ** e
    return np.stack([x, y], axis=1)


def landmarks(idt: Identity, c: Controls) -> np.ndarray:
    """The 68 iBUG landmarks ``[68, 2]`` (float64, face units) of identity ``idt`` with expression ``c``."""
    p = np.zeros((68, 2))
    # jaw 0-8 (left half + chin)
    p[0:9] = jaw_curve(idt, c, np.arange(9) / 16)
    p[17:22, 0], p[17:22, 1] = _left_brow(idt, c)
    _set_nose(p, idt, c)
    _set_left_eye(p, idt, c)
    _set_mouth(p, idt, c)
    # mirror the left half onto the right
    right = MIRROR[_LEFT]
    mid = right == _LEFT
    p[right[~mid]] = p[_LEFT[~mid]] * np.array([-1.0, 1.0])
    return p + idt.asym


def _left_brow(idt: Identity, c: Controls) -> tuple[np.ndarray, np.ndarray]:
    """``(x [5], y [5])`` of brow points 17-21: outer (s=0) -> inner (s=1)."""
    s = np.linspace(0.0, 1.0, 5)
    bx = -(idt.brow_inner + idt.brow_len * (1 - s)) + c.brow_together * s**1.2
    by = (
        idt.eye_y
        - idt.brow_gap
        - idt.brow_arch * np.sin(np.pi * (0.15 + 0.75 * s))
        + 0.05 * (1 - s) ** 2
        - c.brow_inner_up * s**1.5
        - c.brow_outer_up * (1 - s) ** 0.8
        + c.brow_down * (0.6 + 0.4 * s)
    )
    return bx, by


def _set_nose(p: np.ndarray, idt: Identity, c: Controls) -> None:
    """Fill ``p`` ``[68, 2]`` rows 27-30 (bridge) and 31-33 (base, left half and centre)."""
    tip = idt.nose_tip - c.nose_up
    top = idt.eye_y - 0.04
    p[27:31, 0] = 0.0
    p[27:31, 1] = top + (tip - top) * np.arange(4) / 3
    nw = idt.nose_w * (1 + c.nostril_wide)
    p[31] = (-nw, tip + 0.1)
    p[32] = (-0.5 * nw, tip + 0.15)
    p[33] = (0.0, tip + 0.17)


def _set_left_eye(p: np.ndarray, idt: Identity, c: Controls) -> None:
    """Fill ``p`` ``[68, 2]`` rows 36-41 (left eye)."""
    cx, cy, w = -idt.eye_dx, idt.eye_y, idt.eye_w
    hu, hl = idt.eye_h * c.upper_lid, idt.eye_h * 0.8 * c.lower_lid
    p[36] = (cx - w, cy - idt.eye_tilt)
    p[37] = (cx - 0.35 * w, cy - hu - 0.2 * idt.eye_tilt)
    p[38] = (cx + 0.3 * w, cy - 0.95 * hu)
    p[39] = (cx + w, cy + 0.2 * idt.eye_tilt)
    p[40] = (cx + 0.3 * w, cy + hl)
    p[41] = (cx - 0.35 * w, cy + 0.95 * hl - 0.2 * idt.eye_tilt)


def _set_mouth(p: np.ndarray, idt: Identity, c: Controls) -> None:
    """Fill ``p`` ``[68, 2]`` rows 48-51, 57-62, 66-67 (left half and centre of the lips): lip line ``my``,
    corners ``cdy``, gaps above/below the line."""
    my = idt.mouth_y
    mw = idt.mouth_w * c.mouth_width
    cdy = idt.corner_rest + c.corner_dy
    up = c.upper_lip_up
    gu, gl = c.open_upper, max(c.open_lower - c.lower_lip_up, 0.0)
    lu, ll = idt.lip_upper * c.lip_upper, idt.lip_lower * c.lip_lower
    p[48] = (-mw, my + cdy)
    p[49] = (-0.58 * mw, my + 0.45 * cdy - 0.8 * up - gu - 0.85 * lu)
    p[50] = (-0.2 * mw, my + 0.1 * cdy - up - gu - 1.1 * lu)
    p[51] = (0.0, my - up - gu - 0.95 * lu)
    p[57] = (0.0, my + gl + 1.05 * ll)
    p[58] = (-0.22 * mw, my + 0.1 * cdy + gl + ll)
    p[59] = (-0.58 * mw, my + 0.45 * cdy + 0.85 * gl + 0.8 * ll)
    p[60] = (-0.86 * mw, my + 0.85 * cdy + 0.1 * (gl - gu))
    p[61] = (-0.42 * mw, my + 0.35 * cdy - 0.8 * up - gu)
    p[62] = (0.0, my - up - gu)
    p[66] = (0.0, my + gl)
    p[67] = (-0.42 * mw, my + 0.35 * cdy + 0.85 * gl)
