"""RAF-DB (basic) → canonical dataset.

Source layout (the official release; ``SRC`` may be the ``basic`` folder or the folder holding it)::

    basic/EmoLabel/list_patition_label.txt   lines "train_00001.jpg 5" / "test_0001.jpg 7" (sic: "patition")
    basic/Image/aligned/train_00001_aligned.jpg

Labels 1-7 are Surprise, Fear, Disgust, Happiness, Sadness, Anger, Neutral: palbench's class order, shifted
by one. The official train/test split comes from the file name prefix; val is drawn from train with the test
label distribution (paper §IV-B). RAF-DB publishes no subject ids. The aligned 100x100 images are copied as
they are; resizing to 224 (paper §IV-B) is the data loader's job.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from palbench.data.canonical import dataset_writer, write_tables
from palbench.data.importers.common import (
    Skipped,
    check_source,
    check_splits,
    collect,
    common_size,
    copy_checked,
    kept_rows,
    read_meta,
    run_images,
    val_from_train,
)
from palbench.data.splits import check_fraction
from palbench.errors import DataError

LABEL_FILE = Path("EmoLabel") / "list_patition_label.txt"
IMAGE_DIR = Path("Image") / "aligned"
_LINE = re.compile(r"^(?P<split>train|test)_(?P<id>\w+)\.(?P<ext>jpe?g|png)$", re.IGNORECASE)


def _find_basic(src: Path) -> Path:
    for cand in (src, src / "basic"):
        if (cand / LABEL_FILE).is_file():
            return cand
    raise DataError(f"{src / LABEL_FILE}: label file not found; expected RAF-DB basic with {LABEL_FILE}")


def read_label_file(path: Path) -> pd.DataFrame:
    """Parse ``list_patition_label.txt`` into ``name, stem, split, label`` (label 0-6). Errors name the line."""
    rows = []
    seen: dict[str, int] = {}
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not (m := _LINE.match(parts[0])):
            raise DataError(f"{path}: line {n}: expected '<train|test>_<id>.jpg <label 1-7>', got {line.strip()!r}")
        if not parts[1].isdigit() or not 1 <= int(parts[1]) <= 7:
            raise DataError(f"{path}: line {n}: label {parts[1]!r} is not a RAF-DB basic label id 1-7")
        if parts[0] in seen:
            raise DataError(f"{path}: line {n}: {parts[0]} is listed again (first on line {seen[parts[0]]})")
        seen[parts[0]] = n
        rows.append((parts[0], parts[0].rsplit(".", 1)[0], m["split"].lower(), int(parts[1]) - 1))
    df = pd.DataFrame(rows, columns=["name", "stem", "split", "label"])
    for split in ("train", "test"):
        if not (df["split"] == split).any():
            raise DataError(f"{path}: no {split} images; expected lines for both train_* and test_* files")
    return df


def import_rafdb(
    src: str | os.PathLike,
    out: str | os.PathLike,
    val_fraction: float = 0.1,
    seed: int = 0,
    skip_bad: bool = False,
    workers: int = 1,
) -> dict:
    """Import RAF-DB basic from ``src`` into the canonical dataset ``out``; return its meta.json content.

    Args:
        src: the RAF-DB ``basic`` folder (or its parent).
        out: the output dataset folder; replaced only when the import succeeds.
        val_fraction: val size as a share of the official train set (drawn with test's label distribution).
        seed: seed of the val draw.
        skip_bad: skip (and count in meta.json) images that are missing or do not decode, instead of failing.
        workers: processes that check and copy images.
    """
    check_fraction(val_fraction)
    src = check_source(src, out, "the RAF-DB basic folder (EmoLabel/, Image/aligned/)")
    base = _find_basic(src)
    table = read_label_file(base / LABEL_FILE)
    image_dir = base / IMAGE_DIR
    if not image_dir.is_dir():
        raise DataError(f"{image_dir}: folder not found; expected the aligned images <name>_aligned.jpg")
    table["path"] = table["stem"] + "_aligned.jpg"
    skipped = Skipped()
    with dataset_writer(out) as tmp:
        tasks = [(str(image_dir / p), str(tmp / "images" / p)) for p in table["path"]]
        sizes = collect(run_images(copy_checked, tasks, workers, desc="RAF-DB"), skip_bad, skipped)
        table = kept_rows(table, sizes)
        splits, how = val_from_train(table, val_fraction, seed, str(base / LABEL_FILE))
        check_splits(splits, str(base / LABEL_FILE))
        samples = pd.DataFrame({"path": table["path"], "label": table["label"], "split": splits})
        meta = {
            "source": "rafdb",
            "source_path": str(src),
            "image_size": common_size(sizes),
            "validation": how,
            "test": "official RAF-DB basic test set (test_* files)",
            "seed": seed,
            "skipped": skipped.as_meta(),
        }
        write_tables(tmp, samples, meta)
    return read_meta(out)
