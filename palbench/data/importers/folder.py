"""A folder of images plus a CSV → canonical dataset.

The CSV has a path column (relative to ``images_root``, default the CSV's folder, or absolute), a label
column, and optionally a subject column and a split column. Columns named ``subject`` and ``split`` are used
when present, without an option; other names are given with ``subject_col`` / ``split_col``. Without subject
ids the splits are drawn per image, so one person can be in train and test: ``meta.json`` (``subjects``) and
the CLI's warning say so.

Labels: without ``classes``, a class name or synonym (case-insensitive, see
:data:`~palbench.data.importers.common.SYNONYMS`) or an index 0-6 in palbench's class order (surprise, fear,
disgust, happiness, sadness, anger, neutral). Other datasets number their classes differently, so integer codes
from elsewhere need ``classes``: the source's names in the order of its codes, each ``NAME`` or
``NAME=CLASS`` (``-`` drops the rows), see :func:`~palbench.data.importers.common.parse_classes`.

Splits: a split column holds train/val/test (also training, valid, validation, dev, testing). If it has
train and test but no val, val is drawn from train with test's label distribution (paper §IV-B). Without a
split column, train/val/test are drawn stratified by label, subject-disjoint, seeded.

Images are checked to decode and copied unchanged; a relative path keeps its layout under ``images/``. With
``detector`` (the caller's: ``palbench import folder --align BACKEND`` passes a landmark backend of
:mod:`palbench.landmarks`), each photo is instead cropped to its face from its 68 landmarks and stored as PNG,
and the moved landmarks are kept (:mod:`palbench.data.align`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from palbench.config.names import CROP_SIZE, MARGIN
from palbench.data.align import check_crop, write_aligned
from palbench.data.canonical import CLASSES, CanonicalDataset, dataset_writer, read_dataset, write_tables
from palbench.data.importers.common import (
    DROP,
    Skipped,
    check_source,
    check_splits,
    collect,
    common_size,
    copy_checked,
    kept_rows,
    parse_classes,
    read_meta,
    resolve_labels,
    run_images,
    val_from_train,
)
from palbench.data.splits import check_fraction, check_fractions, split_stratified
from palbench.errors import ConfigError, DataError

#: What finds the faces of the photos being aligned: ``dataset -> (landmarks [N, 68, 2] (NaN rows: no face),
#: how they were found (recorded in meta.json))``, e.g. :func:`palbench.face_crops.face_detector`'s.
Detector = Callable[[CanonicalDataset], tuple[np.ndarray, dict]]

SPLIT_NAMES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test",
}  # fmt: skip


def _column(df: pd.DataFrame, name: str | None, option: str, csv: Path) -> pd.Series | None:
    if name is None:
        return None
    if name not in df.columns:
        raise ConfigError(f"{csv}: no column {name!r} ({option}); columns are {', '.join(map(str, df.columns))}")
    return df[name].astype(str).str.strip()


def _blank_row(col: pd.Series, what: str, csv: Path) -> None:
    blank = np.flatnonzero((col == "").to_numpy())
    if blank.size:
        raise DataError(f"{csv}: row {int(blank[0]) + 2}: empty {what}")


def _stored_paths(paths: pd.Series, root: Path) -> tuple[list[Path], list[str]]:
    """Source file and path under ``images/`` for each CSV path."""
    sources, stored = [], []
    root_abs = root.resolve()
    for i, p in enumerate(paths):
        rel = PurePosixPath(p.replace("\\", "/"))
        full = Path(p) if rel.is_absolute() else root / p
        if not rel.is_absolute() and ".." not in rel.parts:
            stored.append(str(rel))
        else:
            try:
                stored.append(full.resolve().relative_to(root_abs).as_posix())
            except ValueError:  # outside the images root: a flat, unique name
                stored.append(f"_external/{i:07d}_{full.name}")
        sources.append(full)
    return sources, stored


def import_folder(
    csv: str | os.PathLike,
    out: str | os.PathLike,
    images_root: str | os.PathLike | None = None,
    path_col: str = "path",
    label_col: str = "label",
    subject_col: str | None = None,
    split_col: str | None = None,
    classes: str | list[str] | None = None,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    val_fraction: float = 0.1,
    seed: int = 0,
    skip_bad: bool = False,
    workers: int = 1,
    detector: Detector | None = None,
    crop_size: int = CROP_SIZE,
    margin: float = MARGIN,
    drop_no_face: bool = False,
) -> dict:
    """Import images listed in ``csv`` into the canonical dataset ``out``; return its meta.json content.

    Args:
        csv: the CSV file (header row required).
        out: the output dataset folder; replaced only when the import succeeds.
        images_root: folder that relative paths start from (default: the CSV's folder).
        path_col, label_col, subject_col, split_col: column names; subject and split are optional and default
            to the columns ``subject`` and ``split`` when the CSV has them (a name given must exist).
        classes: the source's label names in the order of its integer codes (see the module docstring).
        fractions: train/val/test shares when there is no split column.
        val_fraction: val share of train when the split column has train and test but no val.
        seed: seed of every random draw.
        skip_bad: skip (and count in meta.json) images that are missing or do not decode.
        workers: processes that check and copy images.
        detector: finds the landmarks of the imported photos (:data:`Detector`); then every photo is cropped
            to its face, eye line levelled, and the moved landmarks kept as ``provided_landmarks.npy``
            (:mod:`palbench.data.align`). ``None``: images are copied unchanged.
        crop_size, margin, drop_no_face: the crop's side in pixels, its room around the face, and whether
            images without a face are dropped (default: kept whole, counted); see :mod:`palbench.data.align`.
    """
    check_fractions(fractions)  # both, before any work: which one applies depends on the CSV's columns
    check_fraction(val_fraction)
    if detector is not None:
        check_crop(crop_size, margin)
    mapping = parse_classes(classes) if classes is not None else None
    csv, root = _sources(csv, images_root, out)
    header = _header(csv)
    subject_col = subject_col if subject_col is not None else ("subject" if "subject" in header else None)
    split_col = split_col if split_col is not None else ("split" if "split" in header else None)
    columns = {"path": path_col, "label": label_col, "subject": subject_col, "split": split_col}
    table, dropped = _read_table(csv, root, columns, mapping)
    skipped = Skipped()
    with dataset_writer(out) as tmp:
        # Aligning: the photos are imported into tmp/_photos first, then cropped into tmp.
        target = tmp if detector is None else tmp / "_photos"
        (target / "images").mkdir(parents=True, exist_ok=True)
        table, sizes = _copy_images(table, target, workers, skip_bad, skipped, csv)
        splits, how = _splits(table, columns, fractions, val_fraction, seed, str(csv))
        check_splits(splits, str(csv))
        samples = pd.DataFrame({"path": table["path"], "label": table["label"], "split": splits})
        if subject_col is not None:
            samples["subject"] = table["subject"]
        meta = {
            "source": "folder",
            "source_path": str(csv),
            "image_size": common_size(sizes),
            "label_map": _label_map(mapping),
            "dropped": dropped,
            "validation": how,
            "subjects": (f"from the CSV column {subject_col!r}: splits are subject-disjoint" if subject_col else None),
            "seed": seed,
            "skipped": skipped.as_meta(),
        }
        write_tables(target, samples, meta)
        if detector is not None:
            photos = read_dataset(target, load_landmarks=False)
            landmarks, how = detector(photos)
            write_aligned(photos, tmp, landmarks, crop_size, margin, drop_no_face, how)
            shutil.rmtree(target)
    return read_meta(out)


def _header(csv: Path) -> list[str]:
    """The CSV's column names (its first row)."""
    try:
        return [str(c).strip() for c in pd.read_csv(csv, dtype=str, nrows=0).columns]
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{csv}: unreadable CSV ({str(e).splitlines()[0]})") from None


def _sources(
    csv: str | os.PathLike, images_root: str | os.PathLike | None, out: str | os.PathLike
) -> tuple[Path, Path]:
    """``(CSV file, images root)``, both checked to exist and not to be replaced by writing ``out``."""
    csv = check_source(csv, out, "a CSV file listing the images")
    if not csv.is_file():
        raise DataError(f"{csv}: not a file; expected a CSV listing the images")
    root = Path(images_root) if images_root is not None else csv.parent
    check_source(root, out, "the folder the CSV's image paths start from (--images-root)")
    return csv, root


def _copy_images(
    table: pd.DataFrame, tmp: Path, workers: int, skip_bad: bool, skipped: Skipped, csv: Path
) -> tuple[pd.DataFrame, list[tuple[int, int] | None]]:
    """Check and copy each ``src`` to ``tmp/images/<path>``; return the rows whose image was copied and
    ``(height, width)`` per original row (``None`` where skipped)."""
    tasks = [(str(s), str(tmp / "images" / p)) for s, p in zip(table["src"], table["path"])]
    sizes = collect(run_images(copy_checked, tasks, workers, desc="images"), skip_bad, skipped)
    table = kept_rows(table, sizes)
    if len(table) == 0:
        raise DataError(f"{csv}: no readable images left after skipping bad ones")
    return table, sizes


def _label_map(mapping: dict[str, int] | None) -> dict[str, str] | str:
    """meta.json's ``label_map``: source label → class name (``-`` dropped), or ``"built-in names"``."""
    return {k: (CLASSES[v] if v != DROP else "-") for k, v in mapping.items()} if mapping else "built-in names"


def _read_table(
    csv: Path, root: Path, columns: dict[str, str | None], mapping: dict[str, int] | None
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The CSV as one row per kept image: ``row`` (CSV line), ``src``, ``path`` (under ``images/``), ``label``,
    ``subject`` and ``split`` (None without their columns); and the dropped count per label.

    ``columns`` maps ``path``, ``label``, ``subject``, ``split`` to CSV column names (the last two may be
    None). Errors name the CSV and the row.
    """
    try:
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{csv}: unreadable CSV ({str(e).splitlines()[0]})") from None
    if len(df) == 0:
        raise DataError(f"{csv}: no rows; expected one row per image")
    paths = _column(df, columns["path"], "--path-col", csv)
    raw_labels = _column(df, columns["label"], "--label-col", csv)
    subjects = _column(df, columns["subject"], "--subject-col", csv)
    split_raw = _column(df, columns["split"], "--split-col", csv)
    _blank_row(paths, f"path ({columns['path']})", csv)
    if subjects is not None:
        _blank_row(subjects, f"subject ({columns['subject']})", csv)
    labels = resolve_labels(raw_labels, str(csv), mapping)
    split_given = _split_column(split_raw, csv)
    sources, stored = _stored_paths(paths, root)
    table = pd.DataFrame({"row": np.arange(len(df)) + 2, "src": sources, "path": stored, "label": labels})
    table["subject"] = subjects.to_numpy() if subjects is not None else None
    table["split"] = split_given.to_numpy() if split_given is not None else None
    dup = table["path"].duplicated()
    if dup.any():
        r = table[dup].iloc[0]
        raise DataError(f"{csv}: row {r['row']}: image {paths.iloc[r['row'] - 2]!r} is listed twice")
    dropped_mask = table["label"] == DROP
    dropped = {str(k): int(v) for k, v in raw_labels[dropped_mask.to_numpy()].str.lower().value_counts().items()}
    table = table[~dropped_mask].reset_index(drop=True)
    if len(table) == 0:
        raise DataError(f"{csv}: every row was dropped by --classes; nothing to import")
    return table, dropped


def _split_column(split_raw: pd.Series | None, csv: Path) -> pd.Series | None:
    """The split column mapped to ``train | val | test`` (see :data:`SPLIT_NAMES`); None without one."""
    if split_raw is None:
        return None
    split_given = split_raw.str.lower().map(SPLIT_NAMES)
    bad = np.flatnonzero(split_given.isna().to_numpy())
    if bad.size:
        r = int(bad[0])
        raise DataError(f"{csv}: row {r + 2}: split {split_raw.iloc[r]!r} is not one of train, val, test")
    return split_given


def _splits(
    table: pd.DataFrame,
    columns: dict[str, str | None],
    fractions: tuple[float, float, float],
    val_fraction: float,
    seed: int,
    where: str,
) -> tuple[np.ndarray, str]:
    """Object ``[N]`` of ``train | val | test`` and the meta.json line saying how they were made.

    Without a split column: drawn stratified (subject-disjoint with a subject column). With one: the CSV's,
    and when it has train and test but no val, val is drawn from train with test's label distribution.
    """
    subjects = table["subject"].to_numpy() if columns["subject"] is not None else None
    if columns["split"] is None:
        return split_stratified(table["label"].to_numpy(), fractions, seed, subjects)
    splits = table["split"].to_numpy(dtype=object)
    if not (splits == "val").any() and (splits == "train").any() and (splits == "test").any():
        return val_from_train(table, val_fraction, seed, where, subjects)
    return splits, f"from the CSV column {columns['split']!r}"
