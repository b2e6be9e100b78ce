"""Differentiable layer attributions (paper §III-A, eq. 2-3), and two methods beyond the paper.

PAL constrains the attribution of a feature map ``f^l`` (the post-activation output of layer ``l``)
w.r.t. the sum of all logits ``Σ_o f_o``. For the PAL term to train the network, the attribution must be
part of the autograd graph: it is computed with ``create_graph=True`` from the SAME forward pass that
produced the logits, so one training step costs one forward, plus the backward of the part of the
network above ``l`` twice (first order for the attribution, second order for its gradient).

Two facts worth knowing (tested in ``tests/test_attribution.py``):

* ``grad_input`` (eq. 3) reaches the layers below ``l`` through the factor ``f^l`` and the layers above
  ``l`` through the gradient factor (the second-order path).
* ``grad`` (eq. 2) in a piecewise-linear head (ReLU, max-pool, eval-mode BatchNorm, linear layers) is
  a piecewise-constant function of the layers below ``l``: the ReLU/max-pool masks change only in
  jumps, so its derivative w.r.t. the parameters below ``l`` is exactly zero. With ``grad`` the PAL term
  therefore trains only the layers ABOVE the chosen layer; the layers below get the cross-entropy
  gradient alone. (Train-mode BatchNorm above ``l`` couples samples through batch statistics and breaks
  this.) With ``create_graph=False``, ``grad`` carries no graph at all and PAL trains nothing — the bug
  found in public reproductions.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from palbench.config.names import METHODS
from palbench.errors import ConfigError


def output_gradient(output: Tensor, features: Tensor, create_graph: bool = True) -> Tensor:
    """``∂ Σ_o f_o / ∂ f^l``: the gradient of the sum of all logits w.r.t. a layer's feature map.

    Args:
        output: logits ``[B, K]``.
        features: the layer's post-activation map ``[B, C, H, W]`` from the same forward pass.
        create_graph: keep the graph so the result can be differentiated w.r.t. the parameters.

    Returns:
        ``[B, C, H, W]``. Samples do not interact (no train-mode BatchNorm above ``features``), so
        summing over the batch gives each sample its own gradient.
    """
    if not features.requires_grad:
        raise ConfigError(
            "layer_attribution: `features` is not part of the autograd graph; capture the layer's output "
            "during the forward that produced `output` (palbench.models.capture), without detaching it"
        )
    # retain_graph: the cross-entropy backward still runs through this forward afterwards.
    (grad,) = torch.autograd.grad(output.sum(), features, create_graph=create_graph, retain_graph=True)
    return grad


def layer_attribution(
    output: Tensor, features: Tensor, method: str = "grad_input", create_graph: bool = True
) -> Tensor:
    """Attribution ``a^l`` of a layer's feature map w.r.t. ``Σ_o f_o`` (paper eq. 2-3).

    Args:
        output: logits ``[B, K]``.
        features: the layer's post-activation map ``[B, C, H, W]`` captured in the SAME forward pass.
        method: ``"grad"`` (eq. 2): ``|∂Σf_o/∂f^l|``; ``"grad_input"`` (eq. 3): ``|∂Σf_o/∂f^l| · f^l``;
            ``"gradcam"``: per-channel Grad-CAM terms ``w_c · f^l_c`` with ``w_c`` the spatial mean of
            ``∂Σf_o/∂f^l_c`` (Selvaraju et al.); their channel sum is Grad-CAM's map before its ReLU.
        create_graph: with ``True`` (training) the result is differentiable w.r.t. the parameters.

    Returns:
        ``[B, C, H, W]``.
    """
    if method not in METHODS:
        raise ConfigError(
            f"unknown attribution method {method!r}; expected one of {', '.join(METHODS)} "
            "(integrated_gradients needs the model: palbench.attribution.integrated_gradients)"
        )
    grad = output_gradient(output, features, create_graph)
    if method == "grad":
        return grad.abs()
    if method == "grad_input":
        return grad.abs() * features
    return grad.mean(dim=(2, 3), keepdim=True) * features


def integrated_gradients(
    head: Callable[[Tensor], Tensor],
    features: Tensor,
    steps: int = 16,
    create_graph: bool = True,
) -> Tensor:
    """Integrated Gradients at a layer (Sundararajan et al., 2017), zero baseline, differentiable.

    ``IG = f^l · (1/k) Σ_{s=1..k} ∂Σ_o head(α_s f^l)_o / ∂(α_s f^l)``, with the Riemann midpoints
    ``α_s = (s - 1/2)/k``. Unlike eq. 2-3 this needs ``k`` extra passes through the part of the
    network above the layer, so it takes that part as a callable.

    Args:
        head: maps a feature batch ``[n, C, H, W]`` to logits ``[n, K]`` (the network above the layer).
        features: ``[B, C, H, W]``, in the autograd graph when ``create_graph`` is used for training.
        steps: number of interpolation steps ``k``.
        create_graph: keep the graph so the result is differentiable w.r.t. the parameters.

    Returns:
        ``[B, C, H, W]``. (Riemann-midpoint rule, as captum's ``method="riemann_middle"``.)
    """
    if steps < 1:
        raise ConfigError(f"integrated_gradients: steps must be >= 1, got {steps}")
    b = features.shape[0]
    alphas = (torch.arange(steps, dtype=features.dtype, device=features.device) + 0.5) / steps
    scaled = (alphas.view(steps, 1, 1, 1, 1) * features.unsqueeze(0)).reshape(steps * b, *features.shape[1:])
    if not scaled.requires_grad:
        scaled.requires_grad_(True)
    (grad,) = torch.autograd.grad(head(scaled).sum(), scaled, create_graph=create_graph)
    return features * grad.view(steps, *features.shape).mean(dim=0)
