"""Checking computed landmarks: a contact sheet, per-image measures and plausibility warnings.

:func:`check_landmarks` runs at the end of the landmarks stage (:func:`palbench.landmarks.compute_landmarks`)
and writes beside ``landmarks.npy``, each file atomically:

- ``sheet.png``: a contact sheet of a deterministic sample of up to :data:`SHEET_IMAGES` images (evenly spaced
  over the rows, a few missed ones among them when there are misses) with their 68 points drawn: green inside
  the frame, orange outside it; a missed image has a red frame and "no face". Tiles are :data:`TILE` px
  squares (image resized keeping its aspect), :data:`SHEET_COLUMNS` per line, the row number in a corner;
- ``misses.csv``: ``row,path,split,label`` of every missed row (the header alone when nothing was missed);
- ``qa.csv``: ``row,path,split,missed,spread,outside`` per image: ``spread`` = diagonal of the landmarks'
  bounding box / diagonal of the image (empty when missed), ``outside`` = number of the 68 points outside the
  frame ``[0, W-1] x [0, H-1]``.

It returns the ``qa`` summary and the ``warnings`` (one line each) that ``landmarks.json`` records and the CLI
prints: points outside the frame, faces that do not fill "aligned" crops (or fill "unaligned" images), dlib's
HOG detector finding small faces in images declared aligned (whole photos given the full-image box), and a
high miss rate. Only ≤ :data:`SHEET_IMAGES` (+ :data:`HOG_SAMPLE` for the dlib check) images are decoded;
the image sizes come from the file headers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from palbench.data.canonical import CanonicalDataset
from palbench.io import atomic_path
from palbench.landmarks.base import image_size, load_image

__all__ = [
    "QA_FILES", "check_landmarks", "contact_sheet", "hog_face_sizes", "image_checks", "plausibility_warnings",
    "sheet_rows",
]

SHEET_FILE = "sheet.png"
MISSES_FILE = "misses.csv"
QA_FILE = "qa.csv"
#: The files :func:`check_landmarks` writes (the stage removes stale ones before it starts).
QA_FILES = (SHEET_FILE, MISSES_FILE, QA_FILE)

#: Images on the contact sheet: 3 lines of 8, enough to see a systematic offset at a glance, cheap to decode.
SHEET_IMAGES = 24
#: At most this many sheet tiles show missed images (the rest show found faces, where mistakes are visible).
SHEET_MISSES = 4
#: Side of a sheet tile in pixels: 68 dots of 3 px stay apart on a face that fills it.
TILE = 96
#: Tiles per line of the sheet, and the gap between (and around) tiles in pixels.
SHEET_COLUMNS = 8
GAP = 2
#: Dot radius in pixels (a 3x3 dot).
DOT_RADIUS = 1

BACKGROUND = (40, 40, 40)
INSIDE_COLOUR = (0, 255, 0)  # green: visible on skin, hair and dark backgrounds
OUTSIDE_COLOUR = (255, 150, 0)  # orange: a point outside the image frame (drawn where it falls within the tile)
MISS_COLOUR = (230, 0, 0)

#: Warning (a): a few faces cut by the frame happen (a chin in a tight crop); more than 2% of the found faces
#: with points outside the frame means the points are systematically too large or shifted.
MAX_OUTSIDE_SHARE = 0.02
#: Warning (b): in an aligned crop the 68 points (jaw to brows) span about 50-90% of the image diagonal; a
#: median below 35% means the faces are small in the images, which then are not aligned face crops.
MIN_ALIGNED_SPREAD = 0.35
#: Warning (d): a detector box leaves margins around the jaw and brows, so points spanning more than 90% of the
#: image diagonal (median) mean the faces fill the images: aligned crops, which the full-image box suits better.
MAX_UNALIGNED_SPREAD = 0.9
#: Warning (c): images the dlib HOG detector is run on (about 0.1 s each on a 512 px photo).
HOG_SAMPLE = 16
#: Warning (c): a face box whose diagonal is below half the image diagonal is a face in a larger photo; an
#: aligned crop's face box (HOG, upsampled) spans about 60-90% of it.
MIN_ALIGNED_FACE = 0.5
#: Warning (e): more than 20% of images without a face is beyond what profile views and occlusions explain
#: (wrong images, a detector that does not suit them, or aligned crops run through a detector).
MAX_MISS_RATE = 0.2


def sheet_rows(missed: np.ndarray, n: int = SHEET_IMAGES) -> np.ndarray:
    """The rows shown on the sheet: int64 ``[k]``, sorted, ``k <= n``, evenly spaced over the found rows, plus up
    to :data:`SHEET_MISSES` evenly spaced missed rows (more when fewer faces than tiles were found).

    Args:
        missed: bool ``[N]``, True where no face was found.
    """
    missed_rows, found_rows = np.flatnonzero(missed), np.flatnonzero(~np.asarray(missed, dtype=bool))
    k_found = min(found_rows.size, n - min(missed_rows.size, SHEET_MISSES))
    k_missed = min(missed_rows.size, n - k_found)
    return np.sort(np.concatenate([_spread_out(missed_rows, k_missed), _spread_out(found_rows, k_found)]))


def _spread_out(rows: np.ndarray, k: int) -> np.ndarray:
    """``k`` of ``rows`` (int ``[M]``, sorted), evenly spaced from the first to the last: int64 ``[min(k, M)]``."""
    if k <= 0 or rows.size == 0:
        return rows[:0].astype(np.int64)
    if rows.size <= k:
        return rows.astype(np.int64)
    return rows[np.linspace(0, rows.size - 1, k).round().astype(np.int64)].astype(np.int64)


def image_checks(dataset: CanonicalDataset, landmarks: np.ndarray) -> pd.DataFrame:
    """The per-image measures of ``qa.csv``.

    Args:
        dataset: the canonical dataset (paths, splits; image sizes read from the file headers).
        landmarks: float ``[N, 68, 2]`` (x, y) pixels, whole rows NaN where no face was found.

    Returns:
        ``N`` rows with columns ``row, path, split, missed`` (bool), ``spread`` (float, NaN when missed) and
        ``outside`` (int, 0 when missed).
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    missed = np.isnan(landmarks).all(axis=(1, 2))
    spread = np.full(len(dataset), np.nan)
    outside = np.zeros(len(dataset), dtype=np.int64)
    for i in np.flatnonzero(~missed):
        h, w = image_size(dataset.image_path(int(i)))
        x, y = landmarks[i, :, 0], landmarks[i, :, 1]
        spread[i] = np.hypot(np.ptp(x), np.ptp(y)) / np.hypot(w, h)
        outside[i] = int(((x < 0) | (x > w - 1) | (y < 0) | (y > h - 1)).sum())
    samples = dataset.samples
    return pd.DataFrame({
        "row": np.arange(len(dataset)), "path": samples["path"].to_numpy(), "split": samples["split"].to_numpy(),
        "missed": missed, "spread": spread, "outside": outside,
    })


