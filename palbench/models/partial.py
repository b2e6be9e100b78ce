"""The *partial* start (issue 20): a pretraining's lower layers kept, every layer above re-initialised.

The network then knows low-level face structure but must learn what decides the class, between training from
scratch (nothing kept) and fine-tuning (everything kept). ``keep_up_to`` names the last kept layer in the PAL
layer catalogue (``conv4``, ``layer2.1``, a module path): every parameter and buffer of a module whose forward
finishes at or before that layer's keeps the loaded weights; every other one — the layers above and the head —
gets back the value it had at construction, i.e. exactly the initialisation the same seed gives a run from
scratch, so a partial run and a scratch run of one seed start their upper layers alike.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from palbench.models.catalogue import _probe_shapes, probe_size, resolve_layer, unwrap


def kept_and_reset(model: nn.Module, keep_up_to: str, size: int | None = None) -> tuple[list[str], list[str]]:
    """``(kept, reset)``: the ``state_dict`` keys (parameters and buffers) of ``model`` whose module's forward
    finishes at or before layer ``keep_up_to``'s (kept), and the others (reset), each in state_dict order.

    Order comes from one eval-mode probe forward of a ``size``-pixel image (the same probe the layer
    catalogue uses); a module that never runs in the forward counts as above the layer."""
    model = unwrap(model)
    layer = resolve_layer(model, keep_up_to, size)
    finished = list(_probe_shapes(model, probe_size(model, size)))  # module paths in the order they finish
    names = {id(m): n for n, m in model.named_modules()}
    cut = finished.index(names[id(layer)])
    below = set(finished[: cut + 1])
    # a module is below the cut when it finished before the layer, or is inside a module that did
    kept, reset = [], []
    for key in model.state_dict(keep_vars=True):
        owner = key.rsplit(".", 1)[0] if "." in key else ""
        if key.endswith("_extra_state"):
            continue
        parts = owner.split(".") if owner else []
        inside = any(".".join(parts[:i]) in below for i in range(1, len(parts) + 1))
        (kept if inside else reset).append(key)
    return kept, reset


def reset_above(model: nn.Module, initial: Mapping[str, torch.Tensor], keep_up_to: str,
                size: int | None = None) -> list[str]:
    """Give every parameter and buffer above layer ``keep_up_to`` (:func:`kept_and_reset`) its value in
    ``initial`` (the model's ``state_dict`` before the weights were loaded), in place; return their keys."""
    _, reset = kept_and_reset(model, keep_up_to, size)
    state = unwrap(model).state_dict()
    with torch.no_grad():
        for key in reset:
            state[key].copy_(initial[key])
    return reset
