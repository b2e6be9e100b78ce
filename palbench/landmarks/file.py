"""The ``file`` backend: landmarks someone else computed, checked before they reach a prior.

Sources: the dataset's ``provided_landmarks.npy`` (AffectNet's importer writes it from the annotations) or
a user file given as ``source``: ``.npy`` float ``[N, 68, 2]`` or ``.csv`` with 136 numeric columns
``x0,y0,x1,y1,...,x67,y67`` (one line per ``samples.csv`` row, same order; an optional header row; all
cells empty or NaN for a sample with no face). Coordinates are (x, y) pixels of the stored image.

Checks (each failure is a one-line :class:`DataError` naming the file and the row): shape and row count,
rows that are partly NaN, infinite values, landmarks far outside the image (more than
:data:`FRAME_MARGIN` of the image size beyond an edge), and rows that look normalised to [0, 1].
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from palbench.data.canonical import N_LANDMARKS, CanonicalDataset, validate_landmarks
from palbench.errors import DataError
from palbench.landmarks.base import LandmarkBackend, image_size

#: A landmark may lie outside the image (a cropped chin) by at most this fraction of the image size.
FRAME_MARGIN = 0.5


def check_provided(landmarks: np.ndarray, dataset: CanonicalDataset, where: str) -> np.ndarray:
    """Validate provided landmarks against the dataset; return float32 ``[N, 68, 2]``.

    Args:
        landmarks: array as read from ``where``.
        dataset: the canonical dataset (row count, image sizes).
        where: the file named in errors.
    """
    landmarks = np.asarray(landmarks)
    n = len(dataset)
    if landmarks.shape != (n, N_LANDMARKS, 2):
        raise DataError(
            f"{where}: landmarks have shape {landmarks.shape}; expected ({n}, 68, 2), "
            f"one row per samples.csv row of {dataset.root}"
        )
    if not np.issubdtype(landmarks.dtype, np.number):
        raise DataError(f"{where}: landmarks have dtype {landmarks.dtype}; expected floating-point pixel coordinates")
    landmarks = validate_landmarks(landmarks.astype(np.float64), n, where)
    for i in np.flatnonzero(~np.isnan(landmarks).all(axis=(1, 2))):
        _check_row(landmarks[i], dataset, int(i), where)
    return landmarks


def _check_row(points: np.ndarray, dataset: CanonicalDataset, i: int, where: str) -> None:
    h, w = image_size(dataset.image_path(i))
    low = -FRAME_MARGIN * np.array([w, h])
    high = np.array([w - 1, h - 1]) + FRAME_MARGIN * np.array([w, h])
    outside = ((points < low) | (points > high)).any(axis=1)
    if outside.any():
        j = int(np.flatnonzero(outside)[0])
        x, y = points[j]
        raise DataError(
            f"{where}: row {i} ({dataset.samples.at[i, 'path']}): landmark {j} at ({x:.1f}, {y:.1f}) lies more "
            f"than {FRAME_MARGIN:.0%} of the image size outside the {w}x{h} image; expected pixel coordinates "
            "of the stored image"
        )
    if min(h, w) >= 16 and np.abs(points).max() <= 1.5:
        raise DataError(
            f"{where}: row {i} ({dataset.samples.at[i, 'path']}): all landmarks within 1.5 px of the origin of a "
            f"{w}x{h} image; they look normalised to [0, 1], expected pixel coordinates"
        )


def read_landmark_file(path: Path) -> np.ndarray:
    """Read ``.npy`` ``[N, 68, 2]`` or ``.csv`` (136 columns) into an array (unvalidated shape for .npy)."""
    if not path.is_file():
        raise DataError(f"{path}: landmark file not found")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise DataError(f"{path}: unreadable .npy ({str(e).splitlines()[0]})") from None
    if suffix == ".csv":
        return _read_csv(path)
    raise DataError(f"{path}: unsupported landmark file type {suffix!r}; expected .npy [N,68,2] or .csv (136 columns)")


def _read_csv(path: Path) -> np.ndarray:
    try:
        table = pd.read_csv(path, header=None, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: unreadable CSV ({str(e).splitlines()[0]})") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty CSV; expected 136 columns x0,y0,...,x67,y67") from None
    cells = np.char.strip(table.to_numpy(dtype=str))
    order = list(range(cells.shape[1]))
    if len(cells) and not all(_NUMBER.match(v) or v == "" for v in cells[0]):  # a header row
        names = [v.lower() for v in cells[0]]
        wanted = [f"{a}{k}" for k in range(N_LANDMARKS) for a in "xy"]
        if sorted(names) == sorted(wanted):
            order = [names.index(c) for c in wanted]  # named columns: any order
        cells = cells[1:]
    if cells.shape[1] != 2 * N_LANDMARKS:
        raise DataError(
            f"{path}: {cells.shape[1]} columns; expected {2 * N_LANDMARKS} (x0,y0,x1,y1,...,x67,y67), "
            "one line per samples.csv row"
        )
    cells = cells[:, order]
    values = pd.DataFrame(cells).apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & (cells != "") & (np.char.lower(cells) != "nan")
    if bad.any():
        r, c = (int(v[0]) for v in np.nonzero(bad))
        raise DataError(f"{path}: row {r}: value {str(cells[r, c])!r} of {'xy'[c % 2]}{c // 2} is not a number")
    return values.reshape(len(cells), N_LANDMARKS, 2)


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$|^[+-]?(nan|inf)$", re.IGNORECASE)


class FileBackend(LandmarkBackend):
    """Provided landmarks: ``provided_landmarks.npy`` of the dataset, or ``source`` (.npy / .csv)."""

    name = "file"

    def __init__(self, source: str | Path | None = None):
        self.source = None if source is None else Path(source)

    def options(self) -> dict:
        return {"source": None if self.source is None else str(self.source)}

    def dataset_landmarks(self, dataset: CanonicalDataset, progress: bool | None = None) -> np.ndarray:
        path = self.source if self.source is not None else dataset.root / "provided_landmarks.npy"
        if self.source is None and not path.is_file():
            raise DataError(
                f"{path}: not found; the file landmark backend needs provided landmarks (AffectNet import) "
                "or --source PATH (.npy [N,68,2] or .csv with 136 columns)"
            )
        return check_provided(read_landmark_file(path), dataset, str(path)).astype(np.float32)
