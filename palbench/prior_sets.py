"""The priors stage: the landmark sets of the noise study, versioned, plus a preview for the notebooks.

For each landmark-noise σ (``landmark_noise``; paper §IV-C-4: 0 and 1...5 pixels of a 224 crop) one jittered
landmark set is drawn ONCE, seeded per σ, and stored; a run reads the set of its ``landmark_noise`` from this
folder (:func:`palbench.config.landmark_set_path`) and renders the priors on the fly
from the augmented landmarks at the chosen layer's resolution (:mod:`palbench.data.dataset`,
:func:`palbench.priors.render_priors`). Priors themselves are not stored: they depend on the
augmentation draw and the layer, and rendering a batch costs well under 1% of a training step.

Output folder::

    landmarks_noise<σ>.npy   float32 [N, 68, 2] per σ (σ = 0 is the landmarks as detected; the name is
                             :func:`palbench.config.noise_file`'s)
    priors.json              landmark_noise (the σ list), seed, files by σ

Preview folder (``--preview-out``; default: the same folder)::

    preview.json             the preview's samples and prior σ
    preview.npz              images uint8 [K, H, W, 3], priors float32 [S, K, H, W], landmarks [S, K, 68, 2],
                             landmark_noise [S], indices [K] (rows of samples.csv; test samples with a face)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from palbench.config.names import noise_file
from palbench.data.canonical import read_dataset
from palbench.data.images import to_rgb
from palbench.errors import ConfigError, DataError
from palbench.io import atomic_dir, write_json
from palbench.priors import NOISE_REFERENCE_SIZE, jitter_landmarks, render_priors


def noise_generator(seed: int, landmark_noise: float) -> torch.Generator:
    """The generator of one σ: fixed by (seed, σ), independent of the other σ in the list."""
    return torch.Generator().manual_seed(seed * 1_000_003 + int(round(landmark_noise * 1000)))


def image_sizes(data) -> np.ndarray:
    """``[N, 2]`` (H, W) of every image: from meta.json when constant, else from the image headers."""
    size = data.meta.get("image_size")
    if isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(s, int) for s in size):
        return np.tile(np.array(size, dtype=np.int64), (len(data), 1))
    out = np.empty((len(data), 2), np.int64)
    for i in range(len(data)):
        try:
            with Image.open(data.image_path(i)) as im:
                out[i] = (im.height, im.width)
        except OSError as e:
            raise DataError(f"{data.image_path(i)}: cannot read image size ({e})") from None
    return out


def build_prior_sets(
    dataset: str | Path,
    out: str | Path,
    landmark_noise: Sequence[float] = (0, 1, 2, 3, 4, 5),
    seed: int = 0,
    preview: int = 8,
    prior_sigma: float = 3.0,
    preview_map: int = 28,
    landmarks: str | Path | None = None,
    preview_out: str | Path | None = None,
) -> dict:
    """Write the jittered landmark sets of ``dataset`` to ``out`` and its preview (each folder atomically).

    Args:
        dataset: canonical dataset folder with ``landmarks.npy``.
        out: output folder of the landmark sets and ``priors.json`` (replaced only when complete).
        landmark_noise: the landmark-noise σ to draw a set for, in pixels of a 224 crop.
        seed: base seed; each σ has its own generator.
        preview: number K of test samples (with a face) in the preview.
        landmarks: landmark file ``[N, 68, 2]`` (default: the dataset's ``landmarks.npy``).
        prior_sigma: σ of the preview priors in pixels of a ``preview_map``-sized map (the map size of
            VGG conv8-10 at 224 px), drawn at image resolution.
        preview_out: folder of ``preview.npz`` and ``preview.json`` (default: ``out``). The pipeline keeps it
            apart, so that the preview's settings do not change the folder every run depends on.

    Returns:
        The content of ``priors.json``.
    """
    sigmas = [float(s) for s in landmark_noise]
    if not sigmas or any(not s >= 0 for s in sigmas):
        raise ConfigError(f"landmark_noise: expected a non-empty list of numbers >= 0, got {list(landmark_noise)}")
    if len(set(sigmas)) != len(sigmas):
        raise ConfigError(f"landmark_noise: expected distinct values, got {sigmas}")
    data = read_dataset(dataset, require_landmarks=True, landmarks=landmarks)
    sizes = image_sizes(data)
    lm = torch.from_numpy(data.landmarks)
    sets = {s: (lm if s == 0 else jitter_landmarks(lm, s, noise_generator(seed, s), image_size=sizes)).numpy()
            .astype(np.float32) for s in sigmas}
    info = {
        "dataset": str(dataset),
        "landmarks": str(landmarks) if landmarks is not None else str(Path(dataset) / "landmarks.npy"),
        "landmark_noise": sigmas,
        "noise_unit": f"pixels of a {NOISE_REFERENCE_SIZE}x{NOISE_REFERENCE_SIZE} crop, scaled to each image",
        "seed": seed,
        "files": {f"{s:g}": noise_file(s) for s in sigmas},
        "n_samples": len(data),
        "n_without_face": int((~np.isfinite(data.landmarks).all(axis=(1, 2))).sum()),
    }
    with atomic_dir(out) as tmp:
        for s, array in sets.items():
            with open(tmp / noise_file(s), "wb") as f:
                np.save(f, array)
        write_json(tmp / "priors.json", info)
        if preview_out is None:
            write_preview(tmp, data, sets, sizes, preview, prior_sigma, preview_map)
    if preview_out is not None:
        with atomic_dir(preview_out) as tmp:
            write_preview(tmp, data, sets, sizes, preview, prior_sigma, preview_map)
    return info


def write_preview(folder: Path, data, sets: dict, sizes: np.ndarray, preview: int, prior_sigma: float,
                  preview_map: int) -> None:
    """``preview.json`` (which samples, which σ) and ``preview.npz`` (when the test split has a face) of
    the first ``preview`` test samples with a face."""
    valid = np.isfinite(data.landmarks).all(axis=(1, 2))
    test = data.split_indices("test")
    chosen = test[valid[test]][:preview]
    write_json(folder / "preview.json", {"indices": [int(i) for i in chosen], "prior_sigma": prior_sigma,
                                         "map": preview_map, "landmark_noise": list(sets)})
    if len(chosen):
        np.savez_compressed(folder / "preview.npz", **_preview(data, chosen, sets, sizes, prior_sigma, preview_map))


def _preview(data, chosen: np.ndarray, sets: dict, sizes: np.ndarray, prior_sigma: float, preview_map: int) -> dict:
    """Images and priors of the preview samples at image resolution (images resized to the first one's size)."""
    H, W = (int(v) for v in sizes[chosen[0]])
    images, priors, landmarks = [], [], []
    for i in chosen:
        with Image.open(data.image_path(int(i))) as im:
            images.append(np.asarray(to_rgb(im).resize((W, H), Image.BILINEAR)))
    scale = np.array([W, H], np.float32) / sizes[chosen][:, ::-1].astype(np.float32)  # to the preview size
    for s, lm_all in sets.items():
        pts = (lm_all[chosen] + 0.5) * scale[:, None, :] - 0.5
        landmarks.append(pts)
        sig = prior_sigma * H / preview_map  # same physical blur as σ on a preview_map-sized map
        priors.append(render_priors(torch.from_numpy(pts), (H, W), (H, W), sig).numpy())
    return {
        "images": np.stack(images),
        "priors": np.stack(priors).astype(np.float32),
        "landmarks": np.stack(landmarks).astype(np.float32),
        "landmark_noise": np.array(list(sets), np.float32),
        "indices": chosen.astype(np.int64),
    }
