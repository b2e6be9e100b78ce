"""The ``dlib`` backend: HOG face detector + the 68-point iBUG shape predictor (Kazemi & Sullivan 2014).

The predictor file ``shape_predictor_68_face_landmarks.dat`` ships inside the ``face_recognition_models``
package (no download). dlib returns integer pixel positions (pixel centres at integers), iBUG-68 order.

- Whole images: ``dlib.get_frontal_face_detector()``; small images (shorter side < :data:`UPSAMPLE_BELOW`
  px) are upsampled once, and an image with no face at the first try is retried upsampled once; the largest
  face wins (one subject per FER image).
- Aligned crops (``aligned=True``, e.g. RAF-DB's aligned 100x100 images): the HOG detector misses faces that
  fill a small image, so the shape predictor gets the full-image box and no detector runs.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from palbench.data.canonical import N_LANDMARKS
from palbench.errors import ConfigError, WeightsError
from palbench.landmarks.base import LandmarkBackend

#: Images whose shorter side is below this many pixels are upsampled once before HOG detection.
UPSAMPLE_BELOW = 300


def default_predictor_path() -> Path:
    """Path of the 68-point predictor inside ``face_recognition_models`` (raises :class:`WeightsError`)."""
    try:
        with warnings.catch_warnings():
            # face_recognition_models imports pkg_resources, deprecated in setuptools (pinned < 81).
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            import face_recognition_models
    except ImportError as e:
        raise WeightsError(
            f"dlib shape predictor: face_recognition_models is not importable ({e}); install "
            "face-recognition-models==0.3.0 with setuptools<81, or pass predictor_path"
        ) from None
    return Path(face_recognition_models.pose_predictor_model_location())


def hog_detect(image: np.ndarray, upsample: int | None = None, detector=None) -> tuple[int, int, int, int] | None:
    """Largest dlib HOG face box ``(x0, y0, x1, y1)`` (inclusive pixels) in uint8 RGB ``[H, W, 3]``, or None.

    ``upsample=None``: once for images with a shorter side below :data:`UPSAMPLE_BELOW`; otherwise none, then
    once more if nothing was found.
    """
    if detector is None:
        import dlib

        detector = dlib.get_frontal_face_detector()
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if upsample is not None:
        tries = [int(upsample)]
    elif min(image.shape[:2]) < UPSAMPLE_BELOW:
        tries = [1]
    else:
        tries = [0, 1]
    for up in tries:
        rects = detector(image, up)
        if len(rects):
            r = max(rects, key=lambda r: r.width() * r.height())
            return r.left(), r.top(), r.right(), r.bottom()
    return None


class DlibBackend(LandmarkBackend):
    """dlib 68-point landmarks.

    Args:
        aligned: images are aligned face crops; use the full-image box, no detector.
        upsample: HOG upsampling count; ``None`` picks it by image size (see module doc).
        predictor_path: a ``.dat`` 68-point shape predictor (default: the one in face_recognition_models).
    """

    name = "dlib"

    def __init__(self, aligned: bool = False, upsample: int | None = None, predictor_path: str | Path | None = None):
        import dlib

        if upsample is not None and (int(upsample) != upsample or upsample < 0):
            raise ConfigError(f"dlib upsample must be a non-negative integer, got {upsample!r}")
        self.aligned = bool(aligned)
        self.upsample = upsample
        self.predictor_path = Path(predictor_path) if predictor_path is not None else default_predictor_path()
        if not self.predictor_path.is_file():
            raise WeightsError(f"{self.predictor_path}: dlib 68-point shape predictor not found")
        try:
            self._predictor = dlib.shape_predictor(str(self.predictor_path))
        except RuntimeError as e:
            raise WeightsError(f"{self.predictor_path}: not a dlib shape predictor ({e})") from None
        self._detector = None if self.aligned else dlib.get_frontal_face_detector()
        self._dlib = dlib

    def options(self) -> dict:
        return {"aligned": self.aligned, "upsample": self.upsample, "predictor": self.predictor_path.name}

    def detect(self, image: np.ndarray) -> tuple[int, int, int, int] | None:
        """Largest HOG face box ``(x0, y0, x1, y1)`` (inclusive pixels) in uint8 RGB ``[H, W, 3]``, or None."""
        if self._detector is None:
            raise ConfigError("dlib backend built with aligned=True has no detector")
        return hog_detect(image, self.upsample, self._detector)

    def predict(self, image: np.ndarray, box: tuple[float, float, float, float] | None = None) -> np.ndarray | None:
        """68 (x, y) landmarks float32 ``[68, 2]`` of the face in ``box`` (detected when None), or None."""
        image = np.ascontiguousarray(image, dtype=np.uint8)
        box = self.face_box(image, box)
        if box is None:
            return None
        x0, y0, x1, y1 = (int(round(float(v))) for v in box)
        shape = self._predictor(image, self._dlib.rectangle(x0, y0, x1, y1))
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
        assert points.shape == (N_LANDMARKS, 2), points.shape
        return points
