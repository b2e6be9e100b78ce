"""Facial landmarks for the PAL prior (paper §III-C, eq. 7-8): four backends behind one interface.

The stage (:func:`compute_landmarks`, ``palbench landmarks``) reads a canonical dataset folder and writes
into it, atomically:

- ``landmarks.npy``: float32 ``[N, 68, 2]``, row i ↔ ``samples.csv`` row i, (x, y) pixel coordinates of
  the stored image with pixel centres at integers, iBUG-68 order; a whole row is NaN where no face was
  found (downstream trains such samples with cross-entropy only, PAL masked);
- ``landmarks.json``: backend, options, ``n_missed``, ``missed_rows`` (the first few), per-split counts, and
  the quality checks' ``qa`` summary and ``warnings`` (one line each; the CLI prints them);
- ``sheet.png``, ``misses.csv``, ``qa.csv``: a contact sheet of a sample with the points drawn, every missed
  row, per-image spread and points outside the frame (:mod:`palbench.landmarks.qa`).

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

The interface and the helpers the backends share live in :mod:`palbench.landmarks.base` (re-exported here);
the backends import from there, and this module imports them only when one is asked for (:data:`BACKENDS`).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path

import numpy as np

from palbench.data.canonical import SPLITS, CanonicalDataset, read_dataset, save_npy, validate_landmarks
from palbench.errors import ConfigError
from palbench.io import write_json
from palbench.landmarks.base import LandmarkBackend, check_points, image_size, load_image
from palbench.landmarks.qa import QA_FILES, check_landmarks

#: How many missed rows ``landmarks.json`` lists.
MAX_LISTED_MISSES = 20


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
        The ``landmarks.json`` content (with the ``qa`` summary and ``warnings`` of
        :func:`palbench.landmarks.qa.check_landmarks`).
    """
    dataset = read_dataset(dataset_root, load_landmarks=False)
    name = resolve_backend_name(backend, dataset.root)
    impl = get_backend(name, **_backend_options(name, backend_options, aligned, weights, source, device))
    folder = dataset.root if out is None else Path(out)
    where = str(folder / "landmarks.npy")
    landmarks = validate_landmarks(impl.dataset_landmarks(dataset, progress=progress), len(dataset), where)
    info = {"backend": name, "options": {"requested": backend, **impl.options()}, **_miss_counts(landmarks, dataset)}
    # An old landmarks.json (or check file) must never describe the new landmarks.npy: remove them first,
    # write landmarks.json last.
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("landmarks.json", *QA_FILES):
        (folder / stale).unlink(missing_ok=True)
    save_npy(folder / "landmarks.npy", landmarks)
    info.update(check_landmarks(dataset, landmarks, folder, name, impl.options()))
    write_json(folder / "landmarks.json", info)
    return info


def _backend_options(
    name: str, extra: dict, aligned: bool, weights: dict | None, source: str | Path | None, device: str
) -> dict:
    """The options of backend ``name`` from :func:`compute_landmarks`' arguments; an argument that does not
    apply to ``name`` (``source``, ``weights``) raises :class:`ConfigError`."""
    options = dict(extra)
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
    return options


def _miss_counts(landmarks: np.ndarray, dataset: CanonicalDataset) -> dict:
    """``n_samples``, ``n_missed``, the first missed rows and per-split counts of ``landmarks`` ``[N, 68, 2]``
    (a missed row is all NaN)."""
    missed = np.isnan(landmarks).all(axis=(1, 2))
    splits = dataset.samples["split"].to_numpy()
    return {
        "n_samples": len(dataset),
        "n_missed": int(missed.sum()),
        "missed_rows": [int(i) for i in np.flatnonzero(missed)[:MAX_LISTED_MISSES]],
        "counts": {s: {"n": int((splits == s).sum()), "missed": int((missed & (splits == s)).sum())} for s in SPLITS},
    }

__all__ = [
    "BACKENDS",
    "LandmarkBackend",
    "check_points",
    "compute_landmarks",
    "get_backend",
    "image_size",
    "load_image",
    "resolve_backend_name",
]