def hog_face_sizes(dataset: CanonicalDataset, rows: np.ndarray, upsample: int | None = None) -> dict:
    """dlib's HOG detector on the images of ``rows`` (int ``[k]``): how many were checked, how many have a face,
    and how many of those a face box whose diagonal is below :data:`MIN_ALIGNED_FACE` of the image diagonal.

    Returns:
        ``{"n_checked": int, "n_detected": int, "n_small": int}``.
    """
    import dlib

    from palbench.landmarks.dlib_backend import hog_detect

    detector = dlib.get_frontal_face_detector()
    detected = small = 0
    for i in rows:
        image = load_image(dataset.image_path(int(i)))
        box = hog_detect(image, upsample, detector)
        if box is None:
            continue
        detected += 1
        x0, y0, x1, y1 = box
        h, w = image.shape[:2]
        small += bool(np.hypot(x1 - x0 + 1, y1 - y0 + 1) < MIN_ALIGNED_FACE * np.hypot(w, h))
    return {"n_checked": int(len(rows)), "n_detected": detected, "n_small": small}


def plausibility_warnings(qa: dict, backend: str, aligned: bool | None, folder: Path) -> list[str]:
    """One-line warnings about the landmarks of a stage, from its ``qa`` summary (:func:`check_landmarks`).

    Args:
        qa: the summary of :func:`check_landmarks`; read: ``n_samples, n_missed, n_found, n_outside,
            median_spread`` (None without faces) and, after the dlib check, ``hog`` (:func:`hog_face_sizes`).
        backend: the backend name.
        aligned: the backend's ``aligned`` option; ``None`` for backends without one (truth, file), which get
            no warning about it.
        folder: the landmarks folder (named in the warnings).
    """
    out = []
    spread = qa["median_spread"]
    outside = qa["n_outside"] / qa["n_found"] if qa["n_found"] else 0.0  # not the rounded share_outside
    miss_rate = qa["n_missed"] / qa["n_samples"] if qa["n_samples"] else 0.0
    if outside > MAX_OUTSIDE_SHARE:
        out.append(
            f"{qa['n_outside']} of {qa['n_found']} faces ({outside:.1%}) have landmarks outside the image frame "
            f"(more than {MAX_OUTSIDE_SHARE:.0%}): the points are too large or shifted; see the outside column of "
            f"{folder / QA_FILE} and {folder / SHEET_FILE}"
        )
    if aligned is True and spread is not None and spread < MIN_ALIGNED_SPREAD:
        out.append(
            f"{backend} with aligned=true: the landmarks span a median {spread:.0%} of the image diagonal (below "
            f"{MIN_ALIGNED_SPREAD:.0%}): the faces do not fill the frame, so the images are not aligned face "
            f"crops; see {folder / SHEET_FILE} (set aligned: false to detect the faces)"
        )
    hog = qa.get("hog")
    if aligned is True and hog and hog["n_detected"] and hog["n_small"] > hog["n_detected"] / 2:
        out.append(
            f"{backend} with aligned=true: on {hog['n_small']} of the {hog['n_detected']} sampled images where "
            f"dlib's HOG detector finds a face, its box spans less than {MIN_ALIGNED_FACE:.0%} of the image "
            "diagonal: the images look like whole photos, not aligned face crops, and the landmarks were fitted "
            f"to the full-image box; see {folder / SHEET_FILE} (set aligned: false, --no-aligned)"
        )
    if aligned is False and spread is not None and spread > MAX_UNALIGNED_SPREAD:
        out.append(
            f"{backend} with aligned=false: the landmarks span a median {spread:.0%} of the image diagonal (above "
            f"{MAX_UNALIGNED_SPREAD:.0%}): the points fill the frame; are these aligned face crops? (set "
            "aligned: true, --aligned, to use the full-image box)"
        )
    if miss_rate > MAX_MISS_RATE:
        out.append(
            f"{qa['n_missed']} of {qa['n_samples']} images ({miss_rate:.1%}) have no landmarks (more than "
            f"{MAX_MISS_RATE:.0%}); the missed rows are listed in {folder / MISSES_FILE}"
        )
    return out


