"""Backbones (every torchvision classification model, narrow CPU variants, dlib's face ResNet), the PAL layer
catalogue, layer capture (any layout, :mod:`palbench.models.tokens`) and weight import. See
:mod:`palbench.models.backbones` (with the registry of builders, :mod:`~palbench.models.registry`, the width
families' builders, :mod:`~palbench.models.narrow`, and dlib's network, :mod:`~palbench.models.dlib_face`),
:mod:`palbench.models.catalogue`, :mod:`palbench.models.layout`, :mod:`palbench.models.state` and
:mod:`palbench.models.weights`.

A pretrained model is built in two steps: ``model = build_model(arch, num_classes, width)`` (architecture,
random init), then ``load_weights(model, weights)`` (a ``.pth``/``.pt`` path, ``"imagenet"``, or for
``dlib_face_resnet`` ``"dlib"`` or a dlib ``.dat`` path).
Imports run one way: backbones → narrow → registry, backbones → state → layout, backbones → weights → layout,
backbones / weights / catalogue → dlib_face.
"""

from palbench.models.backbones import ARCHS, build_model, has_width_knob, normalize
from palbench.models.catalogue import (
    LayerCapture,
    capture,
    describe_layers,
    flops_above,
    layer_catalogue,
    resolve_layer,
    unwrap,
)
from palbench.models.layout import resnet_layout, set_resnet_layout
from palbench.models.registry import backbone_builder, register_backbone, registered_backbones
from palbench.models.weights import (
    DLIB_FACE_NORMALIZATION,
    IMAGENET_NORMALIZATION,
    VGGFACE2_NORMALIZATION,
    VGGFACE_NORMALIZATION,
    head_prefix,
    imagenet_url,
    imagenet_weights_path,
    load_weights,
)

__all__ = [
    "ARCHS",
    "DLIB_FACE_NORMALIZATION",
    "IMAGENET_NORMALIZATION",
    "VGGFACE_NORMALIZATION",
    "VGGFACE2_NORMALIZATION",
    "LayerCapture",
    "backbone_builder",
    "build_model",
    "capture",
    "describe_layers",
    "flops_above",
    "has_width_knob",
    "head_prefix",
    "imagenet_url",
    "imagenet_weights_path",
    "layer_catalogue",
    "load_weights",
    "register_backbone",
    "registered_backbones",
    "normalize",
    "resnet_layout",
    "resolve_layer",
    "set_resnet_layout",
    "unwrap",
]
