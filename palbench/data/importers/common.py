"""Shared pieces of the importers: label names, image checks and copies, progress, split checks, meta.

Every importer parses and checks its annotation files first (so most errors come before any image is
touched), then writes images into a :func:`~palbench.data.canonical.dataset_writer` temp folder, which
becomes the output folder only when everything succeeded.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from palbench.data.canonical import CLASSES, SPLITS
from palbench.data.images import to_rgb
from palbench.data.splits import draw_validation
from palbench.errors import ConfigError, DataError

#: Label names accepted without ``--classes`` (case-insensitive), each mapped to a palbench class index.
#: Only unambiguous synonyms of the seven classes. Deliberately absent: "calm" (RAVDESS keeps calm and neutral
#: apart), "contempt" (not one of the seven), and two/three-letter codes (KDEF's AF/AN/..., JAFFE's HAP/...),
#: which differ between datasets; map those explicitly with ``--classes``.
SYNONYMS: dict[str, int] = {
    **{name: i for i, name in enumerate(CLASSES)},
    "surprised": 0,
    "fearful": 1, "afraid": 1, "scared": 1,
    "disgusted": 2,
    "happy": 3, "joy": 3,
    "sad": 4,
    "angry": 5,
}
#: Class index of a dropped label (``NAME=-`` in ``--classes``).
DROP = -1


def known_names() -> str:
    return ", ".join(SYNONYMS)


def resolve_class_name(name: str, where: str) -> int:
    """A palbench class index for a class name or synonym (case-insensitive)."""
    key = str(name).strip().lower()
    if key not in SYNONYMS:
        raise DataError(f"{where}: unknown class name {name!r}; known: {known_names()}")
    return SYNONYMS[key]


def parse_classes(spec: str | Sequence[str]) -> dict[str, int]:
    """Parse ``--classes``: the source's label names, in the order of its integer codes.

    Each entry is ``NAME`` (itself a class name or synonym) or ``NAME=CLASS`` (CLASS a class name, synonym or
    index 0-6; ``-`` drops those rows, counted in meta.json). A CSV label then matches a NAME
    case-insensitively, or is the 0-based position of a NAME in the list, so ``angry,disgust,fear,happy,sad,
    surprise,neutral`` reads FER2013's integer codes. When some NAME is itself a number (``1=surprise,
    2=fear,...`` for RAF-DB-style codes), numbers match NAMEs only and positions are not used.
    Returns ``{lower-case name or position: class index or DROP}``; only these labels are then accepted.
    """
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec)]
    if not items or any(not s for s in items):
        raise ConfigError(f"--classes: {spec!r} must be a comma-separated list of NAME or NAME=CLASS")
    mapping: dict[str, int] = {}
    for item in items:
        name, _, target = item.partition("=")
        name, target = name.strip().lower(), (target.strip() or name.strip())
        if target == "-":
            idx = DROP
        elif target.isdigit() and int(target) < len(CLASSES):
            idx = int(target)
        elif target.lower() in SYNONYMS:
            idx = SYNONYMS[target.lower()]
        else:
            raise ConfigError(
                f"--classes: {item!r}: {target!r} is not a palbench class; write NAME=CLASS with CLASS one of "
                f"{', '.join(CLASSES)}, 0-6 or - (drop)"
            )
        if not name or name in mapping:
            raise ConfigError(f"--classes: name {name!r} is empty or given twice")
        mapping[name] = idx
    if not any(name.isdigit() for name in mapping):
        mapping.update({str(pos): idx for pos, idx in enumerate(list(mapping.values()))})
    return mapping


def resolve_labels(values: pd.Series, where: str, classes: dict[str, int] | None) -> np.ndarray:
    """Map a label column to class indices (``DROP`` for dropped rows). Errors name the first bad row.

    Without ``classes``: integers are palbench indices 0-6, names go through :data:`SYNONYMS`. With
    ``classes`` (from :func:`parse_classes`): only its names and positions are accepted.
    """
    if classes is None:
        table = {**SYNONYMS, **{str(i): i for i in range(len(CLASSES))}}
        known = f"{known_names()} or an index 0-{len(CLASSES) - 1} (or pass --classes to map other names)"
    else:
        table = classes
        known = ", ".join(table) + " (from --classes)"
    keys = values.astype(str).str.strip().str.lower()
    keys = keys.str.replace(r"^(\d+)\.0$", r"\1", regex=True)  # an int column with a blank reads as float
    out = keys.map(table)
    bad = np.flatnonzero(out.isna().to_numpy())
    if bad.size:
        r = int(bad[0])
        raise DataError(f"{where}: row {r + 2}: unknown label {values.iloc[r]!r}; known: {known}")
    return out.to_numpy(dtype=np.int64)


def check_source(src: str | os.PathLike, out: str | os.PathLike, what: str) -> Path:
    """The source folder or file, checked to exist and not to be replaced by writing ``out``."""
    src = Path(src)
    if not src.exists():
        raise DataError(f"{src}: not found; expected {what}")
    s, o = src.resolve(), Path(out).resolve()
    if s == o or o in s.parents:
        raise ConfigError(f"{out}: the output folder would replace the source {src}; choose another OUT")
    return src


def check_splits(splits: np.ndarray, where: str) -> None:
    """Every split must hold at least one image."""
    for s in ("train", "test", "val"):  # test before val: a missing test split is the root cause
        if not (splits == s).any():
            raise DataError(f"{where}: the {s} split is empty; expected images in each of train, val, test")


@dataclass
class Skipped:
    """Bad samples skipped with ``skip_bad``: counted per reason, first few named (for meta.json)."""

    reasons: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def add(self, reason: str, message: str) -> None:
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        if len(self.examples) < 20:
            self.examples.append(message)

    @property
    def count(self) -> int:
        return sum(self.reasons.values())

    def as_meta(self) -> dict:
        return {"count": self.count, "by_reason": dict(self.reasons), "examples": list(self.examples)}


class BadImage(Exception):
    """An image that cannot be used: ``args`` = (one-line message, reason counted in meta.json)."""

    def __init__(self, message: str, reason: str = "unreadable image"):
        super().__init__(message, reason)
        self.message, self.reason = message, reason

    def __str__(self) -> str:
        return self.message


def open_rgb(path: Path) -> Image.Image:
    """Open and fully decode an image as RGB; :class:`BadImage` names the file when it cannot."""
    try:
        with Image.open(path) as im:
            im.load()
            return to_rgb(im)
    except FileNotFoundError:
        raise BadImage(f"{path}: image not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise BadImage(f"{path}: unreadable image ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def copy_checked(task: tuple[str, str]) -> tuple[int, int]:
    """Check ``src`` decodes, copy its bytes to ``dst``; return the image's ``(height, width)``."""
    src, dst = Path(task[0]), Path(task[1])
    im = open_rgb(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return im.height, im.width


def _call(fn: Callable, task):
    try:
        return True, fn(task)
    except BadImage as e:
        return False, (e.reason, e.message)


def run_images(fn: Callable, tasks: Sequence, workers: int = 1, desc: str = "images") -> Iterator[tuple[bool, object]]:
    """Apply ``fn`` to each task (in ``workers`` processes when > 1), in order, with a tqdm bar.

    Yields ``(True, result)`` or ``(False, (reason, message))`` for a :class:`BadImage`. The bar is shown only on a
    terminal (``disable=None``), so logs of pipeline runs and captured test output stay clean.
    """
    if workers < 1:
        raise ConfigError(f"--workers: {workers} must be >= 1")
    bar = dict(total=len(tasks), desc=desc, unit="img", disable=None, file=sys.stderr)
    if workers == 1:
        yield from tqdm((_call(fn, t) for t in tasks), **bar)
        return
    pool = ProcessPoolExecutor(workers)
    try:
        chunk = max(1, min(256, len(tasks) // (8 * workers)))
        yield from tqdm(pool.map(_call, [fn] * len(tasks), tasks, chunksize=chunk), **bar)
    finally:  # on an early close: drop queued work and wait for running tasks, so none writes afterwards
        pool.shutdown(wait=True, cancel_futures=True)


def collect(results: Iterable[tuple[bool, object]], skip_bad: bool, skipped: Skipped) -> list:
    """Results in order with ``None`` for skipped images; without ``skip_bad`` the first bad one raises.

    ``results`` (a :func:`run_images` generator) is closed before this returns or raises, so no worker still
    writes into the temporary dataset folder while it is being removed.
    """
    out = []
    try:
        for ok, value in results:
            if not ok:
                reason, message = value
                if not skip_bad:
                    raise DataError(f"{message} (pass --skip-bad to skip such images)")
                skipped.add(reason, message)
                out.append(None)
            else:
                out.append(value)
    finally:
        if hasattr(results, "close"):
            results.close()
    return out


def kept_rows(table: pd.DataFrame, results: Sequence[object | None]) -> pd.DataFrame:
    """The rows of ``table`` whose image result (from :func:`collect`, row-aligned) is not ``None``, re-indexed."""
    return table[np.array([r is not None for r in results], dtype=bool)].reset_index(drop=True)


def val_from_train(
    table: pd.DataFrame, val_fraction: float, seed: int, where: str, subjects: np.ndarray | None = None
) -> tuple[np.ndarray, str]:
    """Draw val from the train rows with the test rows' label distribution (paper §IV-B).

    Args:
        table: ``split`` (``"train"`` or ``"test"``) and ``label`` (int) per row, ``[N]`` each.
        val_fraction, seed: see :func:`~palbench.data.splits.draw_validation`.
        where: the file named when train or test has no row left after skipping bad images.
        subjects: optional ``[N]`` subject ids; whole subjects go to val.

    Returns:
        ``(splits, description)``: object ``[N]`` of ``"train" | "val" | "test"``, and the meta.json line.
    """
    splits = table["split"].to_numpy(dtype=object)
    is_train = splits == "train"
    if not is_train.any() or is_train.all():
        raise DataError(f"{where}: after skipping bad images the train or test split is empty")
    val, how = draw_validation(
        table.loc[is_train, "label"].to_numpy(),
        table.loc[~is_train, "label"].to_numpy(),
        val_fraction,
        seed,
        None if subjects is None else subjects[is_train],
    )
    splits[np.flatnonzero(is_train)[val]] = "val"
    return splits, how


def common_size(sizes: Iterable[tuple[int, int] | None]) -> list[int] | None:
    """``[H, W]`` when every image has the same size, else ``None``."""
    found = {tuple(s) for s in sizes if s is not None}
    return list(found.pop()) if len(found) == 1 else None


def read_meta(out: str | os.PathLike) -> dict:
    """The ``meta.json`` just written (with the classes and counts :func:`write_tables` filled in)."""
    return json.loads((Path(out) / "meta.json").read_text())


def summary(out: str | os.PathLike, meta: dict) -> tuple[str, list[str]]:
    """One line saying what was written, and warning lines for skipped or dropped samples (for the CLI)."""
    per_split = {s: sum(meta["counts"][s].values()) for s in SPLITS}
    line = f"{out}: {meta['n_samples']} images (" + ", ".join(f"{s} {n}" for s, n in per_split.items()) + ")"
    warnings = []
    sk = meta.get("skipped", {})
    if sk.get("count"):
        reasons = ", ".join(f"{r}: {n}" for r, n in sk["by_reason"].items())
        warnings.append(f"skipped {sk['count']} bad sample(s) ({reasons}); first: {sk['examples'][0]}")
    dropped = meta.get("dropped") or {}
    flat = {k: v for k, v in dropped.items() if isinstance(v, int)}
    flat.update({f"{f}: {k}": v for f, d in dropped.items() if isinstance(d, dict) for k, v in d.items()})
    if any(flat.values()):
        warnings.append("dropped " + ", ".join(f"{k} = {v}" for k, v in flat.items() if v))
    if meta.get("source") == "folder" and meta.get("subjects") is None:
        warnings.append("no subject column: splits are drawn per image, so one person can be in train and test "
                        "(add a 'subject' column, or name yours with --subject-col)")
    align = meta.get("align") or {}
    if align.get("no_face"):
        what = "kept whole (letterboxed; trained without PAL)" if align["no_face_kept"] else "dropped"
        warnings.append(f"no face found in {align['no_face']} image(s), e.g. {align['no_face_paths'][0]}: {what} "
                        "(meta.json: align)")
    return line, warnings