def check_landmarks(
    dataset: CanonicalDataset, landmarks: np.ndarray, folder: str | Path, backend: str, options: dict
) -> dict:
    """Write ``sheet.png``, ``misses.csv`` and ``qa.csv`` into ``folder``; return what ``landmarks.json``
    records of them.

    Args:
        dataset: the canonical dataset the landmarks belong to.
        landmarks: float32 ``[N, 68, 2]``, whole rows NaN where no face was found.
        folder: the landmarks folder (beside ``landmarks.npy``).
        backend: the backend name (``dlib`` with ``aligned`` runs the HOG check, warning c).
        options: the backend's options (``aligned``, ``upsample`` are read when present).

    Returns:
        ``{"qa": summary, "warnings": [one-line strings]}``; the summary holds ``n_samples, n_missed, n_found,
        miss_rate, median_spread`` (None without faces), ``n_outside`` (faces with a point outside the frame),
        ``share_outside`` (of the found faces) and, for dlib with ``aligned``, ``hog`` (:func:`hog_face_sizes`).
    """
    folder = Path(folder)
    table = image_checks(dataset, landmarks)
    missed = table["missed"].to_numpy()
    found = table[~missed]
    n, n_found = len(table), len(found)
    n_outside = int((found["outside"] > 0).sum())
    qa = {
        "n_samples": n,
        "n_missed": n - n_found,
        "n_found": n_found,
        "miss_rate": round((n - n_found) / n, 4) if n else 0.0,
        "median_spread": round(float(found["spread"].median()), 4) if n_found else None,
        "n_outside": n_outside,
        "share_outside": round(n_outside / n_found, 4) if n_found else 0.0,
    }
    aligned = options.get("aligned")
    if backend == "dlib" and aligned is True:
        qa["hog"] = hog_face_sizes(dataset, _spread_out(np.flatnonzero(~missed), HOG_SAMPLE), options.get("upsample"))

    misses = dataset.samples.iloc[np.flatnonzero(missed)][["path", "split", "label"]]
    misses.insert(0, "row", np.flatnonzero(missed))
    with atomic_path(folder / MISSES_FILE) as tmp:
        misses.to_csv(tmp, index=False)
    with atomic_path(folder / QA_FILE) as tmp:
        table.assign(missed=missed.astype(np.int64)).to_csv(tmp, index=False, float_format="%.4f")
    rows = sheet_rows(missed)
    sheet = contact_sheet([dataset.image_path(int(i)) for i in rows], landmarks[rows], [int(i) for i in rows])
    with atomic_path(folder / SHEET_FILE) as tmp:
        sheet.save(tmp, format="PNG")
    return {"qa": qa, "warnings": plausibility_warnings(qa, backend, aligned, folder)}


