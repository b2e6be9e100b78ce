"""The ``truth`` backend: the exact landmarks ``palbench synth`` drew for its built-in benchmark.

``palbench synth`` renders each face from 68 known points and writes them as ``provided_landmarks.npy``;
this backend copies them (after the same checks as the ``file`` backend), so the synthetic benchmark
measures PAL without detector error. Landmark noise is studied separately (``priors.jitter_landmarks``).
"""

from __future__ import annotations

import numpy as np

from palbench.data.canonical import CanonicalDataset
from palbench.errors import DataError
from palbench.landmarks.base import LandmarkBackend
from palbench.landmarks.file import check_provided, read_landmark_file


class TruthBackend(LandmarkBackend):
    """Copies ``<dataset>/provided_landmarks.npy`` written by ``palbench synth``."""

    name = "truth"

    def dataset_landmarks(self, dataset: CanonicalDataset, progress: bool | None = None) -> np.ndarray:
        path = dataset.root / "provided_landmarks.npy"
        if not path.is_file():
            raise DataError(
                f"{path}: not found; the truth landmark backend needs a dataset built by `palbench synth` "
                "(use --backend dlib, face_alignment or file for other datasets)"
            )
        return check_provided(read_landmark_file(path), dataset, str(path)).astype(np.float32)
