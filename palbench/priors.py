"""Landmark priors (paper §III-D, eq. 7-8) and landmark jitter for the noise study (§IV-C-4).

Eq. 7 puts a 1 at each of the 68 landmarks, eq. 8 blurs it with a Gaussian of standard deviation σ (a run's
``prior_sigma``)::

    a*_{i,j} = Σ_{k=1..68} 1/sqrt(2πσ²) · exp(-((i - y_k)² + (j - x_k)²) / (2σ²))

We evaluate eq. 8 exactly at sub-pixel landmark positions instead of rounding landmarks to pixels and
blurring an indicator image (the literal recipe). A sum of isotropic Gaussians is separable::

    a*[b] = c · G_y[b]ᵀ G_x[b],   G_y[b, k, i] = exp(-(i - y_bk)²/2σ²),  G_x[b, k, j] = exp(-(j - x_bk)²/2σ²)

so a batch of maps is ONE batched matrix product ``[B, h, 68] @ [B, 68, w]``, cheap enough to draw the
priors on the fly from augmented landmarks (``benchmarks/speed/priors.py`` measures it).

Coordinates: landmarks are (x, y) pixel coordinates of an image of size ``(H, W)``, pixel centres at
integers (pixel ``j`` covers ``[j - 0.5, j + 0.5)``). An output map of size ``(h, w)`` covers the same
image, so output pixel ``j`` has its centre at image coordinate ``(j + 0.5)·W/w - 0.5``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from palbench.config import PalConfig
from palbench.errors import ConfigError

#: The crop size in which the paper's landmark-noise σ (1...5 pixels) is expressed.
NOISE_REFERENCE_SIZE = 224


def _pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    if len(size) != 2 or any(int(s) < 1 for s in size):
        raise ConfigError(f"{name} must be a positive int or (H, W), got {size!r}")
    return int(size[0]), int(size[1])


def render_priors(
    landmarks: Tensor | np.ndarray,
    image_size: int | Sequence[int],
    out_size: int | Sequence[int],
    prior_sigma: float = PalConfig.prior_sigma,
    sigma_unit: str = "map",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Gaussian landmark heatmaps, eq. 8 evaluated exactly.

    Args:
        landmarks: ``[B, 68, 2]`` (x, y) pixel coordinates of an image of ``image_size``; rows with a
            NaN are ignored (an all-NaN sample gives an all-zero prior, which :func:`pal_loss` masks).
            Points off the canvas are kept: their Gaussian tails still count.
        image_size: ``(H, W)`` (or one int) of the image the landmarks refer to.
        out_size: ``(h, w)`` (or one int) of the prior, usually the attribution layer's resolution.
        prior_sigma: σ of eq. 8, the Gaussians' standard deviation (paper: 3; default:
            :class:`~palbench.config.PalConfig`'s).
        sigma_unit: ``"map"`` — σ in pixels of the output map (default); ``"image"`` — σ in pixels of
            the image, scaled to the map per axis.
        dtype: output dtype (float64 for tests).

    Returns:
        ``[B, h, w]`` on the landmarks' device.
    """
    H, W = _pair(image_size, "image_size")
    h, w = _pair(out_size, "out_size")
    if not prior_sigma > 0:
        raise ConfigError(f"prior sigma must be > 0, got {prior_sigma!r}")
    if sigma_unit not in ("map", "image"):
        raise ConfigError(f"sigma_unit must be 'map' or 'image', got {sigma_unit!r}")
    lm = torch.as_tensor(landmarks)
    if lm.dim() != 3 or lm.shape[1:] != (68, 2):
        raise ConfigError(f"landmarks must be [B, 68, 2], got shape {tuple(lm.shape)}")
    lm = lm.to(dtype)
    sy, sx = (prior_sigma * h / H, prior_sigma * w / W) if sigma_unit == "image" else (prior_sigma, prior_sigma)
    valid = torch.isfinite(lm).all(dim=-1, keepdim=True)  # [B, 68, 1]
    lm = torch.where(valid, lm, torch.zeros_like(lm))
    # image coordinates -> output-map coordinates (pixel centres at integers in both)
    x = (lm[..., 0:1] + 0.5) * (w / W) - 0.5  # [B, 68, 1]
    y = (lm[..., 1:2] + 0.5) * (h / H) - 0.5
    j = torch.arange(w, dtype=dtype, device=lm.device)
    i = torch.arange(h, dtype=dtype, device=lm.device)
    gx = torch.exp(-((j - x) ** 2) / (2 * sx * sx))  # [B, 68, w]
    gy = torch.exp(-((i - y) ** 2) / (2 * sy * sy)) * valid  # [B, 68, h]
    return torch.bmm(gy.transpose(1, 2), gx) / math.sqrt(2 * math.pi * sx * sy)


def jitter_landmarks(
    landmarks: Tensor | np.ndarray,
    landmark_noise: float,
    generator: torch.Generator | None = None,
    image_size: int | Sequence[int] = NOISE_REFERENCE_SIZE,
) -> Tensor:
    """Noisy landmarks for the sensitivity study (§IV-C-4, Fig. 4-5): each coordinate plus independent Gaussian
    noise of standard deviation σ ("different values of sigma"; a run's ``landmark_noise``).

    Args:
        landmarks: ``[..., 68, 2]`` (x, y) pixel coordinates; NaN rows stay NaN.
        landmark_noise: σ, in pixels of a 224×224 crop (the paper's 1...5), scaled to ``image_size`` per axis.
        generator: seeded ``torch.Generator`` (CPU) for reproducible noise.
        image_size: ``(H, W)`` of the image the landmarks refer to, or ``[N, 2]`` per sample.

    Returns:
        float32 tensor of the same shape.
    """
    if not landmark_noise >= 0:
        raise ConfigError(f"landmark noise sigma must be >= 0, got {landmark_noise!r}")
    lm = torch.as_tensor(landmarks, dtype=torch.float32)
    if isinstance(image_size, (torch.Tensor, np.ndarray)) and np.ndim(image_size) == 2:
        hw = torch.as_tensor(image_size, dtype=torch.float32)  # [N, 2] (H, W) per sample
        if hw.shape != (lm.shape[0], 2):
            raise ConfigError(f"per-sample image_size must be [N, 2] = {(lm.shape[0], 2)}, got {tuple(hw.shape)}")
        wh = hw.flip(-1).view(-1, *([1] * (lm.dim() - 2)), 2)
    else:
        H, W = _pair(image_size, "image_size")
        wh = torch.tensor([W, H], dtype=torch.float32)
    noise = torch.randn(lm.shape, generator=generator, dtype=torch.float32)
    return lm + noise.to(lm.device) * (wh * (landmark_noise / NOISE_REFERENCE_SIZE)).to(lm.device)