def contact_sheet(paths: list[Path], landmarks: np.ndarray, rows: list[int]):
    """The contact sheet of ``paths`` with their landmarks: a PIL RGB image of ``ceil(k / SHEET_COLUMNS)`` lines
    of ``min(k, SHEET_COLUMNS)`` tiles, each :data:`TILE` px with :data:`GAP` px between and around them
    (one empty tile when ``k = 0``).

    Args:
        paths: ``k`` image files (any mode PIL reads: grayscale, palette, 16-bit are shown as RGB).
        landmarks: float ``[k, 68, 2]`` (x, y) pixels of the stored images; a whole-NaN row is a miss.
        rows: the ``k`` row numbers printed on the tiles.
    """
    from PIL import Image

    k = len(paths)
    cols, lines = max(1, min(k, SHEET_COLUMNS)), max(1, -(-k // SHEET_COLUMNS))
    sheet = Image.new("RGB", (GAP + cols * (TILE + GAP), GAP + lines * (TILE + GAP)), (255, 255, 255))
    for j, (path, points, row) in enumerate(zip(paths, landmarks, rows)):
        x, y = GAP + (j % cols) * (TILE + GAP), GAP + (j // cols) * (TILE + GAP)
        sheet.paste(_tile(load_image(path), np.asarray(points, dtype=np.float64), row), (x, y))
    if k == 0:
        sheet.paste(Image.new("RGB", (TILE, TILE), BACKGROUND), (GAP, GAP))
    return sheet


def _tile(image: np.ndarray, points: np.ndarray, row: int):
    """One :data:`TILE` px square: ``image`` (uint8 RGB ``[H, W, 3]``) resized to fit, keeping its aspect,
    centred, ``#row`` in the lower left corner, and ``points`` (``[68, 2]``) drawn over it, or a red frame and
    "no face" when they are NaN (a miss)."""
    from PIL import Image, ImageDraw

    h, w = image.shape[:2]
    scale = TILE / max(h, w)
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    ox, oy = (TILE - tw) // 2, (TILE - th) // 2
    tile = Image.new("RGB", (TILE, TILE), BACKGROUND)
    tile.paste(Image.fromarray(image).resize((tw, th), Image.Resampling.BILINEAR), (ox, oy))
    draw = ImageDraw.Draw(tile)
    _label(draw, f"#{row}", (3, TILE - 3), (255, 255, 255))
    if np.isnan(points).all():
        draw.rectangle((0, 0, TILE - 1, TILE - 1), outline=MISS_COLOUR, width=3)
        _label(draw, "no face", (TILE // 2, TILE // 2), MISS_COLOUR, centre=True)
    else:
        inside = (points[:, 0] >= 0) & (points[:, 0] <= w - 1) & (points[:, 1] >= 0) & (points[:, 1] <= h - 1)
        tx = ox + (points[:, 0] + 0.5) * tw / w - 0.5  # pixel centres to pixel centres
        ty = oy + (points[:, 1] + 0.5) * th / h - 0.5
        for px, py, ok in zip(tx, ty, inside):
            r = DOT_RADIUS
            draw.ellipse((px - r, py - r, px + r, py + r), fill=INSIDE_COLOUR if ok else OUTSIDE_COLOUR)
    return tile


def _label(draw, text: str, xy: tuple[int, int], colour: tuple[int, int, int], centre: bool = False) -> None:
    """``text`` on a black box, readable on any image: centred on ``xy``, or with its lower left corner there
    (no PIL anchors: the bitmap font PIL falls back to without FreeType has none)."""
    x0, y0, x1, y1 = draw.textbbox((0, 0), text)
    x = xy[0] - (x1 + x0) / 2 if centre else xy[0] - x0
    y = xy[1] - (y1 + y0) / 2 if centre else xy[1] - y1
    draw.rectangle((x + x0 - 1, y + y0 - 1, x + x1 + 1, y + y1 + 1), fill=(0, 0, 0))
    draw.text((x, y), text, fill=colour)
