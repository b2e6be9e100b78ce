"""What a palbench model keeps in its state dict besides torchvision's tensors: one ``_extra_state`` entry,
``{"input_normalization": {"mean": (r, g, b), "std": (r, g, b)}}`` plus ``"resnet_layout"`` for a ResNet
(:mod:`palbench.models.layout`), so that a checkpoint reloads with the input statistics and the geometry it
was trained with.

The entry is carried by two public ``nn.Module`` hooks on the model (:func:`carry_extra_state`), not by a
subclass: every torchvision class keeps its own type and module tree. The key sits where ``nn.Module`` puts a
module's own extra state (after its parameters and buffers, before its children's keys), and loading behaves
as for a module with ``set_extra_state``: a strict load of a dict without the key reports it missing.

Used by :mod:`palbench.models.backbones` (every model it builds carries the entry) and read through
``load_state_dict`` by :mod:`palbench.models.weights` and :mod:`palbench.checkpoint`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn
from torchvision.models import ResNet

from palbench.models.layout import resnet_layout, set_resnet_layout

__all__ = ["EXTRA_STATE", "carry_extra_state", "extra_state"]

#: The state-dict key of the entry (``nn.Module``'s own name for a module's extra state).
EXTRA_STATE = "_extra_state"


def extra_state(model: nn.Module) -> dict[str, Any]:
    """The entry of ``model``: its ``input_normalization`` (tuples of floats) and, for a ResNet, its layout."""
    norm = model.input_normalization  # type: ignore[union-attr]
    state: dict[str, Any] = {"input_normalization": {k: tuple(float(x) for x in v) for k, v in norm.items()}}
    if isinstance(model, ResNet):
        state["resnet_layout"] = resnet_layout(model)
    return state


def _apply(model: nn.Module, state: Any) -> None:
    """Restore what ``state`` holds (a dict from :func:`extra_state`; anything else is ignored)."""
    if not isinstance(state, Mapping):
        return
    norm = state.get("input_normalization")
    if isinstance(norm, Mapping) and {"mean", "std"} <= set(norm):
        model.input_normalization = {k: tuple(float(x) for x in norm[k]) for k in ("mean", "std")}
    layout = state.get("resnet_layout")
    if isinstance(model, ResNet) and layout is not None:
        set_resnet_layout(model, str(layout))


def _save(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    """State-dict post-hook: add the entry, then move the children's keys after it (``nn.Module``'s order)."""
    state_dict[prefix + EXTRA_STATE] = extra_state(module)
    children = tuple(f"{prefix}{name}." for name, _ in module.named_children())
    for key in [k for k in state_dict if k.startswith(children)]:
        state_dict[key] = state_dict.pop(key)


def _load(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any, strict: bool,
          missing_keys: list[str], unexpected_keys: list[str], error_msgs: list[str]) -> None:
    """Load pre-hook: apply the entry and take it out of the (copied) dict ``load_state_dict`` walks."""
    key = prefix + EXTRA_STATE
    if key in state_dict:
        _apply(module, state_dict.pop(key))
    elif strict:
        missing_keys.append(key)


def carry_extra_state(model: nn.Module, normalization: Mapping[str, tuple[float, float, float]]) -> nn.Module:
    """Give ``model`` its ``input_normalization`` (a copy of ``normalization``) and make its state dict carry
    the entry (:func:`extra_state`) from now on; returns ``model``."""
    model.input_normalization = dict(normalization)
    model.register_state_dict_post_hook(_save)
    model.register_load_state_dict_pre_hook(_load)
    return model
