"""``palbench synth``: write the built-in benchmark as a canonical dataset.

Layout written (on top of the canonical files, see :mod:`palbench.data.canonical`)::

    images/<split>/<index>.png     RGB PNGs, size × size
    samples.csv                    path,label,split,subject   (subject = identity id; disjoint across splits)
    provided_landmarks.npy         float32 [N,68,2] exact landmarks (pixel centres at integers, iBUG order)
    decoy_boxes.npy                float32 [N,4] (x0, y0, x1, y1) of the decoy square, NaN rows = no decoy
    decoy_labels.npy               int64 [N] class the decoy colour encodes, -1 = no decoy
    stripes_labels.npy             int64 [N] class the background stripes' angle encodes, -1 = no stripes
    meta.json                      source "synth", image_size, generator version and parameters, decoy,
                                   stripes, shortcut_test, seed

Determinism: image ``j`` of split ``s`` is drawn from ``default_rng([seed, code(s), j, 0])`` (face and
nuisances) and ``default_rng([seed, code(s), j, 1])`` (decoy, then stripes: the shortcut options change no face); identity ``k`` from ``default_rng([seed, 7, k])``;
the label order of a split from ``default_rng([seed, 5, code(s)])``. Nothing depends on chunking or on the
other splits' sizes, and PNGs are written with fixed settings, so the same arguments give byte-identical files.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from palbench.data.canonical import CLASSES, SPLITS, dataset_writer, save_npy, write_tables
from palbench.data.synth.decoy import PALETTE
from palbench.data.synth.face import sample_identity
from palbench.data.synth.params import SPLIT_CODES, identity_rng, sample_params, sample_rngs
from palbench.data.synth.render import default_ss, render_sample
from palbench.data.synth.shortcut import N_CLASSES, TEST_MODES
from palbench.data.synth.stripes import JITTER, PERIOD
from palbench.errors import ConfigError

#: Bumped whenever the same parameters would give different images.
GENERATOR_VERSION = "1.0"
#: Identity ids start here for each split (train, val, test), so subjects never collide across splits.
SUBJECT_OFFSET = {"train": 0, "val": 1_000_000, "test": 2_000_000}
#: Fixed PNG settings (zlib Huffman-only coding: the images are noisy, so it is both the fastest and smallest).
PNG_SETTINGS = {"format": "PNG", "compress_level": 1, "compress_type": 2, "optimize": False}

DEFAULTS = {
    "n_train": 1400,
    "n_val": 350,
    "n_test": 700,
    "size": 64,
    "seed": 0,
    "decoy_p": 0.9,
    "decoy_strength": 1.0,
    "decoy_p_test": 1.0,
    "decoy_size": 0.125,
    "stripes_p": 0.0,
    "stripes_p_test": None,
    "stripes_strength": 0.5,
    "shortcut_test": "random",
    "occluder_p": 0.15,
    "low_intensity_share": 0.15,
    "images_per_subject": 7,
}


def class_counts(n: int, weights: Sequence[float]) -> np.ndarray:
    """Per-class counts ``[K]`` summing to ``n``: largest-remainder rounding of ``n * w / sum(w)``."""
    w = np.asarray(weights, np.float64)
    exact = n * w / w.sum()
    counts = np.floor(exact).astype(np.int64)
    rest = n - counts.sum()
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:rest]] += 1
    return counts


def split_labels(seed: int, split: str, n: int, weights: Sequence[float]) -> np.ndarray:
    """Labels ``[n]`` of one split: exact class counts, shuffled by ``default_rng([seed, 5, code])``."""
    labels = np.repeat(np.arange(len(CLASSES)), class_counts(n, weights))
    return np.random.default_rng([seed, 5, SPLIT_CODES[split]]).permutation(labels)


def _check(name: str, ok: bool, expected: str, value: object) -> None:
    if not ok:
        raise ConfigError(f"synth: {name} = {value!r}; expected {expected}")


def _is_int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def validate(
    n_train: int, n_val: int, n_test: int, size: int, seed: int, decoy_p: float, decoy_strength: float,
    decoy_p_test: float, decoy_size: float, occluder_p: float, low_intensity_share: float,
    images_per_subject: int, class_weights: Sequence[float] | None, stripes_p: float = 0.0,
    stripes_p_test: float = 0.0, stripes_strength: float = 0.5, shortcut_test: str = "random",
) -> None:  # fmt: skip
    """Raise :class:`ConfigError` (one line naming the option) for a value outside what is accepted."""
    for name, v in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        _check(name, _is_int(v) and v >= 0, "an integer >= 0", v)
    _check("n_train + n_val + n_test", n_train + n_val + n_test > 0, "at least 1 image", n_train + n_val + n_test)
    _check("size", _is_int(size) and 32 <= size <= 1024, "an integer in 32..1024 pixels", size)
    _check("seed", _is_int(seed) and seed >= 0, "an integer >= 0", seed)
    for name, v in (("decoy_p", decoy_p), ("decoy_p_test", decoy_p_test), ("occluder_p", occluder_p),
                    ("low_intensity_share", low_intensity_share), ("stripes_p", stripes_p),
                    ("stripes_p_test", stripes_p_test)):  # fmt: skip
        _check(name, isinstance(v, (int, float)) and 0.0 <= v <= 1.0, "a probability in [0, 1]", v)
    _check("decoy_strength", isinstance(decoy_strength, (int, float)) and 0.0 < decoy_strength <= 1.0,
           "an opacity in (0, 1]", decoy_strength)  # fmt: skip
    _check("stripes_strength", isinstance(stripes_strength, (int, float)) and 0.0 < stripes_strength <= 1.0,
           "an opacity in (0, 1]", stripes_strength)  # fmt: skip
    _check("shortcut_test", shortcut_test in TEST_MODES, f"one of {', '.join(TEST_MODES)}", shortcut_test)
    _check("decoy_size", isinstance(decoy_size, (int, float)) and 0.0 < decoy_size <= 0.15,
           "a fraction of the image side in (0, 0.15] (the square must fit beside the head)", decoy_size)  # fmt: skip
    _check("images_per_subject", _is_int(images_per_subject) and images_per_subject >= 1, "an integer >= 1",
           images_per_subject)  # fmt: skip
    if class_weights is not None:
        w = list(class_weights)
        ok = len(w) == len(CLASSES) and all(isinstance(x, (int, float)) and math.isfinite(x) and x >= 0 for x in w)
        _check("class_weights", ok and sum(w) > 0, f"{len(CLASSES)} non-negative numbers, not all zero", w)


def generate(
    out: str | Path,
    n_train: int = DEFAULTS["n_train"],
    n_val: int = DEFAULTS["n_val"],
    n_test: int = DEFAULTS["n_test"],
    size: int = DEFAULTS["size"],
    seed: int = DEFAULTS["seed"],
    decoy_p: float = DEFAULTS["decoy_p"],
    decoy_strength: float = DEFAULTS["decoy_strength"],
    *,
    decoy_p_test: float = DEFAULTS["decoy_p_test"],
    decoy_size: float = DEFAULTS["decoy_size"],
    stripes_p: float = DEFAULTS["stripes_p"],
    stripes_p_test: float | None = DEFAULTS["stripes_p_test"],
    stripes_strength: float = DEFAULTS["stripes_strength"],
    shortcut_test: str = DEFAULTS["shortcut_test"],
    occluder_p: float = DEFAULTS["occluder_p"],
    low_intensity_share: float = DEFAULTS["low_intensity_share"],
    images_per_subject: int = DEFAULTS["images_per_subject"],
    class_weights: Sequence[float] | None = None,
    progress: bool = True,
) -> dict:
    """Render the synthetic benchmark into the canonical dataset folder ``out``; return its meta.json.

    Args:
        out: dataset folder; replaced only when generation succeeds (built in a temporary sibling).
        n_train, n_val, n_test: images per split.
        size: image side in pixels (≥ 32; 64 by default, 224 works).
        seed: seed of every random draw.
        decoy_p: probability that a train/val image carries the decoy (colour = its true class).
        decoy_strength: opacity of the decoy square over the background, in (0, 1].
        decoy_p_test: probability that a test image carries the decoy (colour: see ``shortcut_test``).
        decoy_size: side of the decoy square as a fraction of ``size``.
        stripes_p: probability that a train/val image's background carries stripes at the angle of its true
            class (:mod:`.stripes`, the second shortcut; 0 = none).
        stripes_p_test: probability that a test image carries them (default: 1 when ``stripes_p`` > 0, else 0).
        stripes_strength: opacity of the stripes over the background, in (0, 1].
        shortcut_test: the class a test image's shortcuts encode: ``random`` (uniform, the label included) or
            ``flipped`` (never the label; :mod:`.shortcut`).
        occluder_p: probability of a random patch over part of the face.
        low_intensity_share: share of expressive faces drawn at low, ambiguous intensity (0.1–0.35).
        images_per_subject: images per identity (identities never cross splits).
        class_weights: relative class frequencies (RAF-DB order), the same in every split; default uniform.
        progress: show a tqdm bar over images.
    """
    if stripes_p_test is None:
        stripes_p_test = 1.0 if stripes_p > 0 else 0.0
    validate(n_train, n_val, n_test, size, seed, decoy_p, decoy_strength, decoy_p_test, decoy_size, occluder_p,
             low_intensity_share, images_per_subject, class_weights, stripes_p, stripes_p_test, stripes_strength,
             shortcut_test)  # fmt: skip
    weights = [1.0] * len(CLASSES) if class_weights is None else [float(w) for w in class_weights]
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    kw = dict(decoy_p=decoy_p, decoy_p_test=decoy_p_test, decoy_size=decoy_size, decoy_strength=decoy_strength,
              stripes_p=stripes_p, stripes_p_test=stripes_p_test, stripes_strength=stripes_strength,
              shortcut_test=shortcut_test, occluder_p=occluder_p, low_intensity_share=low_intensity_share)  # fmt: skip
    total = sum(sizes.values())
    with dataset_writer(out) as tmp, tqdm(total=total, desc="synth", unit="img", disable=not progress) as bar:
        samples, landmarks, boxes, decoy_labels, stripes_labels = _render_splits(
            tmp, sizes, size, seed, weights, kw, images_per_subject, bar
        )
        save_npy(tmp / "decoy_boxes.npy", boxes)
        save_npy(tmp / "decoy_labels.npy", decoy_labels)
        if stripes_p > 0 or stripes_p_test > 0:
            save_npy(tmp / "stripes_labels.npy", stripes_labels)
        meta = build_meta(sizes, size, seed, weights, kw, images_per_subject)
        write_tables(tmp, samples, meta, provided_landmarks=landmarks)
    return json.loads((Path(out) / "meta.json").read_text())


def _render_splits(
    tmp: Path, sizes: dict[str, int], size: int, seed: int, weights: list[float], kw: dict, per_subject: int, bar: tqdm
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Render and write ``images/<split>/<j>.png`` of every split (in :data:`SPLITS` order) into ``tmp``.

    Returns:
        samples: ``path, label, split, subject`` per image (N rows, the order written).
        landmarks: float32 ``[N, 68, 2]``; decoy boxes: float32 ``[N, 4]`` (NaN rows = no decoy);
        decoy labels, stripes labels: int64 ``[N]`` (-1 = none).
    """
    total = sum(sizes.values())
    rows: list[tuple[str, int, str, int]] = []
    landmarks = np.empty((total, 68, 2), np.float32)
    boxes = np.empty((total, 4), np.float32)
    decoy_labels = np.full(total, -1, np.int64)
    stripes_labels = np.full(total, -1, np.int64)
    identities: dict[int, object] = {}
    i = 0
    for split in SPLITS:
        (tmp / "images" / split).mkdir()
        for j, label in enumerate(split_labels(seed, split, sizes[split], weights)):
            subject = SUBJECT_OFFSET[split] + j // per_subject
            if subject not in identities:
                identities = {subject: sample_identity(identity_rng(seed, subject))}  # one subject at a time
            rng, drng = sample_rngs(seed, split, j)
            p = sample_params(rng, drng, int(label), identities[subject], split, **kw)
            img, lm, box = render_sample(p, size)
            path = f"{split}/{j:06d}.png"
            write_png(tmp / "images" / path, img)
            rows.append((path, int(label), split, subject))
            landmarks[i], boxes[i] = lm, box
            if p.decoy is not None:
                decoy_labels[i] = p.decoy.klass
            if p.stripes is not None:
                stripes_labels[i] = p.stripes.klass
            i += 1
            bar.update()
    return pd.DataFrame(rows, columns=["path", "label", "split", "subject"]), landmarks, boxes, decoy_labels, stripes_labels


