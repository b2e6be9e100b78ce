"""The training objective ``CE + λ·Λ_PAL`` from ONE forward pass (paper Fig. 1).

The layer's feature map is captured during the ordinary forward that gives the logits; the attribution
is taken from it with ``create_graph=True``; the prior is rendered at the attribution's resolution from
the (augmented) landmarks. Training, evaluation, the speed benchmarks and the README example share this.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from palbench.attribution import METHODS, layer_attribution
from palbench.errors import ConfigError
from palbench.loss import STRATEGIES, constrained_channels, pal_loss
from palbench.models import capture
from palbench.priors import render_priors


@dataclass(frozen=True)
class PalConfig:
    """PAL settings of one run.

    Attributes:
        layer: catalogue name of the constrained layer (``conv10``, ``layer4.2``, ...).
        method: attribution method (``grad`` eq. 2, ``grad_input`` eq. 3, ``gradcam``).
        strategy: channel strategy (``mean`` eq. 5-6, ``all``).
        c1: fraction of constrained channels, in (0, 1] (0.5 = Mean of half).
        weight: λ, the weight of the PAL term; 0 = baseline (CE only, same forward).
        sigma: prior Gaussian σ in pixels of the attribution map (paper: 3).
    """

    layer: str
    method: str = "grad_input"
    strategy: str = "mean"
    c1: float = 0.5
    weight: float = 1.0
    sigma: float = 3.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown attribution method {self.method!r}; expected one of {', '.join(METHODS)}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"unknown channel strategy {self.strategy!r}; expected one of {', '.join(STRATEGIES)}")
        constrained_channels(1, self.c1)  # validates c1 in (0, 1]
        if not self.weight >= 0:
            raise ConfigError(f"PAL weight must be >= 0, got {self.weight!r}")
        if not self.sigma > 0:
            raise ConfigError(f"prior sigma must be > 0, got {self.sigma!r}")


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
        ``{"loss", "ce", "pal", "logits"}``; ``pal`` is a detached 0 for the baseline (weight 0).
    """
    with capture(model, config.layer) as cap:
        logits = model(images)
    ce = nn.functional.cross_entropy(logits, labels)
    if config.weight == 0:
        return {"loss": ce, "ce": ce, "pal": torch.zeros((), device=ce.device), "logits": logits}
    attribution = layer_attribution(logits, cap.features, config.method, create_graph)
    prior = render_priors(landmarks, images.shape[-2:], attribution.shape[-2:], config.sigma)
    pal = pal_loss(attribution, prior.to(attribution.device), config.strategy, config.c1)
    return {"loss": ce + config.weight * pal, "ce": ce, "pal": pal, "logits": logits}
