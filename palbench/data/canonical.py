"""The canonical dataset on disk. Every importer writes it; training reads only it.

Layout (docs/data-path.md)::

    data/<name>/images/...               image files (any relative layout)
    data/<name>/samples.csv              path,label,split[,subject]
    data/<name>/meta.json                classes, source, image size, counts, how val was drawn
    data/<name>/provided_landmarks.npy   float32 [N,68,2], only where the source has landmarks (synth, AffectNet)
    data/<name>/landmarks.npy            float32 [N,68,2], written by the landmarks stage; NaN rows = no face
    data/<name>/landmarks.json           landmark backend, miss count

Deviation from the original design, for a reason: the landmark backend and miss count live in ``landmarks.json``,
written by the landmarks stage, not in ``meta.json``: a DVC stage may not write a file another stage owns
("nothing downstream writes upstream"). :func:`read_dataset` merges both into ``meta``.

Landmarks are (x, y) pixel coordinates of the stored image, pixel centres at integers, iBUG-68 order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from palbench.config.names import landmark_set_path
from palbench.errors import DataError
from palbench.io import atomic_dir, atomic_path, write_json

#: Class order everywhere (RAF-DB's).
CLASSES: tuple[str, ...] = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
SPLITS: tuple[str, ...] = ("train", "val", "test")
N_LANDMARKS = 68
SAMPLES_COLUMNS = ("path", "label", "split")


@dataclass
class CanonicalDataset:
    """A canonical dataset read from disk.

    Attributes:
        root: the dataset folder.
        samples: one row per image with columns ``path, label, split`` (and ``subject`` when known).
        meta: ``meta.json`` merged with ``landmarks.json`` when present.
        landmarks: float32 ``[N, 68, 2]`` or ``None`` before the landmarks stage ran.
        decoded: images already decoded in this process (row -> uint8 ``[3, H, W]`` tensor), filled by
            :class:`palbench.data.dataset.FaceDataset` for small datasets, so that the epochs and the seeds
            trained in one process decode each file once.
    """

    root: Path
    samples: pd.DataFrame
    meta: dict
    landmarks: np.ndarray | None
    decoded: dict = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.samples)

    def image_path(self, i: int) -> Path:
        return self.root / "images" / self.samples.at[i, "path"]

    def split_indices(self, split: str) -> np.ndarray:
        """Row indices of ``split`` (train|val|test), as int64 ``[n]``."""
        if split not in SPLITS:
            raise DataError(f"{self.root}: unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        return np.flatnonzero(self.samples["split"].to_numpy() == split)


def validate_samples(samples: pd.DataFrame, where: str, n_classes: int = len(CLASSES)) -> pd.DataFrame:
    """Check the samples table; return it with ``label`` as int64. Errors name ``where`` and the row."""
    missing = [c for c in SAMPLES_COLUMNS if c not in samples.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {', '.join(missing)}; expected path,label,split[,subject]")
    if len(samples) == 0:
        raise DataError(f"{where}: no samples")
    labels = pd.to_numeric(samples["label"], errors="coerce")
    bad = np.flatnonzero(~(labels.notna() & (labels % 1 == 0) & (labels >= 0) & (labels < n_classes)).to_numpy())
    if bad.size:
        r = int(bad[0])
        raise DataError(
            f"{where}: row {r + 2}: label {samples['label'].iloc[r]!r} is not an integer in 0..{n_classes - 1}"
        )
    bad = np.flatnonzero(~samples["split"].isin(SPLITS).to_numpy())
    if bad.size:
        r = int(bad[0])
        raise DataError(f"{where}: row {r + 2}: split {samples['split'].iloc[r]!r} is not one of train|val|test")
    out = samples.reset_index(drop=True).copy()
    out["label"] = labels.astype("int64").to_numpy()
    return out


def validate_landmarks(landmarks: np.ndarray, n_rows: int, where: str) -> np.ndarray:
    """Check a landmark array is ``[n_rows, 68, 2]`` with finite or whole-row-NaN entries; return float32."""
    landmarks = np.asarray(landmarks)
    if landmarks.shape != (n_rows, N_LANDMARKS, 2):
        raise DataError(f"{where}: landmarks have shape {landmarks.shape}; expected ({n_rows}, 68, 2)")
    nan = np.isnan(landmarks)
    partial = np.flatnonzero(nan.any(axis=(1, 2)) & ~nan.all(axis=(1, 2)))
    if partial.size:
        raise DataError(f"{where}: row {int(partial[0])}: some but not all landmark coordinates are NaN")
    if np.isinf(landmarks).any():
        r = int(np.flatnonzero(np.isinf(landmarks).any(axis=(1, 2)))[0])
        raise DataError(f"{where}: row {r}: infinite landmark coordinates")
    return landmarks.astype(np.float32)


@contextmanager
def dataset_writer(root: str | Path) -> Iterator[Path]:
    """Build a canonical dataset in a temporary folder that becomes ``root`` only on success.

    Write images under ``<tmp>/images/`` and call :func:`write_tables` before the block ends.
    """
    with atomic_dir(root) as tmp:
        (tmp / "images").mkdir()
        yield tmp
        if not (tmp / "samples.csv").exists():
            raise DataError(f"{root}: internal error: the dataset was built without samples.csv")


def write_tables(
    folder: str | Path,
    samples: pd.DataFrame,
    meta: dict,
    provided_landmarks: np.ndarray | None = None,
) -> None:
    """Validate and write ``samples.csv``, ``meta.json`` (and ``provided_landmarks.npy``) into ``folder``.

    ``meta`` gets ``classes`` and per-split ``counts`` filled in from ``samples``.
    """
    folder = Path(folder)
    samples = validate_samples(samples, str(folder / "samples.csv"))
    cols = list(SAMPLES_COLUMNS) + (["subject"] if "subject" in samples.columns else [])
    with atomic_path(folder / "samples.csv") as tmp:
        samples[cols].to_csv(tmp, index=False)
    if provided_landmarks is not None:
        lm = validate_landmarks(provided_landmarks, len(samples), str(folder / "provided_landmarks.npy"))
        save_npy(folder / "provided_landmarks.npy", lm)
    meta = dict(meta)
    meta["classes"] = list(CLASSES)
    meta["counts"] = {
        s: {CLASSES[k]: int(((samples["split"] == s) & (samples["label"] == k)).sum()) for k in range(len(CLASSES))}
        for s in SPLITS
    }
    meta["n_samples"] = len(samples)
    write_json(folder / "meta.json", meta)


def save_npy(path: str | Path, array: np.ndarray) -> None:
    """``np.save`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def read_dataset(
    root: str | Path, require_landmarks: bool = False, load_landmarks: bool = True, landmarks: str | Path | None = None
) -> CanonicalDataset:
    """Read and validate a canonical dataset. Raises :class:`DataError` naming the file and row.

    ``load_landmarks=False`` skips ``landmarks.npy`` (and ``landmarks.json``): the landmarks stage, which
    replaces them, must not fail on a stale file (e.g. from before ``samples.csv`` changed).
    ``landmarks``: a landmark file ``[N, 68, 2]`` kept outside the dataset (the DVC pipeline's
    ``landmarks/<name>/landmarks.npy``, so the dataset stage owns its whole folder); a ``landmarks.json``
    beside it is merged into ``meta`` as for the in-dataset file.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found; create it with `palbench synth` or `palbench import`")
    csv = root / "samples.csv"
    if not csv.is_file():
        raise DataError(f"{csv}: not found; expected the canonical samples table path,label,split[,subject]")
    try:
        samples = pd.read_csv(csv, dtype={"path": str, "split": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{csv}: unreadable CSV ({str(e).splitlines()[0]})") from None
    samples = validate_samples(samples, str(csv))
    meta_path = root / "meta.json"
    meta = _read_json(meta_path) if meta_path.is_file() else {}
    explicit = landmarks is not None
    lm_path = Path(landmarks) if explicit else root / "landmarks.npy"
    landmarks = None
    if explicit and not lm_path.is_file():
        raise DataError(f"{lm_path}: landmark file not found; expected a .npy [N,68,2] from `palbench landmarks`")
    if lm_path.is_file() and load_landmarks:
        landmarks = _read_landmarks(lm_path, len(samples))
        if (lm_path.parent / "landmarks.json").is_file():
            meta = {**meta, **_read_json(lm_path.parent / "landmarks.json")}
    elif require_landmarks:
        raise DataError(f"{lm_path}: not found; run `palbench landmarks {root}` first")
    return CanonicalDataset(root=root, samples=samples, meta=meta, landmarks=landmarks)


def load_landmark_set(data: CanonicalDataset, path: str | Path | None, landmark_noise: float = 0.0) -> np.ndarray | None:
    """A landmark set ``[N, 68, 2]`` for ``data`` (validated).

    Args:
        path: a ``.npy`` file; a folder of the priors stage (its set of ``landmark_noise``,
            :func:`palbench.config.landmark_set_path`); ``None``: the dataset's own ``landmarks.npy``.
    """
    path = landmark_set_path(path, landmark_noise)
    if path is None:
        return data.landmarks
    if not path.is_file():
        raise DataError(f"{path}: landmark set not found (run `palbench landmarks` / `palbench priors` first)")
    return _read_landmarks(path, len(data))


def _read_landmarks(path: Path, n_rows: int) -> np.ndarray:
    """Load and validate a landmark file ``[n_rows, 68, 2]``; an unreadable file is a one-line DataError."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise DataError(f"{path}: unreadable .npy ({str(e).splitlines()[0]})") from None
    return validate_landmarks(array, n_rows, str(path))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON ({e})") from None
