"""The families with a width knob (:data:`palbench.config.names.WIDTH_FAMILIES`): one explicit builder per
family through torchvision's public constructors, registered under each of its builder names
(:mod:`palbench.models.registry`).

``width`` in (0, 1] scales a family's channels and keeps every layer:

=============  ==============================================================================================
VGG            conv channels and the classifier's 4096 hidden units × width (:class:`PalbenchVGG`)
ResNet         planes 64/128/256/512 × width, ResNeXt and Wide ResNet included (:class:`PalbenchResNet`)
ConvNeXt       stage channels × width (``ConvNeXt`` with ``CNBlockConfig``)
EfficientNet   B0–B7: ``width_mult`` × width (``EfficientNet`` with ``MBConvConfig``; channels rounded to 8)
MobileNet V2   ``MobileNetV2(width_mult=width)``
MobileNet V3   ``width_mult`` = width (``MobileNetV3`` with ``InvertedResidualConfig``; channels rounded to 8)
ViT            hidden size × width (a multiple of the heads), MLP size × width (``VisionTransformer``)
Swin           embedding size × width (a multiple of the first stage's heads) (``SwinTransformer``)
=============  ==============================================================================================

torchvision has no width argument for VGG's classifier or ResNet's planes: the two small subclasses below
say so. The architectures' numbers are those of torchvision's builders (``vgg16``, ``resnet50``,
``convnext_tiny``, ...), written out in the tables below; at width 1 every builder creates torchvision's
modules in torchvision's order, so a seeded build is torchvision's network, parameter for parameter
(tests/test_backbones.py checks every name's module tree and shapes against torchvision's own builder, and the
values of a seeded sample). Module names, hence state-dict keys and layer paths, are torchvision's.

Every builder: ``builder(num_classes=K, width=w, size=s)`` → the network, randomly initialised, input
``[B, 3, H, W]``, output ``[B, K]``; ``size`` matters to ViT only (its position embedding is made for
``size × size`` images).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from torch import nn
from torchvision.models import (VGG, ConvNeXt, EfficientNet, MobileNetV2, MobileNetV3, ResNet, SwinTransformer,
                                VisionTransformer)
from torchvision.models.convnext import CNBlockConfig
from torchvision.models.efficientnet import MBConvConfig
from torchvision.models.mobilenetv3 import InvertedResidualConfig
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.models.swin_transformer import PatchMergingV2, SwinTransformerBlockV2
from torchvision.models.vgg import cfgs, make_layers

from palbench.errors import ConfigError
from palbench.models.registry import register_backbone

__all__ = ["PalbenchResNet", "PalbenchVGG"]


def _scaled(channels: int, width: float) -> int:
    """``round(channels × width)``, at least 1."""
    return max(1, int(round(channels * width)))


def _scaled_to(value: int, width: float, multiple: int) -> int:
    """``value × width`` rounded to a positive multiple of ``multiple`` (attention heads must divide it)."""
    return multiple * max(1, int(round(value * width / multiple)))


# --- VGG ------------------------------------------------------------------------------------------------------
class PalbenchVGG(VGG):
    """torchvision's VGG with every width scaled: conv channels × ``width``, classifier hidden 4096 × ``width``
    (torchvision's ``VGG`` fixes the hidden size at 4096).

    Module tree identical to torchvision's (``features.N``, ``avgpool``, ``classifier.0/3/6``), created in the
    same order and initialised as ``VGG(init_weights=True)``. Input ``[B, 3, H, W]`` → ``[B, num_classes]``.
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


#: VGG depth → torchvision's layer configuration (``torchvision.models.vgg.cfgs``); each also with batch norm.
_VGG = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}


def _vgg(cfg: str, batch_norm: bool, *, num_classes: int, width: float, size: int) -> nn.Module:
    return PalbenchVGG(cfgs[cfg], batch_norm=batch_norm, num_classes=num_classes, width=width)


