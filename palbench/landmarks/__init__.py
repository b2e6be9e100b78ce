"""Facial landmarks for the PAL prior (paper §III-C, eq. 7-8): four backends behind one interface.

The stage (:func:`compute_landmarks`, ``palbench landmarks``) reads a canonical dataset folder and writes
into it, atomically:

- ``landmarks.npy``: float32 ``[N, 68, 2]``, row i ↔ ``samples.csv`` row i, (x, y) pixel coordinates of
  the stored image with pixel centres at integers, iBUG-68 order; a whole row is NaN where no face was
  found (downstream trains such samples with cross-entropy only, PAL masked);
- ``landmarks.json``: backend, options, ``n_missed``, ``missed_rows`` (the first few), per-split counts.

Backends (:data:`BACKENDS`, :func:`get_backend`):

- ``truth``: the exact landmarks ``palbench synth`` drew (``provided_landmarks.npy``);
- ``file``: provided landmarks (AffectNet's importer) or a user ``.npy`` / ``.csv`` (``source=``);
- ``dlib``: dlib's HOG detector + 68-point shape predictor (from ``face_recognition_models``);
- ``face_alignment``: FAN (Bulat & Tzimiropoulos 2017) from the ``face_alignment`` package, the detector the
  paper's authors' code base uses; weights come from the torch hub cache and are never downloaded unless
  asked for.

A per-image backend implements ``predict(image [H,W,3] uint8 RGB, box (x0,y0,x1,y1) | None) -> [68,2] | None``.
``box`` corners are pixel coordinates (inclusive, pixel centres at integers); ``None`` means "find the face"
(or, with ``aligned=True``, "the face fills the image": the full-image box is used, no detector runs).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from palbench.data.canonical import (
    N_LANDMARKS,
    SPLITS,
    CanonicalDataset,
    read_dataset,
    save_npy,
    validate_landmarks,
)
from palbench.errors import ConfigError, DataError
from palbench.io import write_json

#: How many missed rows ``landmarks.json`` lists.
MAX_LISTED_MISSES = 20


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


def _lazy(module: str, cls: str) -> Callable[..., LandmarkBackend]:
    """A factory importing ``palbench.landmarks.<module>`` only when used (dlib, torch are slow to import)."""

    def make(**options) -> LandmarkBackend:
        backend_class = getattr(importlib.import_module(f"palbench.landmarks.{module}"), cls)
        accepted = [p for p in inspect.signature(backend_class).parameters if p != "self"]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise ConfigError(
                f"landmark backend {backend_class.name!r}: unknown option(s) {', '.join(unknown)}; "
                f"expected {', '.join(accepted) or 'none'}"
            )
        return backend_class(**options)

    make.__name__ = cls
    return make


#: name → factory(**options). ``auto`` (CLI default) is resolved by :func:`resolve_backend_name`.
BACKENDS: dict[str, Callable[..., LandmarkBackend]] = {
    "truth": _lazy("truth", "TruthBackend"),
    "file": _lazy("file", "FileBackend"),
    "dlib": _lazy("dlib_backend", "DlibBackend"),
    "face_alignment": _lazy("fan", "FanBackend"),
}


def get_backend(name: str, **options) -> LandmarkBackend:
    """Build backend ``name`` with ``options``; an unknown name or option raises :class:`ConfigError`."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown landmark backend {name!r}; expected one of {', '.join(BACKENDS)}")
    return BACKENDS[name](**options)


def resolve_backend_name(name: str, root: Path) -> str:
    """``auto``: ``truth`` for a synth dataset, ``file`` where provided landmarks exist, else ``dlib``."""
    if name != "auto":
        return name
    if (root / "provided_landmarks.npy").is_file():
        meta = root / "meta.json"
        source = ""
        if meta.is_file():
            import json

            try:
                source = str(json.loads(meta.read_text()).get("source", ""))
            except (json.JSONDecodeError, AttributeError):
                source = ""
        return "truth" if "synth" in source.lower() else "file"
    return "dlib"


