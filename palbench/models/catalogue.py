"""The layers PAL can constrain, how to capture their maps, their geometry and the FLOPs above them.

Names (ordered input → output):

* VGG (any torchvision ``VGG``): ``conv1`` … ``conv13`` in the paper's numbering (Fig. 3): the ReLU module
  right after the k-th conv (after its BatchNorm in ``vgg16_bn``), i.e. the post-activation map
  ``[B, C, H, W]``.
* ResNet (any torchvision ``ResNet``): ``stem`` (the ReLU after ``conv1``/``bn1``, before the max-pool),
  then for each stage ``layerS.0`` … ``layerS.(n-1)`` (each block's output, post-ReLU) followed by
  ``layerS`` (the stage output — the same tensor as its last block's output).
* Any other network, and any layer of these by its module path (``features.21``, ``layer3.1.relu``): the
  modules whose output is a spatial map ``[B, C, H, W]`` (:func:`spatial_modules`).

:func:`capture` hooks one of these modules so that the map of a forward stays in that forward's autograd
graph (not detached), which is what eq. 2–3 differentiate.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models import VGG, ResNet

from palbench.errors import ConfigError

__all__ = ["unwrap", "layer_catalogue", "resolve_layer", "capture", "LayerCapture", "describe_layers", "flops_above"]


def _vgg_catalogue(model: VGG) -> dict[str, nn.Module]:
    layers: dict[str, nn.Module] = {}
    pending = False  # a conv was seen and its ReLU not yet
    for m in model.features:
        if isinstance(m, nn.Conv2d):
            pending = True
        elif isinstance(m, nn.ReLU) and pending:
            layers[f"conv{len(layers) + 1}"] = m
            pending = False
    return layers


def _resnet_catalogue(model: ResNet) -> dict[str, nn.Module]:
    layers: dict[str, nn.Module] = {"stem": model.relu}
    for s, stage in enumerate((model.layer1, model.layer2, model.layer3, model.layer4), start=1):
        for b, block in enumerate(stage):
            layers[f"layer{s}.{b}"] = block
        layers[f"layer{s}"] = stage
    return layers


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside DistributedDataParallel / DataParallel (``.module``) or ``torch.compile``
    (``._orig_mod``) wrappers; hooks on its submodules fire when the wrapper is called."""
    while True:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def layer_catalogue(model: nn.Module, size: int = 64) -> dict[str, nn.Module]:
    """``{name: module}`` of the PAL layers of a model, ordered input → output.

    A torchvision VGG or ResNet gets the paper's names (module doc). Any other network gets every module
    whose output is a spatial map ``[B, C, H, W]`` for a ``[1, 3, size, size]`` input, named by its module
    path (``features.7.2``), in the order their forwards finish (:func:`spatial_modules`). Each module's
    forward output is the layer's map. DDP / DataParallel / ``torch.compile`` wrappers are looked through.
    """
    model = unwrap(model)
    if isinstance(model, VGG):
        return _vgg_catalogue(model)
    if isinstance(model, ResNet):
        return _resnet_catalogue(model)
    return spatial_modules(model, size)


def spatial_modules(model: nn.Module, size: int = 64) -> dict[str, nn.Module]:
    """``{module path: module}`` of every submodule whose output is one 4-D tensor ``[B, C, H, W]`` (C, H,
    W > 0) for a ``[1, 3, size, size]`` zero input (one eval-mode, no-grad forward), in the order their
    forwards finish; a module called several times counts at its first call."""
    model = unwrap(model)
    names = {id(m): n for n, m in model.named_modules() if n}
    found: dict[str, nn.Module] = {}

    def hook(module: nn.Module, _inputs: Any, output: Any) -> None:
        name = names.get(id(module))
        if name is not None and name not in found and isinstance(output, torch.Tensor) and output.dim() == 4:
            found[name] = module

    handles = [m.register_forward_hook(hook) for n, m in model.named_modules() if n]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(_probe(model, size))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    if not found:
        raise ConfigError(f"{type(model).__name__}: no submodule outputs a spatial map [B, C, H, W]; PAL needs one")
    return found


def resolve_layer(model: nn.Module, name: str, size: int = 64) -> nn.Module:
    """The module whose output is layer ``name``'s map: a catalogue name (:func:`layer_catalogue`) or any
    module path whose output is a spatial map ``[B, C, H, W]`` (checked with one ``size``-pixel probe
    forward). Anything else raises a one-line ConfigError listing the valid names."""
    layers = layer_catalogue(model, size)
    if name in layers:
        return layers[name]
    model = unwrap(model)
    spatial = spatial_modules(model, size)
    if name in spatial:
        return spatial[name]
    try:
        model.get_submodule(name)
        why = "its output is not a spatial map [B, C, H, W]"
    except AttributeError:
        why = "no such layer or module path"
    paths = [p for p in spatial if p not in layers]
    more = f"; or a module path with a spatial output, e.g. {', '.join(paths[:8])}" if paths else ""
    raise ConfigError(f"layer {name!r}: {why}; expected one of {', '.join(layers)}{more}")


