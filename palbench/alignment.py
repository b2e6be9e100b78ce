"""Where a trained model looks: attribution–prior alignment (the paper's Fig. 7, as a number) and the
decoy share of the built-in benchmark.

**Alignment.** For each test image with landmarks, the attribution of the run's PAL layer (the run's
method, from one forward, ``create_graph=False``) is compared with the landmark prior (eq. 8, the run's σ,
rendered at the attribution's resolution) by the Pearson correlation over pixels — the PAL term of eq. 4
without the minus sign:

* ``constrained``: the mean of the first ``C1 = round(c1·C)`` channels (what PAL trains with
  ``strategy="mean"``; for a ``strategy="all"`` run it is still the channel *mean*, so runs compare);
* ``free``: the mean of the remaining ``C - C1`` channels (undefined when ``C1 = C``);
* ``all``: the mean of all channels.

A baseline run (``pal_weight = 0``) is measured at the same layer with the same method, so PAL and baseline
numbers are comparable. A sample whose map or prior is constant over the pixels has no correlation (NaN,
left out of the mean), as in :func:`palbench.loss.pal_correlation`.

**Decoy share.** The synthetic benchmark puts a class-coded square in a corner, away from the face
(:mod:`palbench.data.synth.decoy`). The input-level Grad×Input map ``m = Σ_c |∂Σ_o f_o/∂x_c · x_c|`` on
the (normalised) model input ``x`` tells how much of the evidence comes from the square:
``share = Σ_{box} m / Σ m``. A model that ignores the square scores 0, one that looks only at it scores 1,
and a uniform map scores the square's area share (``area``, reported next to it): a share well above
``area`` means the model uses the shortcut.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from palbench.loss import pal_correlation, split_channels
from palbench.objective import attributed_forward
from palbench.priors import render_priors


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))


def box_coverage(boxes: np.ndarray, image_size: int | Sequence[int], out_size: int | Sequence[int]) -> np.ndarray:
    """Fraction of each output pixel covered by a box, after resizing the image to ``out_size``.

    Args:
        boxes: ``[N, 4]`` ``(x0, y0, x1, y1)`` in pixels of the stored image of ``image_size = (H, W)``,
            landmark convention (pixel centres at integers; the synth decoy of columns ``a..b`` is
            ``x0 = a - 0.5, x1 = b + 0.5``). NaN rows (no box) give all-zero maps.
        out_size: ``(h, w)`` of the resized image (the model input).

    Returns:
        float32 ``[N, h, w]`` in ``[0, 1]``: the area of output pixel ``(i, j)`` that lies inside the box.
        The resize maps edge coordinates ``e = x + 0.5`` to ``e · w / W`` (as torchvision's resize), so the
        box keeps its place and its area share; output pixels straddling its border are covered in part.
    """
    (H, W), (h, w) = _pair(image_size), _pair(out_size)
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    ok = ~np.isnan(b).any(axis=1)
    b = np.where(ok[:, None], b, 0.0)

    def overlap(lo: np.ndarray, hi: np.ndarray, scale: float, n: int) -> np.ndarray:  # [N, n]
        lo, hi = (lo[:, None] + 0.5) * scale, (hi[:, None] + 0.5) * scale
        j = np.arange(n)[None]
        return np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, 1.0)

    ox = overlap(b[:, 0], b[:, 2], w / W, w) * ok[:, None]
    oy = overlap(b[:, 1], b[:, 3], h / H, h)
    return (oy[:, :, None] * ox[:, None, :]).astype(np.float32)


def alignment_scores(attribution: Tensor, prior: Tensor, c1: float) -> dict[str, Tensor]:
    """Per-sample Pearson correlations of channel-mean attribution maps with the prior.

    Args:
        attribution: ``[B, C, H, W]``.
        prior: ``[B, H, W]`` at the attribution's resolution (all-zero where there is no face).
        c1: fraction of constrained channels, ``C1 = round(c1·C)`` (at least 1).

    Returns:
        ``{"constrained", "free", "all"}``, each float64 ``[B]``, NaN where undefined (constant map, no
        face; ``free`` is all NaN when ``C1 = C``).
    """
    attribution, prior = attribution.detach(), prior.detach()

    def r(maps: Tensor) -> Tensor:
        corr, valid = pal_correlation(maps, prior, "mean", 1.0)
        return torch.where(valid[:, 0], corr[:, 0], torch.nan).double().cpu()

    constrained, free = split_channels(attribution, c1)
    no_free = torch.full((attribution.shape[0],), torch.nan, dtype=torch.float64)
    return {"constrained": r(constrained), "free": no_free if free is None else r(free), "all": r(attribution)}


def input_grad_input(logits: Tensor, images: Tensor) -> Tensor:
    """Input-level Grad×Input map ``Σ_c |∂Σ_o f_o/∂x_c · x_c|``.

    Args:
        logits: ``[B, K]`` from a forward of ``images``.
        images: ``[B, 3, H, W]`` model input with ``requires_grad``.

    Returns:
        ``[B, H, W]`` (non-negative, detached).
    """
    (grad,) = torch.autograd.grad(logits.sum(), images)
    return (grad * images).abs().sum(dim=1).detach()


def decoy_shares(attribution_map: Tensor, coverage: Tensor) -> dict[str, Tensor]:
    """Share of an input-level attribution mass inside a box, and the box's area share.

    Args:
        attribution_map: ``[B, H, W]`` non-negative (from :func:`input_grad_input`).
        coverage: ``[B, H, W]`` in ``[0, 1]`` (from :func:`box_coverage`); all-zero = no box.

    Returns:
        ``{"share", "area"}`` float64 ``[B]``; NaN where there is no box (or no attribution mass).
    """
    m, cov = attribution_map.double().cpu(), coverage.double().cpu()
    has_box = cov.sum(dim=(1, 2)) > 0
    total = m.sum(dim=(1, 2))
    share = (m * cov).sum(dim=(1, 2)) / total.clamp_min(1e-300)
    area = cov.mean(dim=(1, 2))
    return {
        "share": torch.where(has_box & (total > 0), share, torch.nan),
        "area": torch.where(has_box, area, torch.nan),
    }


def attention_batch(
    model: nn.Module,
    images: Tensor,
    landmarks: Tensor,
    layer: str,
    method: str,
    c1: float,
    prior_sigma: float,
    coverage: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """One forward and its attributions: logits and every per-sample attention metric of a batch.

    Args:
        model: a palbench backbone (eval mode) whose catalogue has ``layer``.
        images: ``[B, 3, S, S]`` normalised model input.
        landmarks: ``[B, 68, 2]`` in input pixels; NaN rows = no face.
        layer, method, c1, prior_sigma: the run's PAL layer, attribution method, constrained fraction, prior σ.
        coverage: ``[B, S, S]`` decoy-box coverage of the input pixels, or ``None`` (no decoy metric).

    Returns:
        ``(logits [B, K] detached, {"constrained", "free", "all"[, "share", "area"]: float64 [B]})``.
    """
    with torch.enable_grad():
        x = images.detach().requires_grad_(True)
        logits, attribution = attributed_forward(model, x, layer, method, create_graph=False)
        prior = render_priors(landmarks, x.shape[-2:], attribution.shape[-2:], prior_sigma).to(attribution.device)
        scores = alignment_scores(attribution, prior, c1)
        if coverage is not None:
            scores.update(decoy_shares(input_grad_input(logits, x), coverage))
    return logits.detach(), scores


def nanmean(values: np.ndarray) -> float | None:
    """Mean of the finite values, ``None`` when there are none (JSON ``null``)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else None
