"""The paper's words for palbench's settings: how tables, figures, readings and claims write an attribution
method, a channel strategy, a number of constrained channels C1 and a backbone.

The settings' own names (the keys ``method``, ``strategy``, ``c1``, ``arch`` and their values) are
:mod:`palbench.config.names`; this module only says how a reader sees them (``grad_input`` → *Grad × Input*,
``c1 = 0.5`` → *C/2*, ``strategy = mean, c1 = 0.5`` → *Mean of half*). The reports (:mod:`palbench.reports`)
and the claims (:mod:`palbench.claims`) both write them from here. Nothing here imports torch or pandas.
"""

from __future__ import annotations

from fractions import Fraction

#: How the paper writes each attribution method (Table I); any other by its own name.
METHOD_NAMES = {"grad": "Grad", "grad_input": "Grad × Input", "gradcam": "Grad-CAM"}

#: How the reports write the backbones the protocols use (any other by its torchvision builder name).
ARCH_NAMES = {"vgg16": "VGG16", "vgg16_bn": "VGG16-BN", "resnet18": "ResNet18", "resnet50": "ResNet50",
              "convnext_tiny": "ConvNeXt-T", "efficientnet_b0": "EfficientNet-B0",
              "mobilenet_v3_large": "MobileNetV3-L", "vit_b_16": "ViT-B/16", "swin_t": "Swin-T"}


def method_name(method: str) -> str:
    """``Grad``, ``Grad × Input``, ``Grad-CAM`` (:data:`METHOD_NAMES`, else ``method`` itself)."""
    return METHOD_NAMES.get(method, method)


def c1_name(c1: float) -> str:
    """``C/4``, ``C/2``, ``3C/4``, ``C`` (else ``0.3C``): C1 as a fraction of the layer's channels C."""
    f = Fraction(float(c1)).limit_denominator(16)
    if abs(float(f) - float(c1)) > 1e-9:
        return f"{float(c1):g}C"
    num = "" if f.numerator == 1 else str(f.numerator)
    return f"{num}C" if f.denominator == 1 else f"{num}C/{f.denominator}"


def channels_name(strategy: str, c1: float) -> str:
    """``All Channels``, ``Mean``, ``Mean of half``, ``Mean of C/4`` (the paper's names, Tables I–II)."""
    if strategy == "all":
        return "All Channels" if float(c1) == 1.0 else f"All of {c1_name(c1)}"
    return {1.0: "Mean", 0.5: "Mean of half"}.get(float(c1), f"Mean of {c1_name(c1)}")


def arch_name(arch: str, width: float = 1.0) -> str:
    """``VGG16-BN ×0.125`` / ``ResNet50`` / ``ViT-B/16 ×0.25`` (:data:`ARCH_NAMES`, else the builder name)."""
    name = ARCH_NAMES.get(arch, arch)
    return name if float(width) == 1.0 else f"{name} ×{float(width):g}"
