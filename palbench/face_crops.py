"""Face crops of whole photos: a landmark backend finds the 68 points, :mod:`palbench.data.align` crops.

Data flows one way (dataset → landmarks): :mod:`palbench.data.align` is geometry on images and landmark
arrays and imports nothing from here; this module runs the detector and hands its points over.

- :func:`find_landmarks`: the landmarks of every image of a dataset by a backend, and how they were found
  (recorded in the aligned dataset's ``meta.json``);
- :func:`face_detector`: that, for :func:`palbench.data.importers.import_folder` (``palbench import folder
  --align BACKEND``), which finds the faces of the photos it has just imported;
- :func:`align_faces`: ``palbench align``, a dataset of whole photos → its aligned copy;
- :class:`FaceCrop` and :func:`crop_photos`: how a dataset's photos were cropped (its ``meta.json``), and new
  photos cropped the same way (``palbench predict`` on a run trained on aligned photos).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from palbench.config.names import CROP_SIZE, MARGIN
from palbench.data.align import align_dataset, check_crop, crop_corners, crop_file, crop_matrix, face_frame, save_crop
from palbench.data.canonical import CanonicalDataset, read_dataset
from palbench.errors import ConfigError, DataError
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


@dataclass(frozen=True)
class FaceCrop:
    """How a dataset's photos were cropped to their faces: its ``meta.json``'s ``align`` record.

    Attributes:
        backend: the landmark backend that found the 68 points (``dlib``, ``face_alignment``; ``truth`` and
            ``file`` read them from a file).
        options: the backend's options as recorded (:meth:`~palbench.landmarks.LandmarkBackend.options`).
        crop_size: the crop's side in pixels; margin: its room around the face
            (:func:`~palbench.data.align.crop_matrix`).
    """

    backend: str
    options: dict
    crop_size: int
    margin: float

    @classmethod
    def from_meta(cls, meta: dict, where: str) -> FaceCrop | None:
        """The crop a dataset's ``meta`` (read from ``where``) records; ``None`` where its images were not
        aligned (no ``align`` entry)."""
        align = meta.get("align")
        if align is None:
            return None
        how = align.get("landmarks") if isinstance(align, dict) else None
        backend = how.get("backend") if isinstance(how, dict) else None
        if not isinstance(backend, str) or not backend:
            raise DataError(f"{where}: align.landmarks.backend missing; expected the landmark backend the images "
                            "were aligned with (written by `palbench align` / `import folder --align`)")
        options = how.get("options") or {}
        try:
            check_crop(align.get("crop_size"), align.get("margin"))
        except ConfigError as e:
            raise DataError(f"{where}: align.{e}") from None
        if not isinstance(options, dict):
            raise DataError(f"{where}: align.landmarks.options: expected a mapping, got {options!r}")
        return cls(backend, dict(options), int(align["crop_size"]), float(align["margin"]))

    def to_dict(self) -> dict:
        """``{"backend", "options", "crop_size", "margin"}``, JSON-ready."""
        return {"backend": self.backend, "options": dict(self.options), "crop_size": self.crop_size,
                "margin": self.margin}


def crop_photos(photos: CanonicalDataset, crop: FaceCrop, folder: Path) -> list[dict | None]:
    """Crop every image of ``photos`` to its face as ``crop`` records it was done for a dataset: the same
    landmark backend with the same options (checked before any detection), run as :func:`find_landmarks` runs
    it for ``import folder --align`` and ``palbench align``; the same crop
    (:func:`~palbench.data.align.crop_file`), stored the same way (:func:`~palbench.data.align.save_crop`), as
    ``folder/<i>.png`` (``folder`` exists).

    Returns:
        One entry per image, in order: ``None`` where no face was found, else ``{"file": the PNG, "crop":
        :func:`crop_record`}``.
    """
    if crop.backend not in PHOTO_BACKENDS:
        raise ConfigError(f"the run's images were cropped around landmarks the {crop.backend!r} backend read from a "
                          f"file, which a new photo does not have; finding its face needs one of "
                          f"{', '.join(PHOTO_BACKENDS)} (or --no-align: predict on the images as given)")
    impl = get_backend(crop.backend, aligned=bool(crop.options.get("aligned", False)))
    built = impl.options()
    differ = sorted(k for k in (set(crop.options) & set(built)) - {"device"} if crop.options[k] != built[k])
    if differ:
        given = ", ".join(f"{k}={crop.options[k]!r} (here {built[k]!r})" for k in differ)
        raise ConfigError(f"the run's images were aligned by the {crop.backend} landmark backend with {given}; "
                          "predict builds it with its defaults (or --no-align: predict on the images as given)")
    out: list[dict | None] = []
    for i, points in enumerate(np.asarray(impl.dataset_landmarks(photos), dtype=np.float64)):
        if not np.isfinite(points).all():
            out.append(None)
            continue
        image, _ = crop_file(photos.image_path(i), points, crop.crop_size, crop.margin)
        save_crop(image, folder / f"{i}.png")
        out.append({"file": folder / f"{i}.png", "crop": crop_record(points, crop)})
    return out


def crop_record(points: np.ndarray, crop: FaceCrop) -> dict:
    """Where the crop of the face with landmarks ``points`` ``[68, 2]`` lies in its photo, JSON-ready:

    - ``aligned`` (true), ``backend``, ``crop_size``, ``margin``;
    - ``corners``: the crop square's top-left, top-right, bottom-right and bottom-left corners ``[[x, y]] * 4``
      and ``box``: their bounds ``[x0, y0, x1, y1]``, in the photo's pixel-edge coordinates ((0, 0) its
      top-left corner, (W, H) its bottom-right, as a PIL crop box;
      :func:`~palbench.data.align.crop_corners`);
    - ``angle``: the eye line's angle in the photo, degrees, positive clockwise (y points down); the crop
      turns the photo by minus this;
    - ``matrix``: the 2x3 transform photo pixel ``(x, y, 1)`` → crop pixel, pixel centres at integers in
      both (:func:`~palbench.data.align.crop_matrix`).
    """
    matrix = crop_matrix(points, crop.crop_size, crop.margin)
    corners = crop_corners(matrix, crop.crop_size)
    return {
        "aligned": True, "backend": crop.backend, "crop_size": crop.crop_size, "margin": crop.margin,
        "box": [float(v) for v in (*corners.min(axis=0), *corners.max(axis=0))],
        "corners": corners.tolist(), "angle": math.degrees(face_frame(points)[1]), "matrix": matrix.tolist(),
    }  # fmt: skip
