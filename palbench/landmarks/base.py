"""The landmark backend interface and the helpers the backends share (image reading, output checks).

Every backend module (:mod:`.truth`, :mod:`.file`, :mod:`.dlib_backend`, :mod:`.fan`) imports from here;
this module imports no backend, and :mod:`palbench.landmarks` re-exports its public names.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from palbench.data.canonical import N_LANDMARKS, CanonicalDataset
from palbench.errors import ConfigError, DataError

if TYPE_CHECKING:
    import PIL.Image

__all__ = ["LandmarkBackend", "check_points", "image_size", "load_image"]


class LandmarkBackend:
    """A landmark source. Per-image backends override :meth:`predict`; file-based ones override
    :meth:`dataset_landmarks`.
    """

    name: str = ""

    def options(self) -> dict:
        """The options that determine the output (recorded in ``landmarks.json``)."""
        return {}

    def predict(self, image: np.ndarray, box: tuple[float, float, float, float] | None = None) -> np.ndarray | None:
        """68 landmarks of the face in ``image``.

        Args:
            image: uint8 RGB ``[H, W, 3]``.
            box: face box ``(x0, y0, x1, y1)`` in pixels, or ``None`` to detect it (full image when aligned).

        Returns:
            float32 ``[68, 2]`` (x, y) pixel coordinates, or ``None`` when no face was found.
        """
        raise ConfigError(f"the {self.name} landmark backend reads landmarks from a file; it does not look at images")

    aligned: bool = False

    def detect(self, image: np.ndarray) -> tuple[float, float, float, float] | None:
        """The face box ``(x0, y0, x1, y1)`` in ``image``, or None (per-image backends with a detector)."""
        raise ConfigError(f"the {self.name} landmark backend has no face detector")

    def face_box(self, image: np.ndarray, box: tuple[float, float, float, float] | None) -> tuple | None:
        """``box`` as given; else the full image for aligned crops; else the detected face (None: no face)."""
        if box is not None:
            return box
        h, w = image.shape[:2]
        return (0, 0, w - 1, h - 1) if self.aligned else self.detect(image)

    def dataset_landmarks(self, dataset: CanonicalDataset, progress: bool | None = None) -> np.ndarray:
        """Landmarks of every sample, float32 ``[N, 68, 2]`` with NaN rows where no face was found."""
        out = np.full((len(dataset), N_LANDMARKS, 2), np.nan, dtype=np.float32)
        disable = None if progress is None else not progress
        bar = tqdm(range(len(dataset)), desc=f"landmarks ({self.name})", unit="img", disable=disable)
        for i in bar:
            points = self.predict(load_image(dataset.image_path(i)), None)
            if points is not None:
                out[i] = check_points(points, f"{self.name} backend on {dataset.image_path(i)}")
        return out


@contextmanager
def _open_image(path: Path) -> Iterator[PIL.Image.Image]:
    """``PIL.Image.open(path)`` as a context; a missing or unreadable file (also while the block decodes it)
    raises a one-line :class:`DataError` naming ``path``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            yield im
    except FileNotFoundError:
        raise DataError(f"{path}: image not found (listed in samples.csv)") from None
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path}: unreadable image ({e})") from None


def load_image(path: Path) -> np.ndarray:
    """The stored image as uint8 RGB ``[H, W, 3]`` (no EXIF rotation: coordinates are of the stored pixels)."""
    from palbench.data.images import to_rgb

    with _open_image(path) as im:
        return np.asarray(to_rgb(im), dtype=np.uint8)


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of a stored image, from its header only."""
    with _open_image(path) as im:
        w, h = im.size
    return h, w


def check_points(points: np.ndarray, where: str) -> np.ndarray:
    """A backend's output as float32 ``[68, 2]``; anything else is an internal error naming ``where``."""
    points = np.asarray(points, dtype=np.float32)
    if points.shape != (N_LANDMARKS, 2) or not np.isfinite(points).all():
        raise DataError(f"{where}: returned landmarks of shape {points.shape} (or non-finite); expected (68, 2)")
    return points
