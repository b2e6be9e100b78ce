"""The layers PAL can constrain, how to capture their maps, their geometry and the FLOPs above them.

Names (ordered input → output):

* VGG (any torchvision ``VGG``): ``conv1`` … ``conv13`` in the paper's numbering (Fig. 3): the ReLU module
  right after the k-th conv (after its BatchNorm in ``vgg16_bn``), i.e. the post-activation map
  ``[B, C, H, W]``.
* ResNet (any torchvision ``ResNet``): ``stem`` (the ReLU after ``conv1``/``bn1``, before the max-pool),
  then for each stage ``layerS.0`` … ``layerS.(n-1)`` (each block's output, post-ReLU) followed by
  ``layerS`` (the stage output — the same tensor as its last block's output).
* dlib's face ResNet (``dlib_face_resnet``, :class:`~palbench.models.dlib_face.DlibFaceNet`): named as a
  ResNet, ``stem`` (conv 7×7/2 · affine · ReLU, before the max-pool), then ``layer1.0`` … ``layer1.2``,
  ``layer1``, ``layer2.0`` … ``layer2.3``, ``layer2``, …, ``layer5.0``, ``layer5``.
* Any other network (ConvNeXt, EfficientNet, MobileNet, RegNet, ViT, Swin, ...): its blocks, named by their
  module paths, in forward order (:func:`blocks`): every module with a spatial output that is a step of an
  ``nn.Sequential`` / ``nn.ModuleList`` (``features.3.1``, ``encoder.layers.encoder_layer_6``), not itself
  such a container and not inside another block.
* Any layer of any network by its module path (``features.21``, ``layer3.1.relu``): the modules whose
  output is a spatial map (:func:`spatial_modules`): ``[B, C, H, W]``, channels-last ``[B, H, W, C]`` or
  transformer tokens ``[B, N, D]``, read as ``[B, C, H, W]`` by the rules of :mod:`palbench.models.tokens`.

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
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models import VGG, ResNet

from palbench.errors import ConfigError
from palbench.models.dlib_face import CHIP_SIZE, STAGES, DlibFaceNet
from palbench.models.tokens import from_map, layout_of, record_layout, to_map

__all__ = ["unwrap", "layer_catalogue", "resolve_layer", "capture", "LayerCapture", "describe_layers", "flops_above",
           "blocks", "spatial_modules"]


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


def _residual_catalogue(stem: nn.Module, stages: list[nn.Module]) -> dict[str, nn.Module]:
    """``stem``, then ``layerS.B`` for each block of stage S (1-based) followed by ``layerS``."""
    layers: dict[str, nn.Module] = {"stem": stem}
    for s, stage in enumerate(stages, start=1):
        for b, block in enumerate(stage):
            layers[f"layer{s}.{b}"] = block
        layers[f"layer{s}"] = stage
    return layers


def _resnet_catalogue(model: ResNet) -> dict[str, nn.Module]:
    return _residual_catalogue(model.relu, [model.layer1, model.layer2, model.layer3, model.layer4])


def _dlib_catalogue(model: DlibFaceNet) -> dict[str, nn.Module]:
    return _residual_catalogue(model.stem, [getattr(model, name) for name, *_ in STAGES])


#: The networks whose catalogue is named without a probe forward (the paper's names, and ResNet's for dlib's).
_NAMED = (VGG, ResNet, DlibFaceNet)


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside DistributedDataParallel / DataParallel (``.module``) or ``torch.compile``
    (``._orig_mod``) wrappers; hooks on its submodules fire when the wrapper is called."""
    while True:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def layer_catalogue(model: nn.Module, size: int | None = None) -> dict[str, nn.Module]:
    """``{name: module}`` of the PAL layers of a model, ordered input → output.

    A torchvision VGG or ResNet gets the paper's names, dlib's face ResNet the ResNet names (module doc). Any
    other network gets its blocks (:func:`blocks`) for a ``[2, 3, size, size]`` input, named by their module
    paths. Each module's forward output is the layer's map. DDP / DataParallel / ``torch.compile`` wrappers are looked through.
    """
    model = unwrap(model)
    if isinstance(model, VGG):
        return _vgg_catalogue(model)
    if isinstance(model, ResNet):
        return _resnet_catalogue(model)
    if isinstance(model, DlibFaceNet):
        return _dlib_catalogue(model)
    return blocks(model, size)


