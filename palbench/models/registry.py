"""The backbone registry, in the manner of torchvision's ``register_model``: each builder name of
:data:`palbench.config.names.ARCHS` (torchvision's classification builders and the face networks) → the function
that builds that network.

A builder is called ``builder(num_classes=K, width=w, size=s)`` and returns the torchvision network, randomly
initialised, with ``K`` outputs. Which names take a ``width`` < 1 is the configuration's to say
(:data:`palbench.config.names.WIDTH_FAMILIES`, torch-free, so that a config is refused before torch loads); the
builders of those families are :mod:`palbench.models.narrow`'s, ``dlib_face_resnet``'s is
:mod:`palbench.models.dlib_face`'s, every other name is built by torchvision's own builder
(:mod:`palbench.models.backbones`). Registering a name twice, or a name that is not in ``ARCHS``,
fails at import.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from palbench.config.names import ARCHS
from palbench.errors import ConfigError

__all__ = ["Builder", "backbone_builder", "register_backbone", "registered_backbones"]

#: ``builder(num_classes: int, width: float, size: int) -> nn.Module``.
Builder = Callable[..., nn.Module]

_BACKBONES: dict[str, Builder] = {}


def register_backbone(name: str, builder: Builder) -> Builder:
    """Register ``builder`` under ``name`` (a builder name of ``ARCHS``, registered once); returns it."""
    if name not in ARCHS:
        raise ValueError(f"backbone {name!r}: not a torchvision classification builder name or face network (ARCHS)")
    if name in _BACKBONES:
        raise ValueError(f"backbone {name!r}: registered twice")
    _BACKBONES[name] = builder
    return builder


def backbone_builder(name: str) -> Builder:
    """The builder registered under ``name``; ``ConfigError`` naming the choices for any other name."""
    if name not in _BACKBONES:
        raise ConfigError(f"arch {name!r}: expected a torchvision classification model or a face network, one of "
                          f"{', '.join(ARCHS)}")
    return _BACKBONES[name]


def registered_backbones() -> tuple[str, ...]:
    """The registered names, sorted (the same as ``ARCHS`` once :mod:`palbench.models.backbones` is imported)."""
    return tuple(sorted(_BACKBONES))