def _layer_module(model: nn.Module, name: str) -> nn.Module:
    """:func:`resolve_layer` without its probe forward (every training step enters :func:`capture`): a VGG /
    ResNet catalogue name or a module path; the capture hook checks that the output is spatial."""
    inner = unwrap(model)
    if isinstance(inner, (VGG, ResNet)):
        layers = layer_catalogue(inner)
        if name in layers:
            return layers[name]
    try:
        return inner.get_submodule(name)
    except AttributeError:
        return resolve_layer(model, name)  # raises, listing the valid names


class LayerCapture:
    """Holds the output of the hooked module from the latest forward (see :func:`capture`)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._features: torch.Tensor | None = None

    @property
    def features(self) -> torch.Tensor:
        """``[B, C, H, W]`` map of the latest forward, attached to its autograd graph."""
        if self._features is None:
            raise ConfigError(f"layer {self.name!r}: no forward has run inside capture() yet")
        return self._features

    def _hook(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            raise ConfigError(f"layer {self.name!r}: its output is not a spatial map [B, C, H, W]; "
                              "`palbench layers --arch ARCH` lists the layers PAL can constrain")
        self._features = output  # NOT detached: eq. 2-3 differentiate the logits w.r.t. this very tensor


@contextmanager
def capture(model: nn.Module, name: str) -> Iterator[LayerCapture]:
    """Capture layer ``name``'s map during forwards inside the block.

    Example::

        with capture(model, "conv10") as cap:
            logits = model(x)            # [B, K]
            feats = cap.features         # [B, C, H, W], in logits' graph
            a = torch.autograd.grad(logits.sum(), feats, create_graph=True)[0]

    The hook is removed on exit; ``cap.features`` keeps the last captured tensor.
    """
    module = _layer_module(model, name)
    cap = LayerCapture(name)
    handle = module.register_forward_hook(cap._hook)
    try:
        yield cap
    finally:
        handle.remove()


def _probe(model: nn.Module, size: int) -> torch.Tensor:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"size {size!r}: expected a positive integer number of pixels")
    p = next(model.parameters())
    return torch.zeros(1, 3, size, size, dtype=p.dtype, device=p.device)


def _before_pool(model: nn.Module) -> set[str]:
    """Names of catalogue layers whose output goes straight into a max-pool (paper Fig. 3 vertical lines)."""
    names: set[str] = set()
    model = unwrap(model)
    layers = layer_catalogue(model)
    if isinstance(model, VGG):
        seq = list(model.features)
        index = {id(m): i for i, m in enumerate(seq)}
        for name, m in layers.items():
            i = index[id(m)]
            if i + 1 < len(seq) and isinstance(seq[i + 1], nn.MaxPool2d):
                names.add(name)
    elif isinstance(model, ResNet) and isinstance(model.maxpool, nn.MaxPool2d):
        names.add("stem")
    return names


def describe_layers(model: nn.Module, size: int, paths: bool = False) -> list[dict[str, Any]]:
    """One row per catalogue layer for a ``[1, 3, size, size]`` input, in catalogue order (``paths``: per
    module path with a spatial output, :func:`spatial_modules`, in forward order).

    Returns:
        ``[{"name": str, "channels": int, "height": int, "width": int, "before_pool": bool}, ...]`` from one
        forward of a zero batch (eval mode, no grad; the model's train/eval mode is restored).
    """
    model = unwrap(model)
    layers = spatial_modules(model, size) if paths else layer_catalogue(model, size)
    x = _probe(model, size)
    shapes: dict[str, tuple[int, ...]] = {}
    handles = [
        m.register_forward_hook(lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape)))
        for name, m in layers.items()
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    pooled = _before_pool(model) if not paths or isinstance(model, (VGG, ResNet)) else set()
    if paths:  # a path that is also a catalogue layer precedes a pool when that layer does
        pooled = {p for p, m in layers.items() for n in pooled if m is layer_catalogue(model).get(n)}
    return [
        {
            "name": name,
            "channels": shapes[name][1],
            "height": shapes[name][2],
            "width": shapes[name][3],
            "before_pool": name in pooled,
        }
        for name in layers
    ]


def flops_above(model: nn.Module, layer: str, size: int) -> tuple[int, int]:
    """``(FLOPs executed after layer's output is produced, total FLOPs)`` of one forward of ``[1, 3, size, size]``.

    Counted by :class:`torch.utils.flop_counter.FlopCounterMode` in execution order: convolutions and matrix
    products at 2 FLOPs per multiply-accumulate, biases, BatchNorm, ReLU, pooling and residual additions not
    counted. For VGG ``conv13`` the first number is exactly the classifier's ``Σ 2·in·out``. PAL's extra work
    per step is a double backward through this upper part.
    """
    model = unwrap(model)
    module = resolve_layer(model, layer)
    x = _probe(model, size).to("meta")
    # Shapes are all FlopCounterMode needs: run on the meta device (no arithmetic, no copy of the weights).
    meta = {k: torch.empty_like(v, device="meta") for k, v in [*model.named_parameters(), *model.named_buffers()]}
    at_layer: list[int] = []
    counter = FlopCounterMode(display=False)
    handle = module.register_forward_hook(lambda *_: at_layer.append(counter.get_total_flops()))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), counter:
            functional_call(model, meta, (x,))
    finally:
        model.train(was_training)
        handle.remove()
    if not at_layer:
        raise ConfigError(f"layer {layer!r}: its module did not run in the forward")
    total = counter.get_total_flops()
    return total - at_layer[-1], total
