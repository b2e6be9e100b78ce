"""Aligned face crops from 68 landmarks: the photos of a user's folder made like RAF-DB's aligned set.

The paper's datasets provide aligned faces (RAF-DB's 100x100 crops; AffectNet's face boxes). Photos from
elsewhere show the face at any scale, angle and place, with hair, shoulders and background; this module
crops each image to its face before anything is trained (``palbench align``, or ``palbench import folder
--align BACKEND``), and moves the landmarks with it. It is geometry on images and landmark arrays: the
landmarks are given. Finding them is the caller's (a detector of :mod:`palbench.landmarks`, run by
:func:`palbench.face_crops.align_faces` and the CLI), so data flows one way: nothing in
:mod:`palbench.data` imports :mod:`palbench.landmarks`.

The crop (:func:`crop_matrix`) is a similarity transform of the 68 points (iBUG order, (x, y) pixel
coordinates with pixel centres at integers):

- the eye line is levelled: the line between the eye centres (mean of points 36-41 and 42-47) becomes
  horizontal;
- the scale is fixed by the face: ``d = max(inter-ocular distance, eyes-to-mouth distance)`` (the larger
  of the two is robust to a turned head and to an open mouth), and the crop's side covers
  ``2 (1 + margin) d`` source pixels, ``margin`` 0.4 by default (the face with a little forehead and chin,
  as in RAF-DB's aligned crops);
- the crop is centred on the line from the eye centre to the mouth centre (points 48 and 54), at
  :data:`CENTRE` of the way: the chin reaches further below the mouth than the brows above the eyes.

The image and the points go through the same matrix, so the moved landmarks sit where the drawn features
moved. The image is resampled once (bilinear), after a box-filter reduction by an integer factor when the
crop shrinks it more than twice (bilinear sampling alone would alias). Pixels of the crop outside the photo
are black. PIL's affine transform, not torchvision.transforms.v2: the dataset stage stays torch-free (an
interpreter start with torch costs ~4 s), and one 2x3 matrix applied to both the pixels and the points
leaves no room for the two to disagree.

An image whose landmarks are missing (no face found) is kept whole, padded to a square and resized to the
crop size, with NaN landmarks (trained with cross-entropy only, as for any miss), and counted in
``meta.json`` (``align.no_face``); ``drop_no_face`` drops it instead (counted too).
"""

from __future__ import annotations

import math
import os
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from palbench.config.names import CROP_SIZE, MARGIN
from palbench.data.canonical import (CanonicalDataset, N_LANDMARKS, dataset_writer, load_landmark_set, read_dataset,
                                    write_tables)
from palbench.data.images import to_rgb
from palbench.errors import ConfigError, DataError

#: Where the crop is centred between the eyes (0) and the mouth (1).
CENTRE = 0.6
#: How many rows without a face ``meta.json`` lists.
MAX_LISTED = 20


