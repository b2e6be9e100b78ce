"""Backbones: every torchvision classification model by its builder name, with K outputs, and narrow CPU
variants (``width`` < 1) of the families that have a width knob.

:func:`build_model` calls torchvision's own builder (``torchvision.models.get_model``) with
``num_classes=K``, so module names — and therefore state-dict keys, module paths and the layer catalogue —
are torchvision's. ``width`` scales the channels of a family through the arguments its builder hands to
torchvision's internal constructor helper (:data:`WIDTH_KNOBS`): VGG and ResNet-type models are built as a
thin subclass of torchvision's ``VGG`` / ``ResNet`` that only changes ``__init__`` (the paper's two
backbones, also narrow); ConvNeXt, EfficientNet (B0–B7), MobileNet V2/V3, ViT and Swin get scaled channel
counts. torchvision exposes no public width argument for most of these, hence the interception; a test
checks that every knob narrows its family. Other families (RegNet, DenseNet, ...) build at width 1 only.

After building: in-place activations are switched off, ``Hardsigmoid`` / ``Hardswish`` (no double backward
in torch) become the same function composed of ``relu6`` (:class:`HardSigmoid`), and the model carries its
``input_normalization`` in its state dict.

Input: ``[B, 3, H, W]`` images already normalised with ``model.input_normalization`` (mean/std in units of
an image scaled to [0, 1]). Output: ``[B, num_classes]`` logits.

ResNet layouts (torchvision's or the Caffe one of the VGGFace2 ports) are in :mod:`palbench.models.layout`;
the layout and the normalisation travel in the state dict as the model's ``_extra_state``, so a checkpoint
reloads with the geometry it was trained with. Weights are loaded separately, by
:func:`palbench.models.weights.load_weights`, the module that also owns the normalisation constants.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import torch
import torchvision.models as tvm
from torch import nn
from torchvision.models import VGG, ResNet
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.models.vgg import cfgs, make_layers

from palbench.config.names import ARCHS, WIDTH_FAMILIES, width_family
from palbench.errors import ConfigError
from palbench.models.layout import resnet_layout, set_resnet_layout
from palbench.models.weights import IMAGENET_NORMALIZATION

__all__ = ["ARCHS", "WIDTH_KNOBS", "build_model", "normalize", "has_width_knob"]


def _scaled(channels: int, width: float) -> int:
    """``round(channels * width)``, at least 1."""
    return max(1, int(round(channels * width)))


class _PalbenchModel:
    """Mixin: ``input_normalization`` and the ResNet layout saved as the state dict's ``_extra_state``."""

    input_normalization: dict[str, tuple[float, float, float]]

    def get_extra_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "input_normalization": {k: tuple(float(x) for x in v) for k, v in self.input_normalization.items()}
        }
        if isinstance(self, ResNet):
            state["resnet_layout"] = resnet_layout(self)
        return state

    def set_extra_state(self, state: Any) -> None:
        if not isinstance(state, dict):
            return
        norm = state.get("input_normalization")
        if isinstance(norm, dict) and {"mean", "std"} <= set(norm):
            self.input_normalization = {k: tuple(float(x) for x in norm[k]) for k in ("mean", "std")}  # type: ignore[misc]
        layout = state.get("resnet_layout")
        if isinstance(self, ResNet) and layout is not None:
            set_resnet_layout(self, str(layout))


