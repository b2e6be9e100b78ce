"""Layer outputs of any layout as the ``[B, C, H, W]`` maps that attributions and the PAL term work on.

palbench trains on square images, so a layer's spatial map is square too. Three layouts are read:

* ``nchw``   ``[B, C, H, W]`` with ``H = W``: convolutional networks (VGG, ResNet, EfficientNet, ...).
* ``nhwc``   ``[B, H, W, C]`` with ``H = W``: channels-last blocks (torchvision's Swin stages, the inside of
  ConvNeXt blocks). A 4-D output is read as ``nhwc`` when its axes 1 and 2 are equal and axis 3 differs,
  and as ``nchw`` otherwise; where all three are equal (C = H = W) the probe of
  :func:`palbench.models.catalogue.spatial_modules` decides with a second input size (the axis whose length
  does not change with the input is the channel axis) and records it (:func:`record_layout`).
* ``tokens`` ``[B, N, D]``: transformer tokens (ViT encoder blocks). The last ``S²`` tokens, ``S = ⌊√N⌋``,
  are the ``S × S`` patch grid in row-major order; the first ``N − S²`` (the class token, register tokens;
  torchvision's ViT puts its class token first) are dropped from the map. ``D`` is the channel axis.

:func:`to_map` gives the ``[B, C, H, W]`` view and :func:`from_map` puts a map back into the layout, so that
a forward hook can return ``from_map(maps, output)``: the rest of the network then computes from ``maps``
(the values are unchanged), and the gradient of the logits w.r.t. ``maps`` — eq. 2–3 — is defined.
"""

from __future__ import annotations

import math
import weakref

import torch
from torch import nn

__all__ = ["LAYOUTS", "layout_of", "to_map", "from_map", "record_layout"]

LAYOUTS = ("nchw", "nhwc", "tokens")

# Layouts the probe decided for modules whose output shape alone is ambiguous (C = H = W).
_RECORDED: weakref.WeakKeyDictionary[nn.Module, str] = weakref.WeakKeyDictionary()


def record_layout(module: nn.Module, layout: str) -> None:
    """Remember ``module``'s output layout (decided by a probe) for :func:`layout_of`."""
    _RECORDED[module] = layout


def layout_of(shape: tuple[int, ...], module: nn.Module | None = None) -> str | None:
    """The layout of an output of ``shape`` (from ``module``): ``"nchw"``, ``"nhwc"``, ``"tokens"``, or
    ``None`` when it is not a spatial map with at least 2×2 positions (another rank, a 1×1 map, fewer than
    4 tokens, a non-square grid)."""
    shape = tuple(shape)
    if len(shape) == 3:
        return "tokens" if shape[1] >= 4 and shape[2] >= 1 else None
    if len(shape) != 4 or min(shape) < 1:
        return None
    if module is not None and module in _RECORDED:
        layout = _RECORDED[module]
    elif shape[1] == shape[2] and shape[3] != shape[2]:
        layout = "nhwc"
    else:
        layout = "nchw"
    h, w = (shape[1], shape[2]) if layout == "nhwc" else (shape[2], shape[3])
    return layout if h == w and h >= 2 else None


def to_map(output: torch.Tensor, layout: str) -> torch.Tensor:
    """``output`` in ``layout`` → ``[B, C, H, W]`` (a view for ``nchw``/``nhwc``; for ``tokens`` the patch
    tokens reshaped, differentiable)."""
    if layout == "nchw":
        return output
    if layout == "nhwc":
        return output.permute(0, 3, 1, 2)
    b, n, d = output.shape
    s = math.isqrt(n)
    return output[:, n - s * s :].transpose(1, 2).reshape(b, d, s, s)


def from_map(maps: torch.Tensor, output: torch.Tensor, layout: str) -> torch.Tensor:
    """The inverse of :func:`to_map`: ``maps [B, C, H, W]`` back in ``output``'s layout, the dropped tokens
    of ``output`` put back in front. Equal in value to ``output``; computed from ``maps``."""
    if layout == "nchw":
        return maps
    if layout == "nhwc":
        return maps.permute(0, 2, 3, 1)
    extra = output.shape[1] - maps.shape[2] * maps.shape[3]
    return torch.cat([output[:, :extra], maps.flatten(2).transpose(1, 2)], dim=1)
