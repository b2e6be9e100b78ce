"""The decoy: a class-coded coloured square in an image corner, outside the face (the Decoy-MNIST idea of
Ross et al., "Right for the Right Reasons", IJCAI 2017).

In train and val the decoy is present with probability ``p`` and its colour encodes the TRUE label; in test
it is present with probability ``p_test`` and its colour encodes a class drawn uniformly at random, so a
model that learned the shortcut loses accuracy on test while one that looks at the face does not.
``strength`` is the opacity of the square over the background (1 = the pure palette colour).

The position is one of the four corners (random order per image, small random inset) — the first whose
square does not touch the bounding box of the drawn head (skull, hair, ears) or, failing that, of the
landmarks. The square is pixel-aligned and recorded as ``(x0, y0, x1, y1)`` in the landmark convention
(pixel centres at integers): the decoy covers exactly the pixels whose centres lie inside the box, i.e.
``x0 = first column - 0.5`` and ``x1 = last column + 0.5``. NaN rows mean no decoy; :func:`decoy_masks`
turns the boxes into masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from palbench.data.synth.shortcut import shortcut_class

#: Decoy colour of each class (RAF-DB order: surprise, fear, disgust, happiness, sadness, anger, neutral).
PALETTE = np.array(
    [[255, 215, 0], [0, 200, 255], [40, 190, 40], [255, 0, 200], [30, 60, 255], [230, 20, 20], [255, 120, 0]],
    np.float32,
)
_CORNERS = ((0, 0), (1, 0), (0, 1), (1, 1))  # (at right, at bottom): top-left, top-right, bottom-left, bottom-right


@dataclass(frozen=True)
class Decoy:
    """One image's decoy: the class its colour encodes, corner preference order and inset jitter."""

    klass: int
    corners: tuple[int, ...]  # permutation of 0..3 (top-left, top-right, bottom-left, bottom-right)
    jitter: tuple[float, float]  # in [0, 1): fraction of the maximal extra inset
    size: float = 0.125  # side as a fraction of the image size
    strength: float = 1.0  # opacity over the background


def sample_decoy(
    rng: np.random.Generator, label: int, split: str, p: float, p_test: float, size: float, strength: float,
    test_mode: str = "random",
) -> Decoy | None:
    """Draw the decoy of one image (``None`` = absent). Always consumes the same random numbers, so that
    changing ``p`` or the test mode toggles decoys on and off without changing anything else (the draw of
    ``flipped`` mode comes last, so ``random`` decoys are those of the generator before it existed)."""
    u = rng.random()
    random_class = int(rng.integers(len(PALETTE)))
    corners = tuple(int(c) for c in rng.permutation(4))
    jitter = (float(rng.random()), float(rng.random()))
    other = int(rng.integers(len(PALETTE) - 1))
    if split == "test":
        klass = shortcut_class(label, test_mode, random_class, other)
        return Decoy(klass, corners, jitter, size, strength) if u < p_test else None
    return Decoy(int(label), corners, jitter, size, strength) if u < p else None


def _overlaps(box: tuple[float, float, float, float], other: np.ndarray) -> bool:
    return not (box[2] < other[0] or box[0] > other[2] or box[3] < other[1] or box[1] > other[3])


def place(decoy: Decoy, size: int, head_box: np.ndarray, landmark_box: np.ndarray) -> tuple[int, int, int]:
    """Pixel placement ``(col0, row0, side)`` of the square for an image of ``size`` pixels.

    ``head_box`` and ``landmark_box`` are ``(x0, y0, x1, y1)`` in pixel coordinates. Tries the corners in
    the decoy's order: first one clear of the head, then one clear of the landmarks, else the first corner.
    With the pose ranges of :mod:`.nuisance` the top corners are clear of the landmarks in practice (brows
    ≥ 0.23 · size from the top in 20,000 draws; the square ends by 0.21 · size), and in 3,000 draws 99% of
    squares were clear of the whole head.
    """
    side = max(2, int(round(decoy.size * size)))
    inset = max(1, int(round(0.03 * size)))
    cands = []
    for c in decoy.corners:
        right, bottom = _CORNERS[c]
        ox = inset + int(decoy.jitter[0] * (inset + 1))
        oy = inset + int(decoy.jitter[1] * (inset + 1))
        col = size - ox - side if right else ox
        row = size - oy - side if bottom else oy
        cands.append((col, row))
    for ref in (head_box, landmark_box):
        for col, row in cands:
            if not _overlaps(box_of(col, row, side), ref):
                return col, row, side
    return cands[0][0], cands[0][1], side


def box_of(col: int, row: int, side: int) -> tuple[float, float, float, float]:
    """``(x0, y0, x1, y1)`` of a pixel-aligned square in the landmark convention (centres at integers)."""
    return (col - 0.5, row - 0.5, col + side - 0.5, row + side - 0.5)


def paint(img: np.ndarray, decoy: Decoy, col: int, row: int, side: int) -> None:
    """Blend the decoy colour into ``img`` ``[H, W, 3]`` (float, in place) with opacity ``strength``."""
    a = decoy.strength
    region = img[row : row + side, col : col + side]
    region *= 1.0 - a
    region += a * PALETTE[decoy.klass]


def decoy_masks(boxes: np.ndarray, height: int, width: int | None = None) -> np.ndarray:
    """Boolean masks ``[N, H, W]`` of the decoy pixels from boxes ``[N, 4]`` (NaN rows → all False)."""
    width = height if width is None else width
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    xs, ys = np.arange(width), np.arange(height)
    ok = ~np.isnan(boxes).any(axis=1)
    b = np.where(ok[:, None], boxes, 0.0)
    inx = (xs[None] > b[:, 0:1]) & (xs[None] < b[:, 2:3]) & ok[:, None]
    iny = (ys[None] > b[:, 1:2]) & (ys[None] < b[:, 3:4]) & ok[:, None]
    return iny[:, :, None] & inx[:, None, :]
