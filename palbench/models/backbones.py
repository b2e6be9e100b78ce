"""Backbones: every torchvision classification model by its builder name, with K outputs, narrow CPU
variants (``width`` < 1) of the families that have a width knob, and dlib's face ResNet (``dlib_face_resnet``,
:mod:`palbench.models.dlib_face`: its blocks are named as ResNet's, ``stem``, ``layer1.0`` … ``layer5.0``).

:func:`build_model` looks the name up in the backbone registry (:mod:`palbench.models.registry`): the
families of :data:`~palbench.config.names.WIDTH_FAMILIES` (VGG, ResNet/ResNeXt/Wide ResNet, ConvNeXt,
EfficientNet B0–B7, MobileNet V2/V3, ViT, Swin) are built by :mod:`palbench.models.narrow`'s explicit
builders through torchvision's public constructors, at any width; every other name (RegNet, DenseNet, ...) by
torchvision's own builder (``torchvision.models.get_model``), at width 1; ``dlib_face_resnet`` by
:func:`palbench.models.dlib_face.build_dlib_face_resnet`. Module names — and therefore
state-dict keys, module paths and the layer catalogue — are torchvision's.

After building: in-place activations are switched off, ``Hardsigmoid`` / ``Hardswish`` (no double backward
in torch) become the same function composed of ``relu6`` (:class:`HardSigmoid`), and the model carries its
``input_normalization`` in its state dict (:mod:`palbench.models.state`): ImageNet's, or dlib's for
``dlib_face_resnet`` (the input its own weights expect).

Input: ``[B, 3, H, W]`` images already normalised with ``model.input_normalization`` (mean/std in units of
an image scaled to [0, 1]). Output: ``[B, num_classes]`` logits.

ResNet layouts (torchvision's or the Caffe one of the VGGFace2 ports) are in :mod:`palbench.models.layout`;
the layout and the normalisation travel in the state dict as the model's ``_extra_state``, so a checkpoint
reloads with the geometry it was trained with. Weights are loaded separately, by
:func:`palbench.models.weights.load_weights`, the module that also owns the normalisation constants.
"""

from __future__ import annotations

from typing import Any

import torch
import torchvision.models as tvm
from torch import nn

import palbench.models.narrow  # noqa: F401 - registers the builders of the families with a width knob
from palbench.config.names import ARCHS, TORCHVISION_ARCHS, check_width, width_family
from palbench.errors import ConfigError
from palbench.models.dlib_face import build_dlib_face_resnet
from palbench.models.registry import Builder, backbone_builder, register_backbone
from palbench.models.state import carry_extra_state
from palbench.models.weights import DLIB_FACE_NORMALIZATION, IMAGENET_NORMALIZATION

__all__ = ["ARCHS", "build_model", "normalize", "has_width_knob"]


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


#: Builder arguments some families need: GoogLeNet / Inception v3 without their auxiliary classifiers (a
#: training forward would return a tuple of logits), and initialised (silences torchvision's warning).
_BUILD_ARGS: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}


def _torchvision_builder(arch: str) -> Builder:
    """The builder of a name without a width knob: torchvision's own (``width`` is 1, ``size`` unused)."""

    def build(*, num_classes: int, width: float, size: int) -> nn.Module:
        return tvm.get_model(arch, weights=None, num_classes=num_classes, **_BUILD_ARGS.get(arch, {}))

    return build


for _arch in TORCHVISION_ARCHS:
    if width_family(_arch) is None:
        register_backbone(_arch, _torchvision_builder(_arch))
register_backbone("dlib_face_resnet", build_dlib_face_resnet)

#: The input normalisation of a freshly built network where it is not ImageNet's: the one its own weights expect.
_NORMALIZATION = {"dlib_face_resnet": DLIB_FACE_NORMALIZATION}


def has_width_knob(arch: str) -> bool:
    """Whether ``width`` < 1 can narrow ``arch`` (:data:`~palbench.config.names.WIDTH_FAMILIES`)."""
    return width_family(arch) is not None


def build_model(arch: str, num_classes: int = 7, width: float = 1.0, size: int = 224) -> nn.Module:
    """Build a backbone with ``num_classes`` logits, randomly initialised (seed torch yourself).

    Args:
        arch: a torchvision classification builder name (:data:`palbench.config.names.ARCHS`: ``vgg16``,
            ``resnet50``, ``resnet18``, ``convnext_tiny``, ``efficientnet_b0``, ``vit_b_16``, ``swin_t``, ...) or
            ``dlib_face_resnet``.
        num_classes: K, size of the output ``[B, K]`` (the head torchvision builds has K outputs).
        width: channel multiplier in (0, 1]; < 1 gives a narrow CPU variant with the same layer structure,
            for the families of :data:`~palbench.config.names.WIDTH_FAMILIES`.
        size: input side in pixels; only ViT depends on it (its position embedding is built for
            ``size × size`` images, which must be a multiple of its patch size). ``dlib_face_resnet`` takes
            any input of at least 103 px.

    Returns:
        The torchvision model (``VGG``, ``ResNet``, ``ConvNeXt``, ``VisionTransformer``, ...) with attributes
        ``arch`` and ``input_normalization = {"mean": (r, g, b), "std": (r, g, b)}`` (ImageNet's, for images
        scaled to [0, 1]; dlib's for ``dlib_face_resnet``). Input ``[B, 3, H, W]``, output ``[B, K]``. Load pretrained weights with
        :func:`palbench.models.weights.load_weights`.
    """
    builder = backbone_builder(arch)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes {num_classes!r}: expected an integer >= 1")
    check_width(arch, width)
    try:
        model = builder(num_classes=num_classes, width=float(width), size=int(size))
    except (ValueError, AssertionError, TypeError) as e:
        raise ConfigError(f"arch {arch} (width {width:g}, size {size}): torchvision could not build it ({e})") from None
    _differentiable_twice(model)
    carry_extra_state(model, _NORMALIZATION.get(arch, IMAGENET_NORMALIZATION))
    model.arch = arch  # type: ignore[assignment]
    return model


def normalize(images: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """``[B, 3, H, W]`` images in [0, 1] → the input ``model`` expects, using ``model.input_normalization``."""
    norm = getattr(model, "input_normalization", IMAGENET_NORMALIZATION)
    mean = torch.tensor(norm["mean"], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(norm["std"], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std
