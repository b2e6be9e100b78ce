"""ResNet layouts: where the stride-2 of the first block of stages 2–4 sits, and the stem max-pool.

torchvision's ResNet50 ("v1.5") puts the stride-2 of the first block of stages 2–4 on the 3×3 conv and uses
``MaxPool2d(3, 2, padding=1)``. The Caffe ResNet50 behind the VGGFace2 ports (``resnet50_ft_dag.pth`` /
``resnet50_scratch_dag.pth``) puts that stride on the first 1×1 "reduce" conv and uses
``MaxPool2d(3, 2, padding=0, ceil_mode=True)`` (checked in the generated port ``resnet50_ft_dag.py``:
``conv3_1_1x1_reduce ... stride=(2, 2)``, ``conv3_1_3x3 ... stride=(1, 1)``,
``pool1_3x3_s2 = MaxPool2d(kernel_size=[3, 3], stride=[2, 2], padding=(0, 0), ceil_mode=True)``).
:func:`set_resnet_layout` switches a built model between the two in place (same parameters, same shapes;
the spatial sizes agree at 224×224).

Used by :mod:`palbench.models.backbones` (the layout travels in the state dict's ``_extra_state``) and by
:mod:`palbench.models.weights` (the VGGFace2 import switches to the Caffe layout); imports neither.
"""

from __future__ import annotations

from torch import nn
from torchvision.models import ResNet
from torchvision.models.resnet import Bottleneck

from palbench.errors import ConfigError

__all__ = ["LAYOUTS", "resnet_layout", "set_resnet_layout"]

LAYOUTS: tuple[str, ...] = ("torchvision", "caffe")


def _strided_first_blocks(model: ResNet) -> list[Bottleneck]:
    """First Bottleneck of every stage whose shortcut is strided (stages 2–4 of a ResNet50)."""
    blocks = []
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        first = stage[0]
        if isinstance(first, Bottleneck) and first.downsample is not None:
            if tuple(first.downsample[0].stride) != (1, 1):
                blocks.append(first)
    return blocks


def resnet_layout(model: ResNet) -> str:
    """``"caffe"`` if the stride sits on the 1×1 reduce conv and the max-pool is ceil-mode/unpadded, else
    ``"torchvision"``."""
    pool = model.maxpool
    if isinstance(pool, nn.MaxPool2d) and pool.ceil_mode and pool.padding in (0, (0, 0)):
        return "caffe"
    return "torchvision"


def set_resnet_layout(model: ResNet, layout: str) -> ResNet:
    """Switch a Bottleneck ResNet between the ``"torchvision"`` and ``"caffe"`` layouts in place.

    ``"caffe"``: stride 2 on ``layerK.0.conv1`` (1×1 reduce), stride 1 on ``layerK.0.conv2`` (3×3), stem
    ``MaxPool2d(3, 2, padding=0, ceil_mode=True)`` — the geometry of the VGGFace2 Caffe ResNet50.
    ``"torchvision"``: stride on the 3×3 conv, ``MaxPool2d(3, 2, padding=1)``. Parameters are untouched.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"resnet layout {layout!r}: expected 'torchvision' or 'caffe'")
    caffe = layout == "caffe"
    for block in _strided_first_blocks(model):
        stride = block.downsample[0].stride  # type: ignore[index]
        block.conv1.stride = stride if caffe else (1, 1)
        block.conv2.stride = (1, 1) if caffe else stride
    if caffe:
        model.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)
    else:
        model.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    return model