_CONTAINERS = (nn.Sequential, nn.ModuleList)


def blocks(model: nn.Module, size: int | None = None) -> dict[str, nn.Module]:
    """The automatic catalogue: ``{module path: module}`` of a network's blocks, in forward order.

    A block is a module with a spatial output (:func:`spatial_modules`) that is a step of an
    ``nn.Sequential`` / ``nn.ModuleList`` (subclasses included) and not such a container itself, or a
    top-level module with a spatial output; nothing inside a block is listed. A top-level module that holds
    a stack (a container with at least 3 spatial steps of one class, like ViT's ``encoder.layers``) is a
    trunk: its insides are listed instead.

    Examples: ConvNeXt ``features.1.0`` (a CNBlock), EfficientNet ``features.2.1`` (an MBConv), ViT
    ``encoder.layers.encoder_layer_6``, Swin ``features.5.3``, RegNet ``trunk_output.block3.block3-1``,
    GoogLeNet ``inception4c``.
    """
    model = unwrap(model)
    spatial = spatial_modules(model, size)
    spatial_ids = {id(m) for m in spatial.values()}
    found: set[str] = set()

    def is_stack(m: nn.Module) -> bool:
        if not isinstance(m, _CONTAINERS):
            return False
        counts: dict[type, int] = {}
        for child in m.children():
            if id(child) in spatial_ids:
                counts[type(child)] = counts.get(type(child), 0) + 1
        return max(counts.values(), default=0) >= 3

    def walk(module: nn.Module, prefix: str, top: bool) -> None:
        for name, child in module.named_children():
            path = prefix + name
            if isinstance(child, _CONTAINERS):
                walk(child, path + ".", top=False)
            elif path in spatial and not (top and any(is_stack(d) for d in child.modules())):
                found.add(path)
            else:  # a wrapper without a spatial output, or a trunk
                walk(child, path + ".", top=top)

    walk(model, "", top=True)
    return {p: m for p, m in spatial.items() if p in found} or spatial


def spatial_modules(model: nn.Module, size: int | None = None) -> dict[str, nn.Module]:
    """``{module path: module}`` of every submodule whose output is a spatial map for a ``[2, 3, size, size]``
    zero input: ``[B, C, H, W]``, ``[B, H, W, C]`` or tokens ``[B, N, D]`` with at least 2×2 positions and the
    batch on axis 0 (:func:`palbench.models.tokens.layout_of`), in the order their forwards finish (one
    eval-mode, no-grad forward; a module called several times counts at its first call). Where a 4-D shape
    is ambiguous (C = H = W) a second forward at ``2 × size`` decides the channel axis. ``size`` defaults to
    :func:`probe_size`."""
    model = unwrap(model)
    size = probe_size(model, size)
    shapes = _probe_shapes(model, size)
    found = {n: m for n, (m, shape) in shapes.items() if shape[0] == 2 and layout_of(shape)}
    ambiguous = [n for n in found if len(shapes[n][1]) == 4 and len(set(shapes[n][1][1:])) == 1]
    if ambiguous:
        try:
            bigger = _probe_shapes(model, 2 * size)
        except Exception:  # noqa: BLE001 - a fixed-size model (ViT): keep the default reading, nchw
            bigger = {}
        for n in ambiguous:
            if n in bigger:
                record_layout(found[n], "nhwc" if bigger[n][1][3] == shapes[n][1][3] else "nchw")
    if not found:
        raise ConfigError(f"{type(model).__name__}: no submodule outputs a spatial map ([B, C, H, W], [B, H, W, C] "
                          "or tokens [B, N, D]); PAL needs one")
    return found


