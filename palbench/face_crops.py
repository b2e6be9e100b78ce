"""Face crops of whole photos: a landmark backend finds the 68 points, :mod:`palbench.data.align` crops.

Data flows one way (dataset → landmarks): :mod:`palbench.data.align` is geometry on images and landmark
arrays and imports nothing from here; this module runs the detector and hands its points over.

- :func:`find_landmarks`: the landmarks of every image of a dataset by a backend, and how they were found
  (recorded in the aligned dataset's ``meta.json``);
- :func:`face_detector`: that, for :func:`palbench.data.importers.import_folder` (``palbench import folder
  --align BACKEND``), which finds the faces of the photos it has just imported;
- :func:`align_faces`: ``palbench align``, a dataset of whole photos → its aligned copy.
"""

from __future__ import annotations

import os
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from palbench.config.names import CROP_SIZE, MARGIN
from palbench.data.align import align_dataset, check_crop
from palbench.data.canonical import CanonicalDataset, read_dataset
from palbench.errors import ConfigError
from palbench.landmarks import get_backend

if TYPE_CHECKING:
    from palbench.data.importers.folder import Detector

#: Landmark backends that find a face in a whole photo (``import folder --align``).
PHOTO_BACKENDS = ("dlib", "face_alignment")


def find_landmarks(data: CanonicalDataset, backend: str, **options) -> tuple[np.ndarray, dict]:
    """``(landmarks [N, 68, 2] (NaN rows: no face), {"backend", "options"})`` of every image of ``data`` by the
    landmark backend ``backend`` built with ``options`` (:func:`palbench.landmarks.get_backend`)."""
    impl = get_backend(backend, **options)
    return impl.dataset_landmarks(data), {"backend": backend, "options": impl.options()}


def face_detector(backend: str) -> Detector:
    """The :data:`~palbench.data.importers.folder.Detector` of ``import folder --align BACKEND``: ``backend``
    (one of :data:`PHOTO_BACKENDS`, which find the face in a whole photo) run on the imported photos."""
    if backend not in PHOTO_BACKENDS:
        raise ConfigError(f"--align: {backend!r}; expected none or one of {', '.join(PHOTO_BACKENDS)} (a face "
                          "detector: the photos are whole)")
    return partial(find_landmarks, backend=backend)


def align_faces(
    src: str | os.PathLike,
    out: str | os.PathLike,
    backend: str = "dlib",
    crop_size: int = CROP_SIZE,
    margin: float = MARGIN,
    drop_no_face: bool = False,
    **options,
) -> dict:
    """``palbench align``: find the landmarks of every image of dataset ``src`` with ``backend`` (and its
    ``options``) and write the aligned dataset ``out`` (replaced only on success); returns its ``meta.json``."""
    check_crop(crop_size, margin)
    data = read_dataset(src, load_landmarks=False)
    landmarks, how = find_landmarks(data, backend, **options)
    return align_dataset(data, out, landmarks, crop_size, margin, drop_no_face, how)
