"""Anti-aliased rendering of one synthetic face from its :class:`~.params.SampleParams`.

Every facial feature is drawn FROM the (deformed) landmarks: the jaw outline and the skin silhouette pass
through points 0–16, the brow strokes are centred on 17–26, the nose bridge line runs through 27–30 and the
nose base through 31–35, the lid lines through 36–47 and the lip contours through 48–67 (Catmull-Rom
splines, which pass through their control points; see :mod:`.shapes`). So the landmarks are exact: the
features lie where the landmarks say, up to the rasteriser's rounding to the supersampled grid (half a
supersampled pixel: 1/8 pixel at the default 4×).

Anti-aliasing: the background is made at the output size and blown up ``ss``× by pixel replication, the head
is drawn over it with PIL at ``ss``× the output size, and the canvas is box-downsampled back (so the
background comes back unchanged and every edge of the head gets ``ss²`` coverage levels). Lighting, the
decoy square, camera blur and noise follow at the output size.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

import palbench.data.synth.decoy as decoy_mod
import palbench.data.synth.stripes as stripes_mod
from palbench.data.synth.expressions import Controls, controls
from palbench.data.synth.face import Identity, landmarks, skull_curve
from palbench.data.synth.nuisance import Occluder, background, finish, light_field
from palbench.data.synth.params import SampleParams
from palbench.data.synth.shapes import TEMPLATE, ellipse

_DARK = np.array([25.0, 18.0, 18.0])
_WHITE = np.array([242.0, 240.0, 234.0])
_CAVITY = np.array([70.0, 18.0, 24.0])
_TEETH = np.array([238.0, 233.0, 218.0])
_ON = 0.05  # wrinkles and folds fainter than this are not drawn


def default_ss(size: int) -> int:
    """Supersampling factor: 4× up to 96 px, 3× up to 160 px, 2× above (keeps 224 px fast)."""
    return 4 if size <= 96 else 3 if size <= 160 else 2


def _mix(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return a * (1 - t) + b * t


def _clip_to_eye(e: np.ndarray, up: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Clip a convex shape ``[n, 2]`` between the upper lid ``up`` and lower lid ``lo`` (both left → right)."""
    ex = np.minimum(np.maximum(e[:, 0], up[0, 0]), up[-1, 0])
    ey = np.maximum(e[:, 1], np.interp(ex, up[:, 0], up[:, 1]))
    return np.stack([ex, np.minimum(ey, np.interp(ex, lo[:, 0], lo[:, 1]))], 1)


#: A drawing item: points ``[n, 2]`` in face units, colour ``[3]``, line width (0: a filled polygon), and
#: whether it counts for the head's bounding box.
Item = tuple[np.ndarray, np.ndarray, float, bool]


def _shade(skin: np.ndarray, t: float) -> np.ndarray:
    """Skin colour ``[3]`` darkened by ``t`` (0: skin itself) — folds, wrinkles and lid lines."""
    return skin * (1.0 - 0.65 * t)


def _items(p: SampleParams, lm: np.ndarray, c: Controls) -> list[Item]:
    """The head as drawing items (see :data:`Item`), back to front: head and hair, skin lines, eyes, brows
    and nose, mouth, occluder."""
    idt = p.identity
    T = TEMPLATE.points(lm, idt.brow_thick)
    part = {k: T[s] for k, s in TEMPLATE.parts.items()}
    out = _head_items(idt, lm, c, part["jaw"])
    out += _skin_line_items(idt.skin, c, part)
    out += _eye_items(idt, c, part)
    out += _nose_items(idt, c, part)
    out += _mouth_items(idt.lip, part)
    if p.scene.occluder is not None:
        out.append(_occluder_item(p.scene.occluder, lm))
    return out