def write_png(path: Path, img: np.ndarray) -> None:
    """Write ``img`` uint8 ``[H, W, 3]`` as a PNG with fixed settings (no metadata: byte-identical reruns)."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, **PNG_SETTINGS)
    path.write_bytes(buf.getvalue())


def build_meta(sizes: dict, size: int, seed: int, weights: list[float], kw: dict, per_subject: int) -> dict:
    """The synth part of meta.json (``write_tables`` adds classes and counts)."""
    return {
        "source": "synth",
        "image_size": [size, size],
        "seed": seed,
        "generator": {
            "name": "palbench.data.synth",
            "version": GENERATOR_VERSION,
            "params": {
                **{f"n_{s}": n for s, n in sizes.items()},
                "size": size,
                "seed": seed,
                "supersample": default_ss(size),
                "occluder_p": kw["occluder_p"],
                "low_intensity_share": kw["low_intensity_share"],
                "images_per_subject": per_subject,
                "class_weights": weights,
            },
            "png": {k: v for k, v in PNG_SETTINGS.items()},
        },
        "landmarks": "provided_landmarks.npy: the exact points the faces were drawn from (iBUG-68, (x, y) "
        "pixels, pixel centres at integers)",
        "subjects": "subject = identity id; train, val and test identities are disjoint",
        "validation": "separate identities, same class distribution as test (both drawn with class_weights)",
        "test": "separate identities; each shortcut encodes a class uncorrelated with the label "
        + ("(never the label: flipped)" if kw["shortcut_test"] == "flipped" else "(uniform random)"),
        "shortcut_test": kw["shortcut_test"],
        "decoy": {
            "p_train_val": kw["decoy_p"],
            "p_test": kw["decoy_p_test"],
            "strength": kw["decoy_strength"],
            "size_fraction": kw["decoy_size"],
            "side_px": max(2, int(round(kw["decoy_size"] * size))),
            "test_class": _TEST_CLASS[kw["shortcut_test"]],
            "palette": {c: [int(v) for v in PALETTE[k]] for k, c in enumerate(CLASSES)},
            "boxes": "decoy_boxes.npy",
            "labels": "decoy_labels.npy",
            "box_format": "float32 [N,4] (x0, y0, x1, y1) in pixels, landmark convention (pixel centres at "
            "integers): the decoy covers the pixels whose centres lie inside the box; NaN rows = no decoy",
            "labels_format": "int64 [N]: class the decoy colour encodes, -1 = no decoy",
            "placement": "a square of the palette colour blended with opacity `strength`, in an image corner "
            "clear of the head (always clear of the landmark bounding box), before blur and noise",
        },
        "stripes": {
            "p_train_val": kw["stripes_p"],
            "p_test": kw["stripes_p_test"],
            "strength": kw["stripes_strength"],
            "test_class": _TEST_CLASS[kw["shortcut_test"]],
            "angle": f"class k at k * 180/{N_CLASSES} degrees, jitter <= {math.degrees(JITTER):.2f} degrees",
            "period_fraction": PERIOD,
            "labels": "stripes_labels.npy" if kw["stripes_p"] > 0 or kw["stripes_p_test"] > 0 else None,
            "placement": "grey stripes blended into the background with opacity `strength`, behind the head",
        },
    }


_TEST_CLASS = {"random": "uniform random", "flipped": "never the label (label + 1 + uniform 0..5, mod 7)"}

