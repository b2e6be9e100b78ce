"""AffectNet (manually annotated part) → canonical dataset with provided landmarks.

Source layout (the official release; the lists may sit in ``SRC`` or ``SRC/Manually_Annotated_file_lists``,
the images in ``SRC/Manually_Annotated_Images`` or ``SRC/Manually_Annotated/Manually_Annotated_Images``)::

    training.csv, validation.csv   subDirectory_filePath, face_x, face_y, face_width, face_height,
                                   facial_landmarks, expression, valence, arousal
    Manually_Annotated_Images/<subDirectory_filePath>

``expression`` codes 0-6 (Neutral, Happiness, Sadness, Surprise, Fear, Disgust, Anger) map to palbench's
class order; 7 Contempt, 8 None, 9 Uncertain, 10 No-Face are dropped and counted per code in meta.json
(paper §IV-A uses "only the images annotated for the 7 basic emotions"). The official validation set is the
test set (the test set is not public); val is drawn from training with the test label distribution.

Each face box ``[face_x, face_x + face_width) x [face_y, face_y + face_height)`` is clipped to the image,
cropped and resized to ``size x size`` (bilinear, antialiased, one PIL resize with ``box=``; a clipped box
is stretched to the square). ``facial_landmarks`` (``x1;y1;...;x68;y68`` in original-image pixels, pixel
centres at integers) are mapped the same way, exactly at the half pixel, per axis:
``x' = (x - x0 + 0.5) * size / (x1 - x0) - 0.5`` and written to ``provided_landmarks.npy``.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from PIL import Image

from palbench.data.canonical import N_LANDMARKS, dataset_writer, write_tables
from palbench.data.importers.common import (
    BadImage,
    Skipped,
    check_source,
    check_splits,
    collect,
    kept_rows,
    open_rgb,
    read_meta,
    run_images,
    val_from_train,
)
from palbench.data.splits import check_fraction
from palbench.errors import ConfigError, DataError

COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks", "expression")
#: AffectNet expression code → palbench class index (surprise, fear, disgust, happiness, sadness, anger, neutral).
CODE_TO_CLASS = {0: 6, 1: 3, 2: 4, 3: 0, 4: 1, 5: 2, 6: 5}
DROPPED_CODES = {7: "contempt", 8: "none", 9: "uncertain", 10: "no-face"}
JPEG_QUALITY = 95


def _find(candidates: list[Path], what: str, is_dir: bool) -> Path:
    for c in candidates:
        if (c.is_dir() if is_dir else c.is_file()):
            return c
    raise DataError(f"{candidates[0]}: not found; expected {what}")


def _parse_list(path: Path, skip_bad: bool, skipped: Skipped) -> tuple[pd.DataFrame, dict[str, int]]:
    """Read one official list. Returns kept rows (``rel, box[4], landmarks[68,2], label, row``) and the
    dropped count per code. Errors name the file and row (the file line, header = 1)."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: unreadable CSV ({str(e).splitlines()[0]})") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; expected the official AffectNet header")
    code = pd.to_numeric(df["expression"].str.strip(), errors="coerce")
    bad = np.flatnonzero(~(code.notna() & (code % 1 == 0) & code.between(0, 10)).to_numpy())
    if bad.size:
        r = int(bad[0])
        raise DataError(f"{path}: row {r + 2}: expression {df['expression'].iloc[r]!r} is not an AffectNet code 0-10")
    code = code.astype(int).to_numpy()
    dropped = {f"{c} {name}": int((code == c).sum()) for c, name in DROPPED_CODES.items()}
    rows = []
    for r in np.flatnonzero(code <= 6):
        rec = df.iloc[r]
        try:
            rows.append(_parse_row(rec, CODE_TO_CLASS[int(code[r])], int(r) + 2))
        except ValueError as e:
            message = f"{path}: row {int(r) + 2}: {e}"
            if not skip_bad:
                raise DataError(f"{message} (pass --skip-bad to skip such rows)") from None
            skipped.add("malformed row", message)
    return pd.DataFrame(rows, columns=["rel", "box", "landmarks", "label", "row"]), dropped


def _parse_row(rec: pd.Series, label: int, row: int) -> tuple:
    rel = PurePosixPath(rec["subDirectory_filePath"].strip().replace("\\", "/"))
    if not rel.parts or rel.is_absolute() or ".." in rel.parts:
        raise ValueError(f"subDirectory_filePath {str(rel)!r} is not a relative path inside the image folder")
    try:
        box = [float(rec[c]) for c in ("face_x", "face_y", "face_width", "face_height")]
    except ValueError:
        raise ValueError("face_x, face_y, face_width, face_height must be numbers") from None
    if not (np.isfinite(box).all() and box[2] > 0 and box[3] > 0):
        raise ValueError(f"face box {box} must be finite with positive width and height")
    parts = [p for p in rec["facial_landmarks"].strip().split(";") if p.strip()]
    try:
        values = np.array([float(p) for p in parts], dtype=np.float64)
    except ValueError:
        raise ValueError("facial_landmarks must be numbers separated by ';'") from None
    if values.size != 2 * N_LANDMARKS or not np.isfinite(values).all():
        raise ValueError(f"facial_landmarks has {values.size} numbers; expected 136 finite (x1;y1;...;x68;y68)")
    return str(rel), box, values.reshape(N_LANDMARKS, 2), label, row