def _head_items(idt: Identity, lm: np.ndarray, c: Controls, jaw: np.ndarray) -> list[Item]:
    """Hair behind the head, neck, ears, the skin silhouette through the jaw points ``jaw``, hair over the
    forehead, cheeks."""
    skin, W = idt.skin, idt.jaw_w
    out: list[Item] = []
    skull = skull_curve(idt, 25)
    if idt.hair_style:  # hair behind the head: short (to the ears) or long (to below the chin)
        back = skull * (1.09, 1.06) + (0.0, -0.06 - 0.06 * idt.jaw_top)
        low = idt.chin + 0.25 if idt.hair_style == 2 else idt.jaw_top + 0.12
        sides = np.array([[1.1 * W, low], [1.1 * W, idt.jaw_top]])
        out.append((np.concatenate([sides, back, sides[::-1] * (-1.0, 1.0)]), idt.hair * 0.85, 0.0, True))
    chin = lm[8, 1]
    neck = np.array([[-0.45 * W, chin - 0.6], [0.45 * W, chin - 0.6], [0.55 * W, chin + 3], [-0.55 * W, chin + 3]])
    out.append((neck, skin * 0.8, 0.0, False))
    for sx in (-1.0, 1.0):
        ex, ey = sx * (W - 0.01), idt.jaw_top + 0.14
        out.append((ellipse(ex, ey, 0.11, 0.2), skin * 0.9, 0.0, True))
        out.append((ellipse(ex + sx * 0.025, ey, 0.05, 0.12), skin * 0.72, 0.0, False))
    out.append((np.concatenate([jaw, skull[1:-1]]), skin, 0.0, True))  # skin through points 0-16
    if idt.hair_style:  # hair over the forehead, down to a curved hairline (features are drawn over it)
        h = idt.hairline + idt.hair_sides * (skull[:, 0] / W) ** 2
        fringe = np.stack([skull[:, 0], np.maximum(h, skull[:, 1])], 1)[::-1]
        out.append((np.concatenate([skull, fringe]), idt.hair, 0.0, False))
    cheek = np.minimum(skin * (1.04 + 0.05 * c.cheek_up), 255.0)
    for sx in (-1.0, 1.0):  # cheeks, raised by AU6
        out.append((ellipse(sx * 0.52 * W, idt.eye_y + 0.44 - 0.12 * c.cheek_up, 0.21, 0.14), cheek, 0.0, False))
    return out


def _skin_line_items(skin: np.ndarray, c: Controls, part: dict[str, np.ndarray]) -> list[Item]:
    """Forehead wrinkles (AU1+2) and glabella lines (AU4) when visible, nasolabial folds, the jaw line."""
    out: list[Item] = []
    if c.forehead > _ON:
        out += [(part[f"forehead{j}"], _shade(skin, c.forehead), 0.025, False) for j in range(2)]
    if c.glabella > _ON:
        out += [(part[f"glabella_{s}"], _shade(skin, c.glabella), 0.022, False) for s in "lr"]
    out += [(part[f"fold_{s}"], _shade(skin, 0.8 * c.fold), 0.03, False) for s in "lr"]
    out.append((part["jaw"], _shade(skin, 0.3), 0.03, False))
    return out


def _eye_items(idt: Identity, c: Controls, part: dict[str, np.ndarray]) -> list[Item]:
    """Per eye (left, right): under-eye fold, lid crease, eye white, iris and pupil clipped to the lids, lids."""
    skin = idt.skin
    white = _mix(skin, _WHITE, 0.8)
    lid = _mix(_DARK, skin, 0.15)
    out: list[Item] = []
    for s in "lr":
        up, lo = part[f"eye_up_{s}"], part[f"eye_lo_{s}"]
        if c.under_eye > _ON:
            out.append((part[f"under_{s}"], _shade(skin, c.under_eye), 0.025, False))
        out.append((part[f"crease_{s}"], _shade(skin, 0.25), 0.02, False))
        out.append((part[f"eye_white_{s}"], white, 0.0, False))
        centre = 0.5 * (up[0] + up[-1]) + (idt.gaze[0] * 0.4 * idt.eye_w, idt.gaze[1] * 0.5 * idt.eye_h)
        r = 0.45 * idt.eye_w
        lo_lr = lo[::-1]
        out.append((_clip_to_eye(ellipse(centre[0], centre[1], r, r), up, lo_lr), idt.iris, 0.0, False))
        out.append((_clip_to_eye(ellipse(centre[0], centre[1], 0.45 * r, 0.45 * r, 12), up, lo_lr), _DARK, 0.0, False))
        out.append((lo, _shade(skin, 0.45), 0.02, False))
        out.append((up, lid, 0.04, False))
    return out


def _nose_items(idt: Identity, c: Controls, part: dict[str, np.ndarray]) -> list[Item]:
    """Brows, then the nose: tip highlight, bridge, nostrils, base line, wrinkles (AU9) when visible."""
    skin = idt.skin
    out: list[Item] = [(part[f"brow_{s}"], idt.brow, 0.0, False) for s in "lr"]
    out.append((part["nose_tip"], np.minimum(skin * 1.07, 255.0), 0.0, False))
    out.append((part["bridge"], _shade(skin, 0.4), 0.035, False))
    out += [(part[f"nostril_{s}"], _shade(skin, 0.8), 0.0, False) for s in "lr"]
    out.append((part["nose_base"], _shade(skin, 0.5), 0.03, False))
    if c.nose_wrinkle > _ON:
        out += [(part[f"wrinkle{j}"], _shade(skin, 0.6 * c.nose_wrinkle), 0.02, False) for j in range(3)]
    return out


