"""The priors stage: the landmark sets of the noise study, versioned, plus a preview for the notebooks.

For each landmark-noise σ (paper §IV-C-4: 0 and 1...5 pixels of a 224 crop) one jittered landmark set is
drawn ONCE, seeded per σ, and stored; training reads the set of its σ and renders the priors on the fly
from the augmented landmarks at the chosen layer's resolution (:mod:`palbench.data.dataset`,
:func:`palbench.priors.render_priors`). Priors themselves are not stored: they depend on the
augmentation draw and the layer, and rendering a batch costs well under 1% of a training step.

Output folder::

    landmarks_noise<σ>.npy   float32 [N, 68, 2] per σ (σ = 0 is the landmarks as detected)
    priors.json              σ list, seed, files, image sizes, preview description
    preview.npz              images uint8 [K, H, W, 3], priors float32 [S, K, H, W], landmarks [S, K, 68, 2],
                             noise_sigmas [S], indices [K] (rows of samples.csv; test samples with a face)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from palbench.data.canonical import read_dataset
from palbench.errors import ConfigError, DataError
from palbench.io import atomic_dir, write_json
from palbench.priors import NOISE_REFERENCE_SIZE, jitter_landmarks, render_priors


def noise_file(noise_sigma: float) -> str:
    """File name of the landmark set of ``noise_sigma`` (``landmarks_noise2.npy``, ``landmarks_noise2.5.npy``)."""
    return f"landmarks_noise{noise_sigma:g}.npy"


def noise_generator(seed: int, noise_sigma: float) -> torch.Generator:
    """The generator of one σ: fixed by (seed, σ), independent of the other σ in the list."""
    return torch.Generator().manual_seed(seed * 1_000_003 + int(round(noise_sigma * 1000)))


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
    noise_sigmas: Sequence[float] = (0, 1, 2, 3, 4, 5),
    seed: int = 0,
    preview: int = 8,
    prior_sigma: float = 3.0,
    preview_map: int = 28,
    landmarks: str | Path | None = None,
) -> dict:
    """Write the jittered landmark sets and the preview of ``dataset`` to ``out`` (atomically).

    Args:
        dataset: canonical dataset folder with ``landmarks.npy``.
        out: output folder (replaced only when complete).
        noise_sigmas: landmark-noise σ in pixels of a 224 crop.
        seed: base seed; each σ has its own generator.
        preview: number K of test samples (with a face) in the preview.
        landmarks: landmark file ``[N, 68, 2]`` (default: the dataset's ``landmarks.npy``).
        prior_sigma: σ of the preview priors in pixels of a ``preview_map``-sized map (the map size of
            VGG conv8-10 at 224 px), drawn at image resolution.

    Returns:
        The content of ``priors.json``.
    """
    sigmas = [float(s) for s in noise_sigmas]
    if not sigmas or any(not s >= 0 for s in sigmas):
        raise ConfigError(f"noise sigmas must be a non-empty list of numbers >= 0, got {list(noise_sigmas)}")
    if len(set(sigmas)) != len(sigmas):
        raise ConfigError(f"noise sigmas must be distinct, got {sigmas}")
    data = read_dataset(dataset, require_landmarks=True, landmarks=landmarks)
    sizes = image_sizes(data)
    lm = torch.from_numpy(data.landmarks)
    valid = np.isfinite(data.landmarks).all(axis=(1, 2))
    test = data.split_indices("test")
    chosen = test[valid[test]][:preview]
    sets = {}
    with atomic_dir(out) as tmp:
        for s in sigmas:
            jittered = lm if s == 0 else jitter_landmarks(lm, s, noise_generator(seed, s), image_size=sizes)
            sets[s] = jittered.numpy().astype(np.float32)
            with open(tmp / noise_file(s), "wb") as f:
                np.save(f, sets[s])
        info = {
            "dataset": str(dataset),
            "landmarks": str(landmarks) if landmarks is not None else str(Path(dataset) / "landmarks.npy"),
            "noise_sigmas": sigmas,
            "noise_unit": f"pixels of a {NOISE_REFERENCE_SIZE}x{NOISE_REFERENCE_SIZE} crop, scaled to each image",
            "seed": seed,
            "files": {f"{s:g}": noise_file(s) for s in sigmas},
            "n_samples": len(data),
            "n_without_face": int((~valid).sum()),
            "preview": {"indices": [int(i) for i in chosen], "prior_sigma": prior_sigma, "map": preview_map},
        }
        if len(chosen):
            np.savez_compressed(tmp / "preview.npz", **_preview(data, chosen, sets, sizes, prior_sigma, preview_map))
        write_json(tmp / "priors.json", info)
    return info


def _preview(data, chosen: np.ndarray, sets: dict, sizes: np.ndarray, prior_sigma: float, preview_map: int) -> dict:
    """Images and priors of the preview samples at image resolution (images resized to the first one's size)."""
    H, W = (int(v) for v in sizes[chosen[0]])
    images, priors, landmarks = [], [], []
    for i in chosen:
        with Image.open(data.image_path(int(i))) as im:
            images.append(np.asarray(im.convert("RGB").resize((W, H), Image.BILINEAR)))
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
        "noise_sigmas": np.array(list(sets), np.float32),
        "indices": chosen.astype(np.int64),
    }