def crop_face(task: tuple[str, str, list[float], int]) -> tuple[float, float, float, float]:
    """Crop the face box of ``src`` (clipped to the image), resize to ``size``, save as JPEG at ``dst``.

    Returns the clipped box ``(x0, y0, x1, y1)`` in pixel-edge coordinates of the original image.
    """
    src, dst, (x, y, w, h), size = task
    im = open_rgb(Path(src))
    x0, y0, x1, y1 = max(0.0, x), max(0.0, y), min(float(im.width), x + w), min(float(im.height), y + h)
    if x1 - x0 < 1 or y1 - y0 < 1:
        message = f"{src}: face box {[x, y, w, h]} lies outside the {im.width}x{im.height} image"
        raise BadImage(message, "face box outside image")
    crop = im.resize((size, size), Image.Resampling.BILINEAR, box=(x0, y0, x1, y1))
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    crop.save(dst, format="JPEG", quality=JPEG_QUALITY)
    return x0, y0, x1, y1


def transform_landmarks(landmarks: np.ndarray, box: tuple[float, float, float, float], size: int) -> np.ndarray:
    """Map ``[68, 2]`` (x, y) original pixels into the ``size x size`` crop of ``box`` (pixel centres at ints)."""
    x0, y0, x1, y1 = box
    scale = np.array([size / (x1 - x0), size / (y1 - y0)])
    return (landmarks - np.array([x0, y0]) + 0.5) * scale - 0.5


def import_affectnet(
    src: str | os.PathLike,
    out: str | os.PathLike,
    size: int = 224,
    val_fraction: float = 0.1,
    seed: int = 0,
    skip_bad: bool = False,
    workers: int = 1,
) -> dict:
    """Import AffectNet from ``src`` into the canonical dataset ``out``; return its meta.json content.

    Args:
        src: the AffectNet folder (see the module docstring for the accepted layouts).
        out: the output dataset folder; replaced only when the import succeeds.
        size: side of the stored square face crops in pixels.
        val_fraction: val size as a share of the kept training rows (drawn with test's label distribution).
        seed: seed of the val draw.
        skip_bad: skip (and count) unreadable images, face boxes outside the image and malformed rows.
        workers: processes that decode, crop and save images.
    """
    if size < 8:
        raise ConfigError(f"--size: {size} must be at least 8 pixels")
    check_fraction(val_fraction)
    src = check_source(src, out, "the AffectNet folder (training.csv, validation.csv, Manually_Annotated_Images/)")
    train_csv, test_csv, image_root = _find_inputs(src)
    skipped = Skipped()
    table, dropped = _read_lists(train_csv, test_csv, skip_bad, skipped)
    with dataset_writer(out) as tmp:
        tasks = [
            (str(image_root / r), str(tmp / "images" / p), b, size)
            for r, p, b in zip(table["rel"], table["path"], table["box"])
        ]
        boxes = collect(run_images(crop_face, tasks, workers, desc="AffectNet"), skip_bad, skipped)
        table = kept_rows(table, boxes)
        splits, how = val_from_train(table, val_fraction, seed, str(train_csv))
        kept_boxes = [b for b in boxes if b is not None]
        landmarks = np.stack([transform_landmarks(lm, b, size) for lm, b in zip(table["landmarks"], kept_boxes)])
        check_splits(splits, str(train_csv))
        samples = pd.DataFrame({"path": table["path"], "label": table["label"], "split": splits})
        meta = {
            "source": "affectnet",
            "source_path": str(src),
            "image_size": [size, size],
            "crop": f"face box clipped to the image, resized to {size}x{size} (bilinear); provided landmarks "
            "mapped x' = (x - x0 + 0.5) * s - 0.5 per axis",
            "dropped": dropped,
            "validation": how,
            "test": f"official AffectNet validation set ({test_csv.name})",
            "seed": seed,
            "skipped": skipped.as_meta(),
        }
        write_tables(tmp, samples, meta, provided_landmarks=landmarks.astype(np.float32))
    return read_meta(out)


def _find_inputs(src: Path) -> tuple[Path, Path, Path]:
    """``(training.csv, validation.csv, image folder)`` in one of the accepted layouts under ``src``."""
    lists = [src, src / "Manually_Annotated_file_lists"]
    train_csv = _find([d / "training.csv" for d in lists], "the official list training.csv", is_dir=False)
    test_csv = _find([d / "validation.csv" for d in lists], "the official list validation.csv", is_dir=False)
    image_root = _find(
        [src / "Manually_Annotated_Images", src / "Manually_Annotated" / "Manually_Annotated_Images"],
        "the image folder Manually_Annotated_Images/",
        is_dir=True,
    )
    return train_csv, test_csv, image_root


def _read_lists(train_csv: Path, test_csv: Path, skip_bad: bool, skipped: Skipped) -> tuple[pd.DataFrame, dict]:
    """Both official lists as one table (``rel, box, landmarks, label, row, split, csv, path``; ``path`` is
    the stored crop's, ``.jpg``) and the dropped counts ``{list file name: {code name: n}}``."""
    train, dropped_train = _parse_list(train_csv, skip_bad, skipped)
    test, dropped_test = _parse_list(test_csv, skip_bad, skipped)
    table = pd.concat([train.assign(split="train", csv=train_csv), test.assign(split="test", csv=test_csv)])
    table = table.reset_index(drop=True)
    table["path"] = [str(PurePosixPath(r).with_suffix(".jpg")) for r in table["rel"]]
    dup = table["path"].duplicated()
    if dup.any():
        r = table[dup].iloc[0]
        raise DataError(f"{r['csv']}: row {r['row']}: image {r['rel']} is listed twice (stored crops would collide)")
    for split, csv in (("train", train_csv), ("test", test_csv)):
        if not (table["split"] == split).any():
            raise DataError(f"{csv}: no rows with an expression code 0-6; the {split} split would be empty")
    return table, {train_csv.name: dropped_train, test_csv.name: dropped_test}