def _mouth_items(lip: np.ndarray, part: dict[str, np.ndarray]) -> list[Item]:
    """Lips, their outline, the mouth cavity, upper teeth when the mouth is open, inner lip lines."""
    out: list[Item] = [(part["lips"], lip, 0.0, False)]
    out.append((part["lips_outline"], _mix(lip, _DARK, 0.3), 0.02, False))
    out.append((part["cavity"], _CAVITY, 0.0, False))
    up, lo = part["inner_up"], part["inner_lo"]
    gap = np.interp(up[:, 0], lo[:, 0], lo[:, 1]) - up[:, 1]
    if gap.max() > 0.02:  # upper teeth in the open mouth
        edge = up[:, 1] + np.maximum(np.minimum(0.07, 0.75 * gap), 0.0)
        out.append((np.concatenate([up, np.stack([up[:, 0], edge], 1)[::-1]]), _TEETH, 0.0, False))
    out.append((up, _mix(lip, _DARK, 0.55), 0.02, False))
    out.append((lo, _mix(lip, _DARK, 0.4), 0.015, False))
    return out


def _occluder_item(occ: Occluder, lm: np.ndarray) -> Item:
    """The occluding patch (ellipse or rotated square) at its anchor landmark."""
    cx, cy = lm[occ.anchor] + occ.offset
    if occ.ellipse:
        shape = ellipse(cx, cy, *occ.half, n=20, angle=occ.angle)
    else:
        shape = ellipse(cx, cy, occ.half[0] * np.sqrt(2), occ.half[1] * np.sqrt(2), 4, occ.angle + np.pi / 4)
    return (shape, np.array(occ.colour), 0.0, False)


def render_sample(p: SampleParams, size: int, ss: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one image.

    Returns:
        image: uint8 ``[size, size, 3]``.
        landmarks: float32 ``[68, 2]``, (x, y) pixel coordinates, pixel centres at integers, iBUG order.
        decoy_box: float32 ``[4]`` ``(x0, y0, x1, y1)`` (see :mod:`.decoy`), NaN when there is no decoy.
    """
    ss = default_ss(size) if ss is None else ss
    c = controls(p.au)
    lm = landmarks(p.identity, c)
    items = _items(p, lm, c)
    A, t = p.pose.matrix(size)
    bounds = np.cumsum([0] + [len(it[0]) for it in items]).tolist()
    px = np.concatenate([it[0] for it in items]) @ A.T + t  # output pixels
    flat = np.rint((px + 0.5) * ss - 0.5).ravel().tolist()  # supersampled pixel centres
    colours = np.rint(np.clip(np.array([it[1] for it in items]), 0, 255)).astype(int).tolist()
    unit = np.sqrt(abs(np.linalg.det(A))) * ss  # supersampled pixels per face unit
    widths = (2 * (np.array([it[2] for it in items]) * (unit / 2)).astype(int) + 1).tolist()  # odd: centred
    back = background(p.scene, size)
    if p.stripes is not None:  # behind the head: the face covers them
        back = stripes_mod.paint(back, p.stripes)
    canvas = Image.fromarray(np.rint(back).astype(np.uint8))
    canvas = canvas.resize((size * ss, size * ss), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(canvas)
    for i, it in enumerate(items):
        xy = flat[2 * bounds[i] : 2 * bounds[i + 1]]
        if it[2]:
            draw.line(xy, fill=tuple(colours[i]), width=widths[i], joint="curve" if widths[i] > 2 else None)
        else:
            draw.polygon(xy, fill=tuple(colours[i]))
    img = np.asarray(canvas.reduce(ss), np.float32) * light_field(p.scene, size)
    lm_px = (lm @ A.T + t).astype(np.float32)
    box = np.full(4, np.nan, np.float32)
    if p.decoy is not None:
        hp = px[np.concatenate([np.arange(bounds[i], bounds[i + 1]) for i, it in enumerate(items) if it[3]])]
        head_box = np.concatenate([hp.min(0), hp.max(0)])
        lm_box = np.concatenate([lm_px.min(0), lm_px.max(0)])
        col, row, side = decoy_mod.place(p.decoy, size, head_box, lm_box)
        decoy_mod.paint(img, p.decoy, col, row, side)
        box[:] = decoy_mod.box_of(col, row, side)
    return finish(img, p.scene, size), lm_px, box


def render_face(p: SampleParams, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``(image uint8 [size, size, 3], landmarks float32 [68, 2])`` of one sample (see :func:`render_sample`)."""
    img, lm, _ = render_sample(p, size)
    return img, lm