def _probe_shapes(model: nn.Module, size: int) -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    """``{path: (module, output shape)}`` of every submodule with a tensor output, for one eval-mode, no-grad
    forward of a ``[2, 3, size, size]`` zero batch, in the order the forwards finish (first call)."""
    names = {id(m): n for n, m in model.named_modules() if n}
    shapes: dict[str, tuple[nn.Module, tuple[int, ...]]] = {}

    def hook(module: nn.Module, _inputs: Any, output: Any) -> None:
        name = names.get(id(module))
        if name is not None and name not in shapes and isinstance(output, torch.Tensor):
            shapes[name] = (module, tuple(output.shape))

    handles = [m.register_forward_hook(hook) for n, m in model.named_modules() if n]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(_probe(model, size, batch=2))
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - a model that cannot take this input size: say so in one line
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{getattr(model, 'arch', type(model).__name__)}: a forward of a {size}×{size} image "
                          f"failed ({msg}); try another size") from None
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return shapes


def resolve_layer(model: nn.Module, name: str, size: int | None = None) -> nn.Module:
    """The module whose output is layer ``name``'s map: a catalogue name (:func:`layer_catalogue`) or any
    module path whose output is a spatial map ``[B, C, H, W]`` (checked with one ``size``-pixel probe
    forward). Anything else raises a one-line ConfigError listing the valid names."""
    model = unwrap(model)
    if isinstance(model, _NAMED):  # the paper's names (no probe); any other catalogue's are module paths
        named = layer_catalogue(model)
        if name in named:
            return named[name]
    spatial = spatial_modules(model, size)
    if name in spatial:
        return spatial[name]
    layers = layer_catalogue(model, size)  # only for the error message
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
    ResNet / dlib catalogue name or a module path; the capture hook checks that the output is spatial."""
    inner = unwrap(model)
    if isinstance(inner, _NAMED):
        layers = layer_catalogue(inner)
        if name in layers:
            return layers[name]
    try:
        return inner.get_submodule(name)
    except AttributeError:
        return resolve_layer(model, name)  # raises, listing the valid names


class LayerCapture:
    """Holds the map of the hooked module from the latest forward (see :func:`capture`)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._features: torch.Tensor | None = None

    @property
    def features(self) -> torch.Tensor:
        """``[B, C, H, W]`` map of the latest forward, attached to its autograd graph."""
        if self._features is None:
            raise ConfigError(f"layer {self.name!r}: no forward has run inside capture() yet")
        return self._features

    def _hook(self, module: nn.Module, inputs: Any, output: Any) -> torch.Tensor | None:
        layout = layout_of(output.shape, module) if isinstance(output, torch.Tensor) else None
        if layout is None:
            raise ConfigError(f"layer {self.name!r}: its output is not a spatial map ([B, C, H, W], [B, H, W, C] or "
                              "tokens [B, N, D]); `palbench layers --arch ARCH --paths` lists the layers PAL can constrain")
        maps = to_map(output, layout)
        self._features = maps  # NOT detached: eq. 2-3 differentiate the logits w.r.t. this very tensor
        # Another layout: the network goes on from `maps` (same values), so that the logits depend on it.
        return None if layout == "nchw" else from_map(maps, output, layout)


@contextmanager
def capture(model: nn.Module, name: str) -> Iterator[LayerCapture]:
    """Capture layer ``name``'s map during forwards inside the block.

    Example::

        with capture(model, "conv10") as cap:
            logits = model(x)            # [B, K]
            feats = cap.features         # [B, C, H, W], in logits' graph
            a = torch.autograd.grad(logits.sum(), feats, create_graph=True)[0]

    The hook is removed on exit; ``cap.features`` keeps the last captured tensor. Inside the block,
    ``scaled_dot_product_attention`` uses its math kernel: torch's fused CPU attention kernels have no
    double backward, which the PAL term needs (attention layers above the constrained one, as in ViT).
    """
    module = _layer_module(model, name)
    cap = LayerCapture(name)
    handle = module.register_forward_hook(cap._hook)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield cap
    finally:
        handle.remove()


