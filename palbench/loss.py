"""The Privileged Attribution Loss (paper §III-B/C, eq. 4-6) and its channel strategies.

Eq. 4 is read as in ``docs/paper-map.md``: each map is standardised over the pixels ``(i, j)`` — zero mean and
unit L2 norm — so the PAL term of one map is the Pearson correlation between the attribution and the
prior, in ``[-1, 1]``; the loss is minus its mean over the batch. (The paper writes ``μ`` and ``σ²`` as
sums; with a standardised prior ``a*`` the only reading that makes the term scale-free, as §III-B wants —
"the same profile as the prior, regardless of its dynamics" — is the correlation.)

Channel strategies over the first ``C1 = round(c1 · C)`` channels (at least one):

* ``"all"``   — every constrained channel is correlated separately with the prior; mean over channels
  ("All Channels" when ``c1 = 1``);
* ``"mean"``  — the mean of the constrained channels is correlated with the prior: eq. 5 for ``c1 = 1``
  ("Mean"), eq. 6 otherwise, "Mean of half" for ``c1 = 0.5``.

Degenerate samples never give NaN: a map that is constant over ``(i, j)`` (e.g. a max-pooled Grad map
that vanished) or an all-zero prior (no face found) has no correlation and is masked out of the mean.
If every sample is masked the loss is an exact zero that is still connected to the graph.
"""

from __future__ import annotations

import torch
from torch import Tensor

from palbench.config.names import STRATEGIES, constrained_channels
from palbench.errors import ConfigError

#: Squared L2 norm below which a centred map counts as constant (float32 standardisation).
_EPS2 = 1e-20


def split_channels(attribution: Tensor, c1: float) -> tuple[Tensor, Tensor | None]:
    """The constrained and the free channels of an attribution (the split of eq. 6).

    Args:
        attribution: ``[B, C, H, W]``.
        c1: fraction of channels constrained, in ``(0, 1]``: ``C1 = round(c1 · C)``, at least 1.

    Returns:
        ``(constrained [B, C1, H, W], free [B, C - C1, H, W])``; ``free`` is ``None`` when ``C1 = C``.
    """
    k = constrained_channels(attribution.shape[1], c1)
    return attribution[:, :k], (attribution[:, k:] if k < attribution.shape[1] else None)


def channel_map(attribution: Tensor, strategy: str = "mean", c1: float = 0.5) -> Tensor:
    """The map(s) that PAL constrains, after the channel strategy (eq. 5-6).

    Args:
        attribution: ``[B, C, H, W]``.
        strategy: ``"mean"`` or ``"all"``.
        c1: fraction of channels constrained, in ``(0, 1]``.

    Returns:
        ``[B, 1, H, W]`` for ``"mean"`` (mean of the first C1 channels), ``[B, C1, H, W]`` for ``"all"``.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown channel strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    if attribution.dim() != 4:
        raise ConfigError(f"attribution must be [B, C, H, W], got shape {tuple(attribution.shape)}")
    first, _ = split_channels(attribution, c1)
    return first.mean(dim=1, keepdim=True) if strategy == "mean" else first


def standardise(maps: Tensor) -> tuple[Tensor, Tensor]:
    """Zero mean, unit L2 norm over the last two dims, in float32 at least (float64 stays float64).

    Args:
        maps: ``[..., H, W]``.

    Returns:
        ``(standardised [..., H, W], valid [...])`` — ``valid`` is False where the map is constant;
        there the standardised map is zero and its gradient finite.
    """
    x = maps.to(torch.promote_types(maps.dtype, torch.float32))  # half/bf16 (AMP) -> float32
    centred = x - x.mean(dim=(-2, -1), keepdim=True)
    sq = centred.pow(2).sum(dim=(-2, -1), keepdim=True)
    valid = sq > _EPS2
    # clamp keeps sqrt's gradient finite at 0; masked maps contribute nothing anyway.
    norm = sq.clamp_min(_EPS2).sqrt()
    return torch.where(valid, centred / norm, torch.zeros_like(centred)), valid[..., 0, 0]


def pal_correlation(attribution: Tensor, prior: Tensor, strategy: str = "mean", c1: float = 0.5) -> tuple[Tensor, Tensor]:
    """Per-map Pearson correlation between the constrained attribution and the prior (eq. 4).

    Args:
        attribution: ``[B, C, H, W]``.
        prior: ``[B, H, W]`` at the attribution's resolution.

    Returns:
        ``(r [B, M], valid [B, M])`` with ``M = 1`` for ``"mean"``, ``C1`` for ``"all"``.
    """
    maps = channel_map(attribution, strategy, c1)
    if prior.shape != (maps.shape[0], *maps.shape[2:]):
        raise ConfigError(
            f"prior has shape {tuple(prior.shape)}; expected [B, H, W] = "
            f"{(maps.shape[0], *maps.shape[2:])} (the attribution's batch and resolution)"
        )
    a, valid_a = standardise(maps)
    p, valid_p = standardise(prior.unsqueeze(1))
    r = (a * p).sum(dim=(-2, -1))
    return r, valid_a & valid_p


def pal_loss(attribution: Tensor, prior: Tensor, strategy: str = "mean", c1: float = 0.5) -> Tensor:
    """``Λ_PAL``: minus the mean Pearson correlation between constrained attribution maps and priors.

    Args:
        attribution: ``[B, C, H, W]`` (from :func:`palbench.attribution.layer_attribution`).
        prior: ``[B, H, W]`` (from :func:`palbench.priors.render_priors`), all-zero where no face.
        strategy: ``"mean"`` (eq. 5/6) or ``"all"`` (every constrained channel separately).
        c1: fraction of channels constrained: 1 → Mean / All Channels, 0.5 → Mean of half.

    Returns:
        Scalar in ``[-1, 1]`` (float32, or float64 for float64 input); masked maps excluded; 0 when every map is masked.
    """
    r, valid = pal_correlation(attribution, prior, strategy, c1)
    n = valid.sum()
    return -(r * valid).sum() / n.clamp_min(1)