# --- ResNet, ResNeXt, Wide ResNet -----------------------------------------------------------------------------
class PalbenchResNet(ResNet):
    """torchvision's ResNet (ResNet18–152, ResNeXt, Wide ResNet) with planes 64/128/256/512 × ``width``
    (torchvision's ``ResNet`` fixes them).

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


#: name → (block, blocks per stage, groups, width per group).
_RESNET: dict[str, tuple[type[nn.Module], list[int], int, int]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2], 1, 64),
    "resnet34": (BasicBlock, [3, 4, 6, 3], 1, 64),
    "resnet50": (Bottleneck, [3, 4, 6, 3], 1, 64),
    "resnet101": (Bottleneck, [3, 4, 23, 3], 1, 64),
    "resnet152": (Bottleneck, [3, 8, 36, 3], 1, 64),
    "resnext50_32x4d": (Bottleneck, [3, 4, 6, 3], 32, 4),
    "resnext101_32x8d": (Bottleneck, [3, 4, 23, 3], 32, 8),
    "resnext101_64x4d": (Bottleneck, [3, 4, 23, 3], 64, 4),
    "wide_resnet50_2": (Bottleneck, [3, 4, 6, 3], 1, 128),
    "wide_resnet101_2": (Bottleneck, [3, 4, 23, 3], 1, 128),
}


def _resnet(block: type[nn.Module], layers: list[int], groups: int, width_per_group: int, *, num_classes: int,
            width: float, size: int) -> nn.Module:
    return PalbenchResNet(list(layers), num_classes=num_classes, width=width, block=block, groups=groups,
                          width_per_group=width_per_group)


# --- ConvNeXt -------------------------------------------------------------------------------------------------
#: name → (channels of the four stages, blocks per stage, stochastic depth probability).
_CONVNEXT: dict[str, tuple[tuple[int, ...], tuple[int, ...], float]] = {
    "convnext_tiny": ((96, 192, 384, 768), (3, 3, 9, 3), 0.1),
    "convnext_small": ((96, 192, 384, 768), (3, 3, 27, 3), 0.4),
    "convnext_base": ((128, 256, 512, 1024), (3, 3, 27, 3), 0.5),
    "convnext_large": ((192, 384, 768, 1536), (3, 3, 27, 3), 0.5),
}


def _convnext(channels: tuple[int, ...], depths: tuple[int, ...], stochastic_depth_prob: float, *,
              num_classes: int, width: float, size: int) -> nn.Module:
    scaled = [_scaled(c, width) for c in channels]
    setting = [CNBlockConfig(c, nxt, d) for c, nxt, d in zip(scaled, [*scaled[1:], None], depths, strict=True)]
    return ConvNeXt(setting, stochastic_depth_prob=stochastic_depth_prob, num_classes=num_classes)


# --- EfficientNet B0–B7 ---------------------------------------------------------------------------------------
#: B0's stages (expand ratio, kernel, stride, input channels, output channels, layers), scaled for B1–B7.
_EFFICIENTNET_STAGES = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
                        (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1))
#: B5–B7's batch norm (B0–B4: ``nn.BatchNorm2d``'s defaults).
_EFFICIENTNET_NORM = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
#: name → (width multiplier, depth multiplier, dropout, batch norm).
_EFFICIENTNET: dict[str, tuple[float, float, float, Any]] = {
    "efficientnet_b0": (1.0, 1.0, 0.2, None),
    "efficientnet_b1": (1.0, 1.1, 0.2, None),
    "efficientnet_b2": (1.1, 1.2, 0.3, None),
    "efficientnet_b3": (1.2, 1.4, 0.3, None),
    "efficientnet_b4": (1.4, 1.8, 0.4, None),
    "efficientnet_b5": (1.6, 2.2, 0.4, _EFFICIENTNET_NORM),
    "efficientnet_b6": (1.8, 2.6, 0.5, _EFFICIENTNET_NORM),
    "efficientnet_b7": (2.0, 3.1, 0.5, _EFFICIENTNET_NORM),
}


def _efficientnet(width_mult: float, depth_mult: float, dropout: float, norm_layer: Any, *, num_classes: int,
                  width: float, size: int) -> nn.Module:
    setting = [MBConvConfig(*stage, width_mult=width_mult * width, depth_mult=depth_mult)
               for stage in _EFFICIENTNET_STAGES]
    return EfficientNet(setting, dropout, num_classes=num_classes, norm_layer=norm_layer, last_channel=None)


# --- MobileNet V2, V3 -----------------------------------------------------------------------------------------
def _mobilenet_v2(*, num_classes: int, width: float, size: int) -> nn.Module:
    return MobileNetV2(num_classes=num_classes, width_mult=width)


#: name → (blocks: input channels, kernel, expanded channels, output channels, squeeze-excitation,
#: activation (RE: ReLU, HS: hard swish), stride, dilation; channels of the last layer).
_MOBILENET_V3: dict[str, tuple[list[tuple[int, int, int, int, bool, str, int, int]], int]] = {
    "mobilenet_v3_large": ([
        (16, 3, 16, 16, False, "RE", 1, 1), (16, 3, 64, 24, False, "RE", 2, 1), (24, 3, 72, 24, False, "RE", 1, 1),
        (24, 5, 72, 40, True, "RE", 2, 1), (40, 5, 120, 40, True, "RE", 1, 1), (40, 5, 120, 40, True, "RE", 1, 1),
        (40, 3, 240, 80, False, "HS", 2, 1), (80, 3, 200, 80, False, "HS", 1, 1), (80, 3, 184, 80, False, "HS", 1, 1),
        (80, 3, 184, 80, False, "HS", 1, 1), (80, 3, 480, 112, True, "HS", 1, 1), (112, 3, 672, 112, True, "HS", 1, 1),
        (112, 5, 672, 160, True, "HS", 2, 1), (160, 5, 960, 160, True, "HS", 1, 1), (160, 5, 960, 160, True, "HS", 1, 1),
    ], 1280),
    "mobilenet_v3_small": ([
        (16, 3, 16, 16, True, "RE", 2, 1), (16, 3, 72, 24, False, "RE", 2, 1), (24, 3, 88, 24, False, "RE", 1, 1),
        (24, 5, 96, 40, True, "HS", 2, 1), (40, 5, 240, 40, True, "HS", 1, 1), (40, 5, 240, 40, True, "HS", 1, 1),
        (40, 5, 120, 48, True, "HS", 1, 1), (48, 5, 144, 48, True, "HS", 1, 1), (48, 5, 288, 96, True, "HS", 2, 1),
        (96, 5, 576, 96, True, "HS", 1, 1), (96, 5, 576, 96, True, "HS", 1, 1),
    ], 1024),
}  # fmt: skip


def _mobilenet_v3(blocks: list[tuple[Any, ...]], last_channel: int, *, num_classes: int, width: float,
                  size: int) -> nn.Module:
    setting = [InvertedResidualConfig(*block, width_mult=width) for block in blocks]
    return MobileNetV3(setting, InvertedResidualConfig.adjust_channels(last_channel, width), num_classes=num_classes)


# --- ViT, Swin ------------------------------------------------------------------------------------------------
#: name → (patch size, layers, heads, hidden size, MLP size).
_VIT: dict[str, tuple[int, int, int, int, int]] = {
    "vit_b_16": (16, 12, 12, 768, 3072),
    "vit_b_32": (32, 12, 12, 768, 3072),
    "vit_l_16": (16, 24, 16, 1024, 4096),
    "vit_l_32": (32, 24, 16, 1024, 4096),
    "vit_h_14": (14, 32, 16, 1280, 5120),
}


def _vit(patch_size: int, num_layers: int, num_heads: int, hidden_dim: int, mlp_dim: int, *, num_classes: int,
         width: float, size: int) -> nn.Module:
    return VisionTransformer(image_size=size, patch_size=patch_size, num_layers=num_layers, num_heads=num_heads,
                             hidden_dim=_scaled_to(hidden_dim, width, num_heads), mlp_dim=_scaled(mlp_dim, width),
                             num_classes=num_classes)


#: name → (embedding size, blocks per stage, heads per stage, window side, stochastic depth probability,
#: version); patches of 4×4 pixels. Version 2: ``SwinTransformerBlockV2`` and ``PatchMergingV2``.
_SWIN: dict[str, tuple[int, list[int], list[int], int, float, int]] = {
    "swin_t": (96, [2, 2, 6, 2], [3, 6, 12, 24], 7, 0.2, 1),
    "swin_s": (96, [2, 2, 18, 2], [3, 6, 12, 24], 7, 0.3, 1),
    "swin_b": (128, [2, 2, 18, 2], [4, 8, 16, 32], 7, 0.5, 1),
    "swin_v2_t": (96, [2, 2, 6, 2], [3, 6, 12, 24], 8, 0.2, 2),
    "swin_v2_s": (96, [2, 2, 18, 2], [3, 6, 12, 24], 8, 0.3, 2),
    "swin_v2_b": (128, [2, 2, 18, 2], [4, 8, 16, 32], 8, 0.5, 2),
}


def _swin(embed_dim: int, depths: list[int], num_heads: list[int], window: int, stochastic_depth_prob: float,
          version: int, *, num_classes: int, width: float, size: int) -> nn.Module:
    v2: dict[str, Any] = {"block": SwinTransformerBlockV2, "downsample_layer": PatchMergingV2} if version == 2 else {}
    return SwinTransformer(patch_size=[4, 4], embed_dim=_scaled_to(embed_dim, width, num_heads[0]),
                           depths=list(depths), num_heads=list(num_heads), window_size=[window, window],
                           stochastic_depth_prob=stochastic_depth_prob, num_classes=num_classes, **v2)


# --- the registry's entries -----------------------------------------------------------------------------------
for _name, _cfg in _VGG.items():
    register_backbone(_name, partial(_vgg, _cfg, False))
    register_backbone(_name + "_bn", partial(_vgg, _cfg, True))
for _table, _builder in ((_RESNET, _resnet), (_CONVNEXT, _convnext), (_EFFICIENTNET, _efficientnet),
                         (_MOBILENET_V3, _mobilenet_v3), (_VIT, _vit), (_SWIN, _swin)):
    for _name, _spec in _table.items():
        register_backbone(_name, partial(_builder, *_spec))
register_backbone("mobilenet_v2", _mobilenet_v2)
