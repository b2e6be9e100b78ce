"""The drawn facial features as affine functions of the 68 landmarks (face units).

Most of what :mod:`.render` draws — the jaw line, lid lines, eye whites, brow centre lines, nose bridge and
base, nostrils, lip contours, folds and wrinkles — is a Catmull-Rom spline through landmarks (the curve
passes through its control points) or a landmark plus a fixed offset. Both are linear in the landmarks, so
all of them are one matrix product: ``points = M @ landmarks + C`` with ``M`` ``[P, 68]`` and ``C`` ``[P, 2]``
built once here (:data:`TEMPLATE`). Brows also get ``brow_thick * K`` (their width).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SEG = 4  # spline points per landmark segment


@lru_cache(maxsize=None)
def spline_matrix(m: int, closed: bool, n: int = SEG) -> np.ndarray:
    """Catmull-Rom is linear in its control points: ``dense = M @ points`` with ``M`` ``[rows, m]``.

    ``n`` points per segment, the control points themselves included (rows ``0, n, 2n, ...``).
    """
    eye = np.eye(m)
    if closed:
        ext = np.concatenate([eye[-1:], eye, eye[:2]])
    else:
        ext = np.concatenate([2 * eye[:1] - eye[1:2], eye, 2 * eye[-1:] - eye[-2:-1]])
    t = np.arange(n) / n
    w = 0.5 * np.stack([-t + 2 * t**2 - t**3, 2 - 5 * t**2 + 3 * t**3, t + 4 * t**2 - 3 * t**3, -(t**2) + t**3], 1)
    rows = [w @ ext[i : i + 4] for i in range(len(ext) - 3)]
    if not closed:
        rows.append(eye[-1:])
    return np.concatenate(rows)


def spline(p: np.ndarray, closed: bool = False, n: int = SEG) -> np.ndarray:
    """Catmull-Rom curve ``[rows, 2]`` through the points ``p`` ``[m, 2]`` (see :func:`spline_matrix`)."""
    return spline_matrix(len(p), closed, n) @ p


@lru_cache(maxsize=None)
def circle(n: int) -> np.ndarray:
    """``[n, 2]`` points of the unit circle."""
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.cos(a), np.sin(a)], 1)


def ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 16, angle: float = 0.0) -> np.ndarray:
    """``[n, 2]`` polygon of an ellipse rotated by ``angle`` radians."""
    e = circle(n) * (rx, ry)
    if angle:
        ca, sa = np.cos(angle), np.sin(angle)
        e = e @ np.array([[ca, sa], [-sa, ca]])
    return e + (cx, cy)


@dataclass(frozen=True)
class Template:
    """Affine shapes: ``points = M @ landmarks + C (+ brow_thick * K)``; ``parts[name]`` is a row slice."""

    M: np.ndarray  # [P, 68]
    C: np.ndarray  # [P, 2]
    K: np.ndarray  # [P, 2]
    parts: dict[str, slice]

    def points(self, lm: np.ndarray, brow_thick: float) -> np.ndarray:
        """All template points ``[P, 2]`` for landmarks ``lm`` ``[68, 2]`` (face units)."""
        return self.M @ lm + self.C + brow_thick * self.K


_E = np.eye(68)  # row i: landmark i as a combination of the 68 landmarks


class _Builder:
    """Collects named affine shapes (rows of ``M``, ``C``, ``K``) into a :class:`Template`, in order."""

    def __init__(self) -> None:
        self.Ms: list[np.ndarray] = []
        self.Cs: list[np.ndarray] = []
        self.Ks: list[np.ndarray] = []
        self.parts: dict[str, slice] = {}
        self.at = 0

    def add(self, name: str, M: np.ndarray, C: np.ndarray | None = None, K: np.ndarray | None = None) -> None:
        """Shape ``name``: ``n`` points ``M @ landmarks + C + brow_thick * K`` with ``M`` ``[n, 68]``."""
        n = len(M)
        self.Ms.append(M)
        self.Cs.append(np.zeros((n, 2)) if C is None else np.broadcast_to(C, (n, 2)))
        self.Ks.append(np.zeros((n, 2)) if K is None else K)
        self.parts[name] = slice(self.at, self.at + n)
        self.at += n

    def template(self) -> Template:
        return Template(np.concatenate(self.Ms), np.concatenate(self.Cs), np.concatenate(self.Ks), self.parts)


def _sp(idx: list[int], closed: bool = False) -> np.ndarray:
    """``[rows, 68]``: the Catmull-Rom spline through landmarks ``idx``."""
    return spline_matrix(len(idx), closed) @ _E[idx]


def _at_point(w: np.ndarray, n: int) -> np.ndarray:
    """``[n, 68]``: every row = the same landmark combination ``w`` ``[68]``."""
    return np.repeat(w[None], n, 0)


def _add_jaw_and_lines(b: _Builder) -> None:
    """Jaw line, nasolabial folds, forehead wrinkles (AU1+2), glabella lines (AU4)."""
    b.add("jaw", _sp(list(range(17))))
    # nasolabial folds: quadratic Bezier from beside the nose wing to beyond the lip corner, bulging outward
    t = np.linspace(0, 1, 7)[:, None]
    b0, b1, b2 = (1 - t) ** 2, 2 * t * (1 - t), t**2
    for name, i, j, sx in (("fold_l", 31, 48, -1.0), ("fold_r", 35, 54, 1.0)):
        o0, o1 = np.array([sx * 0.07, -0.04]), np.array([sx * 0.06, 0.07])
        wa, wb = b0 + 0.5 * b1, b2 + 0.5 * b1
        b.add(name, wa * _E[i] + wb * _E[j], wa * o0 + wb * o1 + b1 * np.array([sx * 0.07, 0.0]))
    # forehead wrinkles (AU1+2) above the brows' mean, glabella lines (AU4) between the inner brow ends
    x5 = np.linspace(-0.45, 0.45, 5)
    brow_mean = _E[17:27].mean(0)
    for j in range(2):
        b.add(f"forehead{j}", _at_point(brow_mean, 5), np.stack([x5, -0.18 - 0.12 * j + 0.05 * (x5 / 0.45) ** 2], 1))
    inner = 0.5 * (_E[21] + _E[22])
    for name, sx in (("glabella_l", -1.0), ("glabella_r", 1.0)):
        b.add(name, _at_point(inner, 2), np.array([[sx * 0.045, -0.03], [sx * 0.055, 0.1]]))


def _add_eyes_and_brows(b: _Builder) -> None:
    """Eyes: lid lines through the landmarks, eye white between them, under-eye fold and lid crease; brows:
    centre line through the landmarks, width brow_thick (thicker at the inner end)."""
    for side, upper, lower in (("l", [36, 37, 38, 39], [39, 40, 41, 36]), ("r", [42, 43, 44, 45], [45, 46, 47, 42])):
        up, lo = _sp(upper), _sp(lower)
        b.add(f"eye_up_{side}", up)
        b.add(f"eye_lo_{side}", lo)
        b.add(f"eye_white_{side}", np.concatenate([up, lo[1:-1]]))
        b.add(f"under_{side}", lo[::-1][2:-2], np.array([0.0, 0.08]))
        b.add(f"crease_{side}", up[2:-2], np.array([0.0, -0.055]))
    prof = 0.5 * (0.45 + 0.55 * np.sqrt(np.linspace(0.0, 1.0, 4 * SEG + 1)))
    half = np.stack([np.zeros_like(prof), prof], 1)  # near-horizontal strokes: offset vertically
    for name, idx in (("brow_l", [17, 18, 19, 20, 21]), ("brow_r", [26, 25, 24, 23, 22])):
        d = _sp(idx)
        b.add(name, np.concatenate([d, d[::-1]]), None, np.concatenate([-half, half[::-1]]))


def _add_nose(b: _Builder) -> None:
    """Tip highlight, bridge line 27-30, nostrils, base line 31-35 with the wings, wrinkles (AU9)."""
    b.add("nose_tip", _at_point(_E[30], 16), circle(16) * (0.075, 0.055) + (0.0, 0.02))
    # the bridge line runs on a little past the tip so that point 30 lies on it, not on its end
    bridge = np.concatenate([_sp([27, 28, 29, 30]), _E[[30]]])
    b.add("bridge", bridge, np.concatenate([np.zeros((13, 2)), [[0.0, 0.035]]]))
    for name, i, j in (("nostril_l", 31, 32), ("nostril_r", 35, 34)):
        b.add(name, _at_point(0.5 * (_E[i] + _E[j]), 12), circle(12) * (0.045, 0.022) + (0.0, -0.012))
    base_idx = [31, 31, 32, 33, 34, 35, 35]
    wing = np.zeros((7, 2))
    wing[0], wing[-1] = (0.025, -0.09), (-0.025, -0.09)
    S = spline_matrix(7, False)
    b.add("nose_base", S @ _E[base_idx], S @ wing)
    x4 = np.linspace(-0.09, 0.09, 4)
    for j, f in enumerate((0.25, 0.45, 0.65)):
        b.add(f"wrinkle{j}", _at_point((1 - f) * _E[27] + f * _E[29], 4), np.stack([x4, 0.02 * (x4 / 0.09) ** 2], 1))


def _add_mouth(b: _Builder) -> None:
    """Outer lip contour (closed), cavity (inner contour), inner upper/lower lip lines (left → right)."""
    lips = _sp(list(range(48, 60)), closed=True)
    b.add("lips", lips)
    b.add("lips_outline", np.concatenate([lips, lips[:1]]))
    b.add("cavity", _sp(list(range(60, 68)), closed=True))
    b.add("inner_up", _sp([60, 61, 62, 63, 64]))
    b.add("inner_lo", _sp([64, 65, 66, 67, 60])[::-1])


def _build() -> Template:
    """Every shape :mod:`.render` draws (looked up by name); the order of the ``add`` calls fixes the rows."""
    b = _Builder()
    _add_jaw_and_lines(b)
    _add_eyes_and_brows(b)
    _add_nose(b)
    _add_mouth(b)
    return b.template()


#: The affine feature shapes, built once.
TEMPLATE = _build()