def face_frame(points: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The face's ``(centre [2], angle, scale d)`` from 68 landmarks ``[68, 2]``.

    ``centre`` is :data:`CENTRE` of the way from the eyes to the mouth; ``angle`` (radians) is the eye line's
    direction in image coordinates (y down); ``d`` the larger of the
    inter-ocular and the eyes-to-mouth distances.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (N_LANDMARKS, 2) or not np.isfinite(points).all():
        raise ConfigError(f"face_frame: expected finite landmarks of shape (68, 2), got {points.shape}")
    eye_l, eye_r = points[36:42].mean(axis=0), points[42:48].mean(axis=0)
    mouth = points[[48, 54]].mean(axis=0)
    eyes = (eye_l + eye_r) / 2
    eye_line = eye_r - eye_l
    d = max(float(np.hypot(*eye_line)), float(np.hypot(*(mouth - eyes))))
    if d <= 0:
        raise ConfigError("face_frame: degenerate landmarks (eyes and mouth at one point)")
    return eyes + CENTRE * (mouth - eyes), math.atan2(eye_line[1], eye_line[0]), d


def crop_matrix(points: np.ndarray, crop_size: int = CROP_SIZE, margin: float = MARGIN) -> np.ndarray:
    """The 2x3 matrix ``A`` taking a source pixel ``(x, y, 1)`` to the crop (pixel centres at integers both).

    Args:
        points: the face's 68 landmarks ``[68, 2]`` in the source image.
        crop_size: side of the crop in pixels.
        margin: room around the face (see the module docstring).

    Returns:
        float64 ``[2, 3]``: rotation by minus the eye-line angle, scale ``crop_size / (2 (1 + margin) d)``,
        the face centre to the crop centre.
    """
    check_crop(crop_size, margin)
    centre, angle, d = face_frame(points)
    k = crop_size / (2 * (1 + margin) * d)
    c, s = math.cos(angle), math.sin(angle)
    rot = k * np.array([[c, s], [-s, c]])  # rotation by -angle, scaled
    mid = (crop_size - 1) / 2
    return np.hstack([rot, (np.array([mid, mid]) - rot @ centre)[:, None]])


def check_crop(crop_size: int, margin: float) -> None:
    if isinstance(crop_size, bool) or not isinstance(crop_size, int) or crop_size < 16:
        raise ConfigError(f"crop_size: expected an integer >= 16 (pixels), got {crop_size!r}")
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin <= 3:
        raise ConfigError(f"margin: expected a number in [0, 3] (share of the face scale), got {margin!r}")


def move_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``points`` ``[..., 2]`` through the 2x3 ``matrix`` (NaN stays NaN)."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp(image: Image.Image, matrix: np.ndarray, size: int | tuple[int, int], fill: int = 0) -> Image.Image:
    """What ``matrix`` (source → output, pixel centres at integers) makes of ``image``, an image of ``size``
    (side, or ``(width, height)``): bilinear, after an integer box-filter reduction when shrinking more than
    2x. 8-bit RGB (any input mode, :func:`~palbench.data.images.to_rgb`), or L for an L ``image`` (a mask);
    output pixels from outside ``image`` are ``fill``."""
    image = image if image.mode == "L" else to_rgb(image)
    width, height = (size, size) if isinstance(size, int) else size
    matrix = np.asarray(matrix, dtype=np.float64)
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    factor = max(1, int(1 / scale / 2)) if scale > 0 else 1
    if factor > 1:
        # Image.reduce(f): reduced pixel j covers source pixels [f j, f j + f), centre f j + (f - 1) / 2.
        image = image.reduce(factor)
        to_source = np.array([[factor, 0, (factor - 1) / 2], [0, factor, (factor - 1) / 2], [0, 0, 1]])
        matrix = matrix @ to_source
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    # PIL samples output pixel (i, j) at (i + 0.5, j + 0.5) in edge coordinates (centres at +0.5): shift
    # the centre-coordinate inverse by half a pixel on both sides.
    a, b, c = inverse[0]
    d, e, f = inverse[1]
    data = (a, b, c + 0.5 - 0.5 * (a + b), d, e, f + 0.5 - 0.5 * (d + e))
    return image.transform((width, height), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR,
                           fillcolor=fill if image.mode == "L" else (fill,) * 3)


def letterbox(image: Image.Image, crop_size: int) -> Image.Image:
    """A whole image padded (black) to a centred square and resized to ``crop_size``: kept when no face."""
    image = to_rgb(image)
    side = max(image.size)
    square = Image.new("RGB", (side, side))
    square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return square.resize((crop_size, crop_size), Image.Resampling.BILINEAR, reducing_gap=2.0)


def crop_face(image: Image.Image, points: np.ndarray | None, crop_size: int = CROP_SIZE,
              margin: float = MARGIN) -> tuple[Image.Image, np.ndarray]:
    """``(crop, moved landmarks [68, 2])`` of one image; without ``points`` (no face) the letterboxed image and
    NaN landmarks."""
    if points is None or not np.isfinite(points).all():
        return letterbox(image, crop_size), np.full((N_LANDMARKS, 2), np.nan, dtype=np.float32)
    matrix = crop_matrix(points, crop_size, margin)
    return warp(to_rgb(image), matrix, crop_size), move_points(points, matrix).astype(np.float32)


def crop_file(path: str | os.PathLike, points: np.ndarray | None, crop_size: int = CROP_SIZE,
              margin: float = MARGIN) -> tuple[Image.Image, np.ndarray]:
    """:func:`crop_face` of the image file ``path`` as stored (no EXIF rotation: ``points`` are of the stored
    pixels): what every aligned dataset image is made by, and ``palbench predict``'s crop of a photo."""
    with Image.open(path) as im:
        return crop_face(im, points, crop_size, margin)


def save_crop(crop: Image.Image, path: Path) -> None:
    """Store a crop as an aligned dataset does: lossless PNG (the model sees exactly these pixels)."""
    crop.save(path, format="PNG", compress_level=1)


def crop_corners(matrix: np.ndarray, crop_size: int) -> np.ndarray:
    """The outer corners of the ``crop_size`` square that ``matrix`` (:func:`crop_matrix`) crops, in the source
    image: float64 ``[4, 2]`` (x, y), the crop's top-left, top-right, bottom-right and bottom-left corners, in
    pixel-edge coordinates ((0, 0) is the source's top-left corner and (W, H) its bottom-right, as a PIL crop
    box; the pixel-centre coordinates of :func:`crop_matrix` plus 0.5)."""
    edges = np.array([[0, 0], [crop_size, 0], [crop_size, crop_size], [0, crop_size]], dtype=np.float64)
    inverse = np.linalg.inv(np.vstack([np.asarray(matrix, dtype=np.float64), [0, 0, 1]]))[:2]
    return move_points(edges - 0.5, inverse) + 0.5


def align_dataset(
    src: str | os.PathLike | CanonicalDataset,
    out: str | os.PathLike,
    landmarks: np.ndarray,
    crop_size: int = CROP_SIZE,
    margin: float = MARGIN,
    drop_no_face: bool = False,
    how: dict | None = None,
) -> dict:
    """Write the aligned copy of dataset ``src``, each image cropped around its ``landmarks``, as the dataset
    ``out`` (replaced only on success; ``out`` may be ``src``); return its ``meta.json``.

    The landmarks come from the caller: a detector of :mod:`palbench.landmarks` (``palbench align``,
    :func:`palbench.face_crops.align_faces`) or the points the dataset carries (:func:`align_provided`).
    Arguments as :func:`write_aligned`'s.
    """
    check_crop(crop_size, margin)
    data = src if isinstance(src, CanonicalDataset) else read_dataset(src, load_landmarks=False)
    with dataset_writer(out) as tmp:
        write_aligned(data, tmp, landmarks, crop_size, margin, drop_no_face, how)
    return read_dataset(out, load_landmarks=False).meta


#: How :func:`align_provided` records its landmarks in ``meta.json``: the exact points ``palbench synth`` drew,
#: which the ``truth`` landmark backend reads.
PROVIDED = {"backend": "truth", "options": {}}


def align_provided(root: str | os.PathLike, crop_size: int = CROP_SIZE, margin: float = MARGIN) -> dict:
    """``palbench synth --align``: crop the dataset ``root`` in place around the landmarks it carries
    (``provided_landmarks.npy`` ``[N, 68, 2]``: the exact points ``palbench synth`` drew; no detector runs);
    return its ``meta.json``."""
    check_crop(crop_size, margin)
    data = read_dataset(root, load_landmarks=False)
    landmarks = load_landmark_set(data, data.root / "provided_landmarks.npy")
    return align_dataset(data, root, landmarks, crop_size, margin, how=PROVIDED)


def write_aligned(
    src: str | os.PathLike | CanonicalDataset,
    folder: Path,
    landmarks: np.ndarray,
    crop_size: int = CROP_SIZE,
    margin: float = MARGIN,
    drop_no_face: bool = False,
    how: dict | None = None,
) -> dict:
    """Write the aligned copy of canonical dataset ``src`` into an existing (temporary) dataset ``folder`` with an
    empty ``images/``; return the ``align`` entry of its ``meta.json``. Images are stored as PNG (lossless)
    under their source path.

    Args:
        src: canonical dataset (folder or read).
        folder: the output dataset folder being built.
        landmarks: the 68 points of every ``src`` image, ``[N, 68, 2]``, NaN rows where no face was found.
        crop_size, margin: see :func:`crop_matrix`.
        drop_no_face: drop images without landmarks instead of keeping them whole.
        how: recorded in ``meta.json``'s ``align`` (e.g. the landmark backend and its options).
    """
    from tqdm import tqdm

    data = src if isinstance(src, CanonicalDataset) else read_dataset(src, load_landmarks=False)
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (len(data), N_LANDMARKS, 2):
        raise DataError(f"{data.root}: landmarks have shape {landmarks.shape}; expected ({len(data)}, 68, 2)")
    found = np.isfinite(landmarks).all(axis=(1, 2))
    if not found.any():
        raise DataError(f"{data.root}: no face found in any of its {len(data)} images; nothing to align "
                        "(check the landmark backend: whole photos need aligned: false)")
    keep = found | (not drop_no_face)
    stored = _png_paths(data.samples["path"].tolist())
    moved = np.full((len(data), N_LANDMARKS, 2), np.nan, dtype=np.float32)
    for i in tqdm(np.flatnonzero(keep), desc="align", unit="img", disable=None):
        crop, moved[i] = crop_file(data.image_path(int(i)), landmarks[i] if found[i] else None, crop_size, margin)
        dst = folder / "images" / stored[i]
        dst.parent.mkdir(parents=True, exist_ok=True)
        save_crop(crop, dst)
    samples = data.samples.assign(path=stored)[keep].reset_index(drop=True)
    if drop_no_face:
        for split in ("train", "test", "val"):
            if (data.samples["split"] == split).any() and not (samples["split"] == split).any():
                raise DataError(f"{data.root}: no face found in any {split} image, and --drop-no-face drops "
                                f"them all; keep them (--no-drop-no-face) or check the landmark backend")
    missed = [str(p) for p in data.samples["path"][~found]]
    align = {
        "crop_size": crop_size,
        "margin": margin,
        "landmarks": how or {},
        "no_face": int((~found).sum()),
        "no_face_paths": missed[:MAX_LISTED],
        "no_face_kept": not drop_no_face,
        "dropped_no_face": int((~keep).sum()),
    }
    meta = {k: v for k, v in data.meta.items() if k not in ("classes", "counts", "n_samples", "image_size")}
    write_tables(folder, samples, {**meta, "image_size": [crop_size, crop_size], "align": align},
                 provided_landmarks=moved[keep])
    return align


def _png_paths(paths: list[str]) -> list[str]:
    """Stored path of each aligned image: the source path with ``.png`` (``<path>.png`` for all when two
    source files differ only in their suffix)."""
    pngs = [str(PurePosixPath(p).with_suffix(".png")) for p in paths]
    return pngs if len(set(pngs)) == len(pngs) else [f"{p}.png" for p in paths]
