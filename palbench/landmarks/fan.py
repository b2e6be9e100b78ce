"""The ``face_alignment`` backend: 2D-FAN-4 (Bulat & Tzimiropoulos, ICCV 2017) via ``face_alignment`` 1.5.0.

Weights (never downloaded unless ``allow_download=True``, CLI ``--allow-download``):

- FAN: ``$TORCH_HOME/hub/checkpoints/2DFAN4-11f355bf06.pth.tar`` (torch hub cache, where face_alignment
  looks; ``TORCH_HOME`` defaults to ``~/.cache/torch``) or ``weights={"fan": PATH}``. A plain state dict
  of ``face_alignment.models.FAN(4)``, loaded with ``torch.load(weights_only=True)``.
- S3FD face detector (whole images only): ``$TORCH_HOME/hub/checkpoints/s3fd-619a316812.pth`` or
  ``weights={"detector": PATH}``; a state dict of ``face_alignment.detection.sfd.net_s3fd.s3fd``.
  ``detector="dlib"`` uses dlib's HOG detector instead (no weight file).

With ``aligned=True`` (aligned face crops) the full-image box goes to FAN and no detector is built. Boxes
are passed as face_alignment's ``detected_faces=``: FAN crops a square of side ``200·(w+h)/195`` px around
the box centre (moved up by 0.12·h), predicts 64x64 heatmaps and maps their maxima back to image pixels.
On whole images the largest detected face wins. ``compile=False`` (torch.compile costs minutes on CPU).
"""

from __future__ import annotations

import inspect
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np

from palbench.errors import ConfigError, WeightsError
from palbench.landmarks.base import LandmarkBackend

#: File names face_alignment 1.5.0 uses in the torch hub cache (basenames of its download URLs).
FAN_FILE = "2DFAN4-11f355bf06.pth.tar"
DETECTOR_FILE = "s3fd-619a316812.pth"
DETECTORS = ("sfd", "dlib")
_LOAD_ERRORS = (RuntimeError, OSError, EOFError, KeyError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile)