def probe_size(model: nn.Module, size: int | None = None) -> int:
    """``size``, or for ``None`` the input size the model was built for (torchvision ViT's ``image_size``: it
    takes no other; dlib's face ResNet: its 150 px chip, it takes no side under 103) or 64 px."""
    if size is not None:
        return size
    if isinstance(unwrap(model), DlibFaceNet):
        return CHIP_SIZE
    own = getattr(unwrap(model), "image_size", None)
    return own if isinstance(own, int) and not isinstance(own, bool) else 64


def _probe(model: nn.Module, size: int, batch: int = 1) -> torch.Tensor:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"size {size!r}: expected a positive integer number of pixels")
    p = next(model.parameters())
    return torch.zeros(batch, 3, size, size, dtype=p.dtype, device=p.device)


def _before_pool(model: nn.Module, size: int | None = None) -> set[str]:
    """Names of catalogue layers whose output goes straight into a max-pool (paper Fig. 3 vertical lines)."""
    names: set[str] = set()
    model = unwrap(model)
    layers = layer_catalogue(model, size)
    if isinstance(model, VGG):
        seq = list(model.features)
        index = {id(m): i for i, m in enumerate(seq)}
        for name, m in layers.items():
            i = index[id(m)]
            if i + 1 < len(seq) and isinstance(seq[i + 1], nn.MaxPool2d):
                names.add(name)
    elif isinstance(model, (ResNet, DlibFaceNet)) and isinstance(model.maxpool, nn.MaxPool2d):
        names.add("stem")
    return names


def describe_layers(model: nn.Module, size: int, paths: bool = False) -> list[dict[str, Any]]:
    """One row per catalogue layer for a ``[2, 3, size, size]`` input, in catalogue order (``paths``: per
    module path with a spatial output, :func:`spatial_modules`, in forward order).

    Returns:
        ``[{"name": str, "channels": int, "height": int, "width": int, "before_pool": bool,
        "before_downsampling": bool}, ...]``: C×H×W of the layer's map as PAL reads it (tokens and
        channels-last outputs as ``[B, C, H, W]``, :mod:`palbench.models.tokens`); ``before_pool``: the
        output goes straight into a max-pool (VGG / ResNet, the paper's Fig. 3 marks); ``before_downsampling``:
        the next row's map is smaller. From one forward of a zero batch (eval mode, no grad; the model's
        train/eval mode is restored).
    """
    model = unwrap(model)
    layers = spatial_modules(model, size) if paths else layer_catalogue(model, size)
    shapes = {id(mod): shape for mod, shape in _probe_shapes(model, size).values()}
    rows = []
    for name, m in layers.items():
        shape = shapes[id(m)]
        layout = layout_of(shape, m) or "nchw"
        c, h, w = tuple(to_map(torch.empty(shape, device="meta"), layout).shape[1:])
        rows.append({"name": name, "channels": c, "height": h, "width": w})
    pooled = _before_pool(model, size) if not paths or isinstance(model, _NAMED) else set()
    if paths:  # a path that is also a catalogue layer precedes a pool when that layer does
        pooled = {p for p, m in layers.items() for n in pooled if m is layer_catalogue(model, size).get(n)}
    for i, row in enumerate(rows):
        row["before_pool"] = row["name"] in pooled
        nxt = rows[i + 1] if i + 1 < len(rows) else None
        row["before_downsampling"] = nxt is not None and nxt["height"] * nxt["width"] < row["height"] * row["width"]
    return rows


def flops_above(model: nn.Module, layer: str, size: int) -> tuple[int, int]:
    """``(FLOPs executed after layer's output is produced, total FLOPs)`` of one forward of ``[1, 3, size, size]``.

    Counted by :class:`torch.utils.flop_counter.FlopCounterMode` in execution order: convolutions and matrix
    products at 2 FLOPs per multiply-accumulate, biases, BatchNorm, ReLU, pooling and residual additions not
    counted. For VGG ``conv13`` the first number is exactly the classifier's ``Σ 2·in·out``. PAL's extra work
    per step is a double backward through this upper part.
    """
    model = unwrap(model)
    module = resolve_layer(model, layer, size)
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
