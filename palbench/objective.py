"""The training objective ``CE + λ·Λ_PAL`` from ONE forward pass (paper Fig. 1).

The layer's feature map is captured during the ordinary forward that gives the logits; the attribution
is taken from it (:func:`attributed_forward`, with ``create_graph=True`` for training); the prior is
rendered at the attribution's resolution from the (augmented) landmarks. Training, the alignment metrics,
the attribution gallery of the reports, the speed benchmarks and the README example share this.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from palbench.attribution import layer_attribution
from palbench.config import PalConfig
from palbench.loss import pal_loss
from palbench.models import capture
from palbench.priors import render_priors

__all__ = ["PalConfig", "attributed_forward", "pal_objective"]


def attributed_forward(
    model: nn.Module, images: Tensor, layer: str, method: str, create_graph: bool = True, attribute: bool = True
) -> tuple[Tensor, Tensor | None]:
    """One forward and the attribution of ``layer``'s output (eq. 2-3) taken from that same forward.

    Args:
        model: a backbone whose catalogue contains ``layer``.
        images: ``[B, 3, H, W]`` model input (give it ``requires_grad`` to differentiate w.r.t. the input too).
        layer, method: the constrained layer and the attribution method.
        create_graph: ``True`` for training (the attribution is differentiable w.r.t. the parameters);
            ``False`` for measuring (gradients are still enabled for the attribution itself).
        attribute: ``False`` gives the logits alone (the baseline's training step).

    Returns:
        ``(logits [B, K], attribution [B, C, h, w] or None)``.
    """
    if not attribute:
        return model(images), None
    with torch.enable_grad(), capture(model, layer) as cap:
        logits = model(images)
        attribution = layer_attribution(logits, cap.features, method, create_graph)
    return logits, attribution


def pal_objective(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    landmarks: Tensor,
    config: PalConfig,
    create_graph: bool = True,
) -> dict[str, Tensor]:
    """One forward, cross-entropy and the PAL term.

    Args:
        model: a backbone whose catalogue contains ``config.layer``.
        images: ``[B, 3, H, W]`` (normalised).
        labels: ``[B]`` int64.
        landmarks: ``[B, 68, 2]`` (x, y) pixel coordinates in ``images``; NaN rows = no face (masked).
        config: PAL settings.
        create_graph: ``False`` only for evaluation (no gradient through the attribution).

    Returns:
        ``{"loss", "ce", "pal", "logits"}``; ``pal`` is a detached 0 for the baseline (``pal_weight`` 0).
    """
    pal_on = config.pal_weight != 0
    logits, attribution = attributed_forward(model, images, config.layer, config.method, create_graph, pal_on)
    ce = nn.functional.cross_entropy(logits, labels)
    if attribution is None:
        return {"loss": ce, "ce": ce, "pal": torch.zeros((), device=ce.device), "logits": logits}
    prior = render_priors(landmarks, images.shape[-2:], attribution.shape[-2:], config.prior_sigma)
    pal = pal_loss(attribution, prior.to(attribution.device), config.strategy, config.c1)
    return {"loss": ce + config.pal_weight * pal, "ce": ce, "pal": pal, "logits": logits}
