"""A folder of labelled "photos" made from synthetic faces: the input of ``palbench import folder`` as a user
would bring it, for the tests and benchmarks of the own-photos path (alignment, landmark QA, protocol new).

Each photo is one synthetic face (:mod:`palbench.data.synth`, no decoy) rendered large, scaled, rotated and
pasted at a random place on a larger background of smooth colour blobs and noise, then saved in one of
several formats and modes in turn: RGB JPEG, grayscale (L) PNG, palette (P) PNG, 16-bit grayscale TIFF.
``labels.csv`` lists ``path,label,subject`` (class names); the true landmarks of every photo, in its
own pixel coordinates, are in ``landmarks.npy`` (``[N, 68, 2]``, CSV row order) for checking the detector
and the crops. Everything is drawn from ``seed``: the same arguments give the same files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from palbench.data.align import move_points, warp
from palbench.data.canonical import CLASSES
from palbench.data.synth.face import sample_identity
from palbench.data.synth.params import identity_rng, sample_params
from palbench.data.synth.render import render_sample
from palbench.errors import ConfigError
from palbench.io import atomic_dir

#: Saved formats, in turn: (PIL mode, file suffix).
FORMATS: tuple[tuple[str, str], ...] = (("RGB", ".jpg"), ("L", ".png"), ("P", ".png"), ("I;16", ".tif"))


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Smooth colour blobs (a 4x3 grid upsampled) plus pixel noise, uint8 RGB."""
    grid = rng.uniform(30, 225, size=(3, 4, 3)).astype(np.uint8)
    base = np.asarray(Image.fromarray(grid).resize((width, height), Image.Resampling.BICUBIC), np.float32)
    noise = rng.normal(0, 8, size=(height, width, 1))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def _save(image: Image.Image, path: Path, mode: str) -> None:
    if mode == "I;16":  # 16-bit grayscale: the 8-bit values spread over the 16-bit range
        gray = np.asarray(image.convert("L"), np.uint16) * 257
        Image.fromarray(gray).save(path)
    elif mode == "P":
        image.quantize(64).save(path)
    else:
        image.convert(mode).save(path, quality=92) if path.suffix == ".jpg" else image.convert(mode).save(path)


def make_photo_folder(
    out: str | Path,
    subjects: int = 10,
    classes: Sequence[str] = CLASSES,
    per_class: int = 1,
    photo_size: tuple[int, int] = (400, 300),
    face_size: int = 128,
    scale: tuple[float, float] = (0.8, 1.4),
    max_rotation: float = 12.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Write ``out/labels.csv``, ``out/landmarks.npy`` and ``out/photos/<subject>/<class>_<k>.<ext>``.

    Args:
        out: output folder (replaced only on success).
        subjects: identities; each has ``per_class`` photos of each of ``classes``.
        classes: class names to draw (e.g. all but one, to leave a class missing).
        photo_size: ``(width, height)`` of every photo.
        face_size: side of the rendered face square before scaling.
        scale: range of the face's scale factor in the photo.
        max_rotation: the face is rotated by up to this many degrees either way.
        seed: seed of every draw.

    Returns:
        The labels table (``path, label, subject``).
    """
    unknown = [c for c in classes if c not in CLASSES]
    if unknown or not classes:
        raise ConfigError(f"make_photo_folder: classes {unknown or '(none)'}; expected some of {', '.join(CLASSES)}")
    width, height = photo_size
    if max(scale) * face_size * math.sqrt(2) >= min(width, height):
        raise ConfigError(f"make_photo_folder: a face of {face_size}px scaled by {max(scale)} does not fit a "
                          f"{width}x{height} photo")
    rows, points = [], []
    with atomic_dir(out) as tmp:
        for subject in range(subjects):
            identity = sample_identity(identity_rng(seed, subject))
            (tmp / "photos" / f"s{subject:03d}").mkdir(parents=True)
            for c, name in enumerate(classes):
                for k in range(per_class):
                    n = len(rows)
                    rng = np.random.default_rng([seed, 11, subject, c, k])
                    params = sample_params(rng, np.random.default_rng([seed, 12, n]), CLASSES.index(name), identity,
                                           occluder_p=0.0, low_intensity_share=0.0)
                    face, lm, _ = render_sample(params, face_size)
                    matrix = _placement(rng, face_size, width, height, scale, max_rotation)
                    photo = _background(rng, width, height)
                    mask = warp(Image.new("L", (face_size, face_size), 255), matrix, (width, height))
                    photo.paste(warp(Image.fromarray(face), matrix, (width, height)), (0, 0), mask)
                    mode, suffix = FORMATS[n % len(FORMATS)]
                    path = f"photos/s{subject:03d}/{name}_{k}{suffix}"
                    _save(photo, tmp / path, mode)
                    rows.append({"path": path, "label": name, "subject": f"person{subject:03d}"})
                    points.append(move_points(lm, matrix))
        table = pd.DataFrame(rows)
        table.to_csv(tmp / "labels.csv", index=False)
        np.save(tmp / "landmarks.npy", np.asarray(points, np.float32))
    return table


def _placement(rng: np.random.Generator, face_size: int, width: int, height: int, scale: tuple[float, float],
               max_rotation: float) -> np.ndarray:
    """A random similarity ``[2, 3]`` (face square → photo) keeping the rotated square inside the photo."""
    s = rng.uniform(*scale)
    theta = math.radians(rng.uniform(-max_rotation, max_rotation))
    rot = s * np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    half = s * face_size * math.sqrt(2) / 2
    centre = np.array([rng.uniform(half, width - 1 - half), rng.uniform(half, height - 1 - half)])
    mid = (face_size - 1) / 2
    return np.hstack([rot, (centre - rot @ np.array([mid, mid]))[:, None]])