def load_image(path: Path) -> np.ndarray:
    """The stored image as uint8 RGB ``[H, W, 3]`` (no EXIF rotation: coordinates are of the stored pixels)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: image not found (listed in samples.csv)") from None
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path}: unreadable image ({e})") from None


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of a stored image, from its header only."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
    except FileNotFoundError:
        raise DataError(f"{path}: image not found (listed in samples.csv)") from None
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path}: unreadable image ({e})") from None
    return h, w


def check_points(points: np.ndarray, where: str) -> np.ndarray:
    """A backend's output as float32 ``[68, 2]``; anything else is an internal error naming ``where``."""
    points = np.asarray(points, dtype=np.float32)
    if points.shape != (N_LANDMARKS, 2) or not np.isfinite(points).all():
        raise DataError(f"{where}: returned landmarks of shape {points.shape} (or non-finite); expected (68, 2)")
    return points


def compute_landmarks(
    dataset_root: str | Path,
    backend: str,
    *,
    aligned: bool = False,
    weights: dict | None = None,
    source: str | Path | None = None,
    device: str = "cpu",
    progress: bool | None = None,
    out: str | Path | None = None,
    **backend_options,
) -> dict:
    """Compute the landmarks of every sample and write ``landmarks.npy`` + ``landmarks.json`` into the dataset
    (or into ``out``: the DVC pipeline keeps them in ``landmarks/<name>/``, a folder its landmarks stage owns).

    Args:
        dataset_root: canonical dataset folder.
        backend: ``truth | file | dlib | face_alignment`` (or ``auto``, see :func:`resolve_backend_name`).
        aligned: images are aligned face crops; use the full-image box, no detector (dlib, face_alignment).
        weights: face_alignment weight files ``{"fan": path, "detector": path}`` (default: torch hub cache).
        source: the file backend's ``.npy`` [N,68,2] or ``.csv`` (136 columns x0,y0,...,x67,y67).
        device: torch device for face_alignment.
        progress: tqdm bar over images (``None``: only on a terminal).
        **backend_options: further backend options (e.g. ``allow_download=True`` for face_alignment).

    Returns:
        The ``landmarks.json`` content.
    """
    dataset = read_dataset(dataset_root, load_landmarks=False)
    root = dataset.root
    name = resolve_backend_name(backend, root)
    options = dict(backend_options)
    if source is not None:
        if name != "file":
            raise ConfigError(f"--source applies to the file landmark backend, not {name!r}")
        options["source"] = source
    if weights:
        if name != "face_alignment":
            raise ConfigError(f"weight files apply to the face_alignment landmark backend, not {name!r}")
        options["weights"] = weights
    if name in ("dlib", "face_alignment"):
        options["aligned"] = aligned
    if name == "face_alignment":
        options["device"] = device
    impl = get_backend(name, **options)
    folder = root if out is None else Path(out)
    where = str(folder / "landmarks.npy")
    landmarks = validate_landmarks(impl.dataset_landmarks(dataset, progress=progress), len(dataset), where)

    missed = np.isnan(landmarks).all(axis=(1, 2))
    splits = dataset.samples["split"].to_numpy()
    info = {
        "backend": name,
        "options": {"requested": backend, **impl.options()},
        "n_samples": len(dataset),
        "n_missed": int(missed.sum()),
        "missed_rows": [int(i) for i in np.flatnonzero(missed)[:MAX_LISTED_MISSES]],
        "counts": {s: {"n": int((splits == s).sum()), "missed": int((missed & (splits == s)).sum())} for s in SPLITS},
    }
    # An old landmarks.json must never describe the new landmarks.npy: remove it first, write it last.
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "landmarks.json").unlink(missing_ok=True)
    save_npy(folder / "landmarks.npy", landmarks)
    write_json(folder / "landmarks.json", info)
    return info


__all__ = [
    "BACKENDS",
    "LandmarkBackend",
    "compute_landmarks",
    "get_backend",
    "image_size",
    "load_image",
    "resolve_backend_name",
]
