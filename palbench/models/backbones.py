"""Backbones: torchvision VGG16 / VGG16-BN / ResNet50 and narrow CPU variants with the same layer structure.

Every model is an instance of torchvision's own :class:`~torchvision.models.VGG` or
:class:`~torchvision.models.ResNet` (through a thin subclass that only changes ``__init__``), so module
names — and therefore state-dict keys and the layer catalogue — equal torchvision's.

Input: ``[B, 3, H, W]`` images already normalised with ``model.input_normalization`` (mean/std in units of
an image scaled to [0, 1]). Output: ``[B, num_classes]`` logits.

ResNet layouts (torchvision's or the Caffe one of the VGGFace2 ports) are in :mod:`palbench.models.layout`;
the layout and the normalisation travel in the state dict as the model's ``_extra_state``, so a checkpoint
reloads with the geometry it was trained with. Weights are loaded separately, by
:func:`palbench.models.weights.load_weights`, the module that also owns the normalisation constants.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torchvision.models import VGG, ResNet
from torchvision.models.resnet import Bottleneck
from torchvision.models.vgg import cfgs, make_layers

from palbench.config.names import ARCHS
from palbench.errors import ConfigError
from palbench.models.layout import resnet_layout, set_resnet_layout
from palbench.models.weights import IMAGENET_NORMALIZATION

__all__ = ["ARCHS", "build_model", "normalize"]


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
    """torchvision ResNet50 (Bottleneck ×[3, 4, 6, 3]) with planes 64/128/256/512 × ``width``.

    Built with torchvision's own ``_make_layer`` so block and module names are torchvision's. Stem channels
    = layer1 planes; stage outputs have ``4 × planes`` channels. Input ``[B, 3, H, W]`` → ``[B, num_classes]``.
    """

    def __init__(self, layers: list[int], num_classes: int, width: float) -> None:
        nn.Module.__init__(self)  # mirrors ResNet.__init__ with scaled planes
        self._norm_layer = nn.BatchNorm2d
        planes = [_scaled(p, width) for p in (64, 128, 256, 512)]
        self.inplanes = planes[0]
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(Bottleneck, planes[0], layers[0])
        self.layer2 = self._make_layer(Bottleneck, planes[1], layers[1], stride=2)
        self.layer3 = self._make_layer(Bottleneck, planes[2], layers[2], stride=2)
        self.layer4 = self._make_layer(Bottleneck, planes[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(planes[3] * Bottleneck.expansion, num_classes)
        # torchvision ResNet's initialisation (zero_init_residual=False).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


def _no_inplace_relu(model: nn.Module) -> None:
    # PAL captures post-activation maps and differentiates through them twice (attribution with
    # create_graph=True, then the loss backward). An in-place ReLU would overwrite the pre-activation
    # tensor that the captured map aliases; torchvision builds its ReLUs with inplace=True, so switch off.
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False


def build_model(arch: str, num_classes: int = 7, width: float = 1.0) -> nn.Module:
    """Build a backbone with ``num_classes`` logits, randomly initialised (seed torch yourself).

    Args:
        arch: ``"vgg16"``, ``"vgg16_bn"`` or ``"resnet50"``.
        num_classes: K, size of the output ``[B, K]``.
        width: channel multiplier in (0, 1]; < 1 gives a narrow CPU variant with the same layer structure.

    Returns:
        A torchvision ``VGG`` / ``ResNet`` with attributes ``arch`` and ``input_normalization = {"mean":
        (r, g, b), "std": (r, g, b)}`` (ImageNet's, for images scaled to [0, 1]). Input ``[B, 3, H, W]``,
        output ``[B, K]``. Load pretrained weights with :func:`palbench.models.weights.load_weights`.
    """
    if arch not in ARCHS:
        raise ConfigError(f"arch {arch!r}: expected one of {', '.join(ARCHS)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes {num_classes!r}: expected an integer >= 1")
    if not isinstance(width, (int, float)) or not math.isfinite(width) or not 0 < width <= 1:
        raise ConfigError(f"width {width!r}: expected a number in (0, 1]")
    model: nn.Module
    if arch in ("vgg16", "vgg16_bn"):
        model = PalbenchVGG(cfgs["D"], batch_norm=arch == "vgg16_bn", num_classes=num_classes, width=float(width))
    else:
        model = PalbenchResNet([3, 4, 6, 3], num_classes=num_classes, width=float(width))
    _no_inplace_relu(model)
    model.input_normalization = dict(IMAGENET_NORMALIZATION)  # type: ignore[assignment]
    model.arch = arch  # type: ignore[assignment]
    return model


def normalize(images: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """``[B, 3, H, W]`` images in [0, 1] → the input ``model`` expects, using ``model.input_normalization``."""
    norm = getattr(model, "input_normalization", IMAGENET_NORMALIZATION)
    mean = torch.tensor(norm["mean"], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(norm["std"], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std