class PalbenchVGG(_PalbenchModel, VGG):
    """torchvision VGG with every width scaled: conv channels × ``width``, classifier hidden 4096 × ``width``.

    Module tree identical to torchvision's (``features.N``, ``avgpool``, ``classifier.0/3/6``).
    Input ``[B, 3, H, W]`` → ``[B, num_classes]``.
    """

    def __init__(self, cfg: list[str | int], batch_norm: bool, num_classes: int, width: float) -> None:
        nn.Module.__init__(self)  # not VGG.__init__: it would allocate the full-size 25088×4096 classifier
        scaled = [c if c == "M" else _scaled(int(c), width) for c in cfg]
        self.features = make_layers(scaled, batch_norm=batch_norm)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        last = [c for c in scaled if c != "M"][-1]
        hidden = _scaled(4096, width)
        self.classifier = nn.Sequential(
            nn.Linear(int(last) * 7 * 7, hidden),
            nn.ReLU(),
            nn.Dropout(p=0.5),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(p=0.5),
            nn.Linear(hidden, num_classes),
        )
        # torchvision VGG's initialisation.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)


class PalbenchResNet(_PalbenchModel, ResNet):
    """torchvision ResNet (ResNet18–152, ResNeXt, Wide ResNet) with planes 64/128/256/512 × ``width``.

    Built with torchvision's own ``_make_layer`` so block and module names are torchvision's. Stem channels
    = layer1 planes; stage outputs have ``block.expansion × planes`` channels. ``groups`` and
    ``width_per_group`` as torchvision's (ResNeXt 32×4d: 32, 4). Input ``[B, 3, H, W]`` → ``[B, num_classes]``.
    """

    def __init__(self, layers: list[int], num_classes: int, width: float, block: type[nn.Module] = Bottleneck,
                 groups: int = 1, width_per_group: int = 64) -> None:
        nn.Module.__init__(self)  # mirrors ResNet.__init__ with scaled planes
        self._norm_layer = nn.BatchNorm2d
        planes = [_scaled(p, width) for p in (64, 128, 256, 512)]
        if block is Bottleneck and int(planes[0] * width_per_group / 64) * groups < 1:
            raise ConfigError(f"width {width:g}: too narrow for {groups} groups of {width_per_group} channels")
        self.inplanes = planes[0]
        self.dilation = 1
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, planes[0], layers[0])
        self.layer2 = self._make_layer(block, planes[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, planes[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, planes[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(planes[3] * block.expansion, num_classes)
        # torchvision ResNet's initialisation (zero_init_residual=False).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


class HardSigmoid(nn.Module):
    """``relu6(x + 3) / 6``: ``nn.Hardsigmoid`` (and ``x · HardSigmoid(x)``: ``nn.Hardswish``, with
    ``swish=True``) composed of ops that have a double backward; torch's fused ``hardsigmoid_backward`` has
    none, so the PAL term could not be differentiated through MobileNetV3's activations."""

    def __init__(self, swish: bool = False) -> None:
        super().__init__()
        self.swish = swish

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = nn.functional.relu6(x + 3.0) / 6.0
        return x * gate if self.swish else gate

    def extra_repr(self) -> str:
        return "swish=True" if self.swish else ""


def _differentiable_twice(model: nn.Module) -> None:
    # PAL captures a layer's map and differentiates through the network twice (attribution with
    # create_graph=True, then the loss backward). An in-place activation would overwrite the tensor that
    # the captured map aliases (torchvision builds ReLU, SiLU, Hardswish... with inplace=True): switch off.
    # Hard sigmoid / swish: see HardSigmoid.
    for name, m in list(model.named_modules()):
        if hasattr(m, "inplace") and isinstance(m.inplace, bool):
            m.inplace = False
        for child_name, child in list(m.named_children()):
            if type(child) in (nn.Hardsigmoid, nn.Hardswish):
                setattr(m, child_name, HardSigmoid(swish=isinstance(child, nn.Hardswish)))


def _scaled_to(value: int, width: float, multiple: int) -> int:
    """``value × width`` rounded to a positive multiple of ``multiple`` (attention heads must divide it)."""
    return multiple * max(1, int(round(value * width / multiple)))


def _vgg(width: float) -> Callable[..., nn.Module]:
    def build(cfg: str, batch_norm: bool, weights: Any, progress: bool, **kwargs: Any) -> nn.Module:
        return PalbenchVGG(cfgs[cfg], batch_norm=batch_norm, num_classes=kwargs["num_classes"], width=width)
    return build


def _resnet(width: float) -> Callable[..., nn.Module]:
    def build(block: type[nn.Module], layers: list[int], weights: Any, progress: bool, **kwargs: Any) -> nn.Module:
        return PalbenchResNet(layers, num_classes=kwargs["num_classes"], width=width, block=block,
                              groups=kwargs.get("groups", 1), width_per_group=kwargs.get("width_per_group", 64))
    return build


def _convnext(width: float, original: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    from torchvision.models.convnext import CNBlockConfig

    def build(block_setting: list[Any], *args: Any, **kwargs: Any) -> nn.Module:
        scaled = [CNBlockConfig(_scaled(b.input_channels, width),
                                None if b.out_channels is None else _scaled(b.out_channels, width), b.num_layers)
                  for b in block_setting]
        return original(scaled, *args, **kwargs)
    return build


def _width_mult(width: float, original: Callable[..., Any]) -> Callable[..., Any]:
    # EfficientNet B0-B7 and MobileNetV3 configurations take width_mult (rounded to multiples of 8 there).
    def conf(arch: str, **kwargs: Any) -> Any:
        kwargs["width_mult"] = kwargs.get("width_mult", 1.0) * width
        return original(arch, **kwargs)
    return conf


def _vit(width: float, original: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    def build(patch_size: int, num_layers: int, num_heads: int, hidden_dim: int, mlp_dim: int, *args: Any,
              **kwargs: Any) -> nn.Module:
        return original(patch_size, num_layers, num_heads, _scaled_to(hidden_dim, width, num_heads),
                        _scaled(mlp_dim, width), *args, **kwargs)
    return build


def _swin(width: float, original: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    def build(patch_size: list[int], embed_dim: int, depths: list[int], num_heads: list[int], *args: Any,
              **kwargs: Any) -> nn.Module:
        return original(patch_size, _scaled_to(embed_dim, width, num_heads[0]), depths, num_heads, *args, **kwargs)
    return build


#: family (:data:`palbench.config.names.WIDTH_FAMILIES`) → (torchvision module, the helper its builders call, the
#: wrapper that scales the helper's channel arguments by ``width``). VGG and ResNet families are always built
#: through theirs; mobilenet_v2 takes ``width_mult`` as a builder argument instead.
WIDTH_KNOBS: dict[str, tuple[str, str, Callable[..., Callable[..., Any]]]] = {
    "vgg": ("vgg", "_vgg", lambda w, _orig: _vgg(w)),
    "resnet": ("resnet", "_resnet", lambda w, _orig: _resnet(w)),
    "convnext": ("convnext", "_convnext", _convnext),
    "efficientnet": ("efficientnet", "_efficientnet_conf", _width_mult),
    "mobilenet_v3": ("mobilenetv3", "_mobilenet_v3_conf", _width_mult),
    "vit": ("vision_transformer", "_vision_transformer", _vit),
    "swin": ("swin_transformer", "_swin_transformer", _swin),
}
_WIDTH_ARGUMENT = {"mobilenet_v2": "width_mult"}


def has_width_knob(arch: str) -> bool:
    """Whether ``width`` < 1 can narrow ``arch`` (:data:`~palbench.config.names.WIDTH_FAMILIES`)."""
    return width_family(arch) is not None


@contextmanager
def _family_width(arch: str, width: float) -> Iterator[None]:
    """While building ``arch``: torchvision's constructor helper of its family takes channels × ``width``."""
    family = width_family(arch)
    if family not in WIDTH_KNOBS:
        yield
        return
    module_name, helper, wrap = WIDTH_KNOBS[family]
    module = getattr(tvm, module_name)
    with mock.patch.object(module, helper, wrap(width, getattr(module, helper))):
        yield


#: Builder arguments some families need: GoogLeNet / Inception v3 without their auxiliary classifiers (a
#: training forward would return a tuple of logits), and initialised (silences torchvision's warning).
_BUILD_ARGS: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}

_WITH_STATE: dict[type, type] = {}


def _with_extra_state(model: nn.Module) -> nn.Module:
    """Make ``model`` an instance of a subclass of its class with :class:`_PalbenchModel`'s extra state (the
    input normalisation travels in its state dict); VGG / ResNet are built as such already."""
    cls = type(model)
    if not isinstance(model, _PalbenchModel):
        if cls not in _WITH_STATE:
            _WITH_STATE[cls] = type(f"Palbench{cls.__name__}", (_PalbenchModel, cls), {"__module__": __name__})
        model.__class__ = _WITH_STATE[cls]
    return model


def build_model(arch: str, num_classes: int = 7, width: float = 1.0, size: int = 224) -> nn.Module:
    """Build a backbone with ``num_classes`` logits, randomly initialised (seed torch yourself).

    Args:
        arch: a torchvision classification builder name (:data:`palbench.config.names.ARCHS`: ``vgg16``,
            ``resnet50``, ``resnet18``, ``convnext_tiny``, ``efficientnet_b0``, ``vit_b_16``, ``swin_t``, ...).
        num_classes: K, size of the output ``[B, K]`` (the head torchvision builds has K outputs).
        width: channel multiplier in (0, 1]; < 1 gives a narrow CPU variant with the same layer structure,
            for the families of :data:`~palbench.config.names.WIDTH_FAMILIES`.
        size: input side in pixels; only ViT depends on it (its position embedding is built for
            ``size × size`` images, which must be a multiple of its patch size).

    Returns:
        The torchvision model (``VGG``, ``ResNet``, ``ConvNeXt``, ``VisionTransformer``, ...) with attributes
        ``arch`` and ``input_normalization = {"mean": (r, g, b), "std": (r, g, b)}`` (ImageNet's, for images
        scaled to [0, 1]). Input ``[B, 3, H, W]``, output ``[B, K]``. Load pretrained weights with
        :func:`palbench.models.weights.load_weights`.
    """
    if arch not in ARCHS:
        raise ConfigError(f"arch {arch!r}: expected a torchvision classification model, one of {', '.join(ARCHS)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes {num_classes!r}: expected an integer >= 1")
    if not isinstance(width, (int, float)) or not math.isfinite(width) or not 0 < width <= 1:
        raise ConfigError(f"width {width!r}: expected a number in (0, 1]")
    if width != 1 and not has_width_knob(arch):
        raise ConfigError(f"width {width:g}: {arch} has no width knob (width 1 only); families with one: "
                          f"{', '.join(WIDTH_FAMILIES)}")
    kwargs: dict[str, Any] = {"num_classes": num_classes, **_BUILD_ARGS.get(arch, {})}
    if arch.startswith("vit_"):
        kwargs["image_size"] = int(size)
    if arch in _WIDTH_ARGUMENT:
        kwargs[_WIDTH_ARGUMENT[arch]] = float(width)
    try:
        with _family_width(arch, float(width)):
            model = tvm.get_model(arch, weights=None, **kwargs)
    except (ValueError, AssertionError, TypeError) as e:
        raise ConfigError(f"arch {arch} (width {width:g}, size {size}): torchvision could not build it ({e})") from None
    _differentiable_twice(model)
    model = _with_extra_state(model)
    model.input_normalization = dict(IMAGENET_NORMALIZATION)  # type: ignore[assignment]
    model.arch = arch  # type: ignore[assignment]
    return model


def normalize(images: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """``[B, 3, H, W]`` images in [0, 1] → the input ``model`` expects, using ``model.input_normalization``."""
    norm = getattr(model, "input_normalization", IMAGENET_NORMALIZATION)
    mean = torch.tensor(norm["mean"], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(norm["std"], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std
