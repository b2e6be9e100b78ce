"""Backbones (VGG16, VGG16-BN, ResNet50 and narrow CPU variants), the PAL layer catalogue, layer capture and
weight import. See :mod:`palbench.models.backbones`, :mod:`palbench.models.catalogue` and
:mod:`palbench.models.weights`.
"""

from palbench.models.backbones import (
    ARCHS,
    IMAGENET_NORMALIZATION,
    VGGFACE2_NORMALIZATION,
    VGGFACE_NORMALIZATION,
    build_model,
    normalize,
    resnet_layout,
    set_resnet_layout,
)
from palbench.models.catalogue import (
    LayerCapture,
    capture,
    describe_layers,
    flops_above,
    layer_catalogue,
    resolve_layer,
    unwrap,
)
from palbench.models.weights import imagenet_weights_path, load_weights

__all__ = [
    "ARCHS",
    "IMAGENET_NORMALIZATION",
    "VGGFACE_NORMALIZATION",
    "VGGFACE2_NORMALIZATION",
    "LayerCapture",
    "build_model",
    "capture",
    "describe_layers",
    "flops_above",
    "imagenet_weights_path",
    "layer_catalogue",
    "load_weights",
    "normalize",
    "resnet_layout",
    "resolve_layer",
    "set_resnet_layout",
    "unwrap",
]