def hub_checkpoints() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` as torch (and so face_alignment) resolves it now."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def default_weight_paths() -> dict[str, Path]:
    """Where face_alignment looks for (and would download) its weights: ``{"fan": ..., "detector": ...}``."""
    return {"fan": hub_checkpoints() / FAN_FILE, "detector": hub_checkpoints() / DETECTOR_FILE}


def _urls() -> dict[str, str]:
    from face_alignment import api
    from face_alignment.detection.sfd import sfd_detector

    return {"fan": api.models_urls["2DFAN-4"], "detector": sfd_detector.models_urls["s3fd"]}


def _face_alignment_class():
    """face_alignment's ``FaceAlignment`` loading FAN from a path palbench resolved (no implicit download)."""
    import torch
    from face_alignment import api
    from face_alignment.models import FAN

    if not hasattr(api.FaceAlignment, "_load_native"):
        raise ConfigError("face_alignment: unsupported version (expected 1.5.0, which loads FAN as a state dict)")

    class _FaceAlignment(api.FaceAlignment):
        def __init__(self, fan_path: Path | None, **kwargs):
            self._palbench_fan_path = fan_path
            super().__init__(**kwargs)

        def _load_native(self, network_name, network_size, device, dtype):
            path = self._palbench_fan_path
            if path is None:  # allow_download=True and no file yet: face_alignment's own download
                from face_alignment.utils import load_file_from_url

                path = Path(load_file_from_url(api.models_urls[network_name]))
            net = FAN(network_size)
            try:
                state = torch.load(path, map_location=device, weights_only=True)
                net.load_state_dict(state)
                net.to(device, dtype=dtype)
            except _LOAD_ERRORS as e:
                problem = _first(e)
                raise WeightsError(f"{path}: not a face_alignment FAN({network_size}) state dict ({problem})") from None
            net.eval()
            return net

    return _FaceAlignment


def _first(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


class FanBackend(LandmarkBackend):
    """FAN landmarks through face_alignment.

    Args:
        aligned: images are aligned face crops: the full-image box, no detector.
        device: torch device (``cpu`` by default).
        weights: ``{"fan": path, "detector": path}``; missing keys fall back to the torch hub cache.
        allow_download: let face_alignment download missing files into the hub cache (network!).
        flip_input: also run FAN on the mirrored crop and sum the heatmaps (face_alignment's default).
        detector: ``sfd`` (S3FD, face_alignment's default) or ``dlib`` (HOG, no weights).
        detector_threshold: S3FD score above which a box counts as a face.
    """

    name = "face_alignment"

    def __init__(
        self,
        aligned: bool = False,
        device: str = "cpu",
        weights: dict | None = None,
        allow_download: bool = False,
        flip_input: bool = True,
        detector: str = "sfd",
        detector_threshold: float = 0.5,
    ):
        weights, device = _checked(weights, detector, device)
        self.aligned = bool(aligned)
        self.device = device
        self.flip_input = bool(flip_input)
        self.detector = detector
        self.detector_threshold = float(detector_threshold)
        self.allow_download = bool(allow_download)
        need = ["fan"] + (["detector"] if not self.aligned and detector == "sfd" else [])
        self.paths = self._resolve(weights, need)
        self._fa = self._face_alignment(use_sfd="detector" in need)
        self._hog = None

    def _face_alignment(self, use_sfd: bool):
        """face_alignment's ``FaceAlignment`` (FAN-4, 2D) on the resolved files; S3FD only with ``use_sfd``."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            from face_alignment import LandmarksType, NetworkSize

            cls = _face_alignment_class()
        kwargs = dict(
            landmarks_type=LandmarksType.TWO_D,
            network_size=NetworkSize.LARGE,
            device=self.device,
            flip_input=self.flip_input,
            # 'folder' builds no network: palbench passes every box itself (aligned crops, dlib HOG boxes).
            face_detector="sfd" if use_sfd else "folder",
            face_detector_kwargs=(
                {"path_to_detector": _str(self.paths.get("detector")), "filter_threshold": self.detector_threshold}
                if use_sfd
                else {}
            ),
            verbose=False,
        )
        if "compile" in inspect.signature(cls.__mro__[1].__init__).parameters:
            kwargs["compile"] = False
        try:
            return cls(self.paths.get("fan"), **kwargs)
        except _LOAD_ERRORS as e:  # FAN errors are WeightsErrors already: this is the detector
            where = self.paths.get("detector") or default_weight_paths()["detector"]
            raise WeightsError(f"{where}: cannot load the S3FD face detector weights ({_first(e)})") from None

    def _resolve(self, weights: dict, need: list[str]) -> dict[str, Path | None]:
        """Existing weight files for ``need``; ``None`` where face_alignment may download; else WeightsError."""
        defaults = default_weight_paths()
        paths: dict[str, Path | None] = {}
        missing = []
        for key in need:
            if weights.get(key) is not None:
                path = Path(weights[key]).expanduser()
                if not path.is_file():
                    flag = "--fan-weights" if key == "fan" else "--detector-weights"
                    raise WeightsError(f"{path}: face_alignment {key} weights not found (given by {flag})")
                paths[key] = path
            elif defaults[key].is_file():
                paths[key] = defaults[key]
            elif self.allow_download:
                paths[key] = None
            else:
                missing.append(key)
        if missing:
            urls = _urls()
            parts = "; ".join(f"{defaults[k]} (from {urls[k]})" for k in missing)
            home = os.environ.get("TORCH_HOME", "~/.cache/torch")
            raise WeightsError(
                f"face_alignment weights not found: {parts}; copy the file(s) there (TORCH_HOME={home}), "
                "pass --fan-weights/--detector-weights, or allow the download with --allow-download"
            )
        return paths

    def options(self) -> dict:
        return {
            "aligned": self.aligned,
            "device": self.device,
            "flip_input": self.flip_input,
            "detector": None if self.aligned else self.detector,
            "detector_threshold": self.detector_threshold if not self.aligned and self.detector == "sfd" else None,
            "weights": {k: (v.name if v is not None else None) for k, v in self.paths.items()},
        }

    def detect(self, image: np.ndarray) -> tuple[float, float, float, float] | None:
        """Largest face box ``(x0, y0, x1, y1)`` in uint8 RGB ``[H, W, 3]``, or None when there is none."""
        if self.aligned:
            raise ConfigError("face_alignment backend built with aligned=True has no detector")
        image = np.ascontiguousarray(image, dtype=np.uint8)
        if self.detector == "dlib":
            from palbench.landmarks.dlib_backend import hog_detect

            if self._hog is None:
                import dlib

                self._hog = dlib.get_frontal_face_detector()
            return hog_detect(image, None, self._hog)
        import torch

        with torch.no_grad():
            faces = self._fa.face_detector.detect_from_image(image.copy())
        if len(faces) == 0:
            return None
        best = max(faces, key=lambda f: (f[2] - f[0]) * (f[3] - f[1]))
        return tuple(float(v) for v in best[:4])

    def predict(self, image: np.ndarray, box: tuple[float, float, float, float] | None = None) -> np.ndarray | None:
        """68 (x, y) landmarks float32 ``[68, 2]`` of the face in ``box`` (detected when None), or None."""
        image = np.ascontiguousarray(image, dtype=np.uint8)
        box = self.face_box(image, box)
        if box is None:
            return None
        faces = [np.asarray(box, dtype=np.float64)[:4]]  # float64: face_alignment mixes numpy and torch
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No faces were detected")
            preds = self._fa.get_landmarks_from_image(image, detected_faces=faces)
        if not preds:
            return None
        return np.asarray(preds[0], dtype=np.float32)[:, :2]


def _checked(weights: dict | None, detector: str, device: str) -> tuple[dict, str]:
    """``(weights as a dict, device as a str)`` after checking the weight keys, the detector name and that
    the device exists here; each problem is a one-line :class:`ConfigError`."""
    weights = dict(weights or {})
    unknown = sorted(set(weights) - {"fan", "detector"})
    if unknown:
        raise ConfigError(f"face_alignment weights: unknown key(s) {', '.join(unknown)}; expected fan, detector")
    if detector not in DETECTORS:
        raise ConfigError(f"face_alignment detector {detector!r} is not one of {', '.join(DETECTORS)}")
    device = str(device)
    if device.split(":")[0] not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"face_alignment device {device!r}: expected cpu, cuda[:N] or mps")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"face_alignment device {device!r}: CUDA is not available on this machine")
    return weights, device


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)
