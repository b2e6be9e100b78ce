"""Weight sources: palbench / torchvision state dicts (any backbone of :func:`palbench.models.build_model`),
the VGG-Face and VGGFace2 MatConvNet→PyTorch ports, dlib's face ResNet file, and the input normalisation each
was trained with (:data:`IMAGENET_NORMALIZATION`, ...).

Formats, detected from the keys of the loaded state dict (``torch.load(..., weights_only=True)``):

(a) ``palbench``    a state dict of this very model (same keys and shapes, head included); loaded strictly.
                    Its ``_extra_state`` restores ``input_normalization`` and the ResNet layout.
(a') ``backbone``   a palbench state dict without the final classifier layer (``palbench pretrain`` with
                    identities as the pretext writes one): everything but the head, which keeps its random
                    init — the one case where a head is left out on purpose; a head of the wrong size fails.
(b) ``torchvision`` torchvision's key names with a different head (e.g. ImageNet's 1000 classes): everything
                    but the final classifier layer (:func:`head_prefix`: ``classifier.6``, ``fc``,
                    ``heads.head``, ``head``, ...), which keeps its random init.
                    A ViT's position embedding made for another image size is resized to the model's with
                    torchvision's ``interpolate_embeddings`` (bicubic over the patch grid).
(c) ``vgg_face``    ``vgg_face_dag.pth``: ``conv{b}_{i}`` → ``features.N`` (N of the k-th conv), ``fc6`` →
                    ``classifier.0``, ``fc7`` → ``classifier.3``; ``fc8`` (2622 identities) dropped. vgg16 only.
(d) ``vggface2``    ``resnet50_ft_dag.pth`` / ``resnet50_scratch_dag.pth``: ``conv1_7x7_s2[_bn]`` → ``conv1``/
                    ``bn1``; ``conv{s+1}_{b+1}_1x1_reduce`` / ``_3x3`` / ``_1x1_increase`` / ``_1x1_proj``
                    (each with ``_bn``) → ``layer{s}.{b}.conv1/bn1``, ``conv2/bn2``, ``conv3/bn3``,
                    ``downsample.0/1``; ``classifier`` (8631 identities) dropped. The model is switched to the
                    Caffe layout (stride on the 1×1 reduce conv, ceil-mode unpadded max-pool), see
                    :func:`palbench.models.layout.set_resnet_layout`.

(e) ``dlib``        dlib's ``dlib_face_recognition_resnet_model_v1.dat`` (dlib's own serialisation, not a state
                    dict; read by :func:`palbench.models.dlib_face.load_dlib_weights`): every layer of
                    ``dlib_face_resnet`` but its K-class head; its 128-d descriptor projection is dropped.
                    Chosen by the token ``"dlib"`` (:data:`~palbench.config.names.DLIB_WEIGHTS`: the file of the
                    installed ``face_recognition_models`` package) or a path ending in ``.dat``.

``"imagenet"`` reads torchvision's ImageNet file of the model's ``arch`` from ``torch.hub.get_dir()/checkpoints/``
(IMAGENET1K_V1 for the paper's three backbones, torchvision's default weights for the others) and never
downloads; ``"dlib"`` never downloads either. Any missing, unexpected or mis-shaped key raises
:class:`~palbench.errors.WeightsError`.

Build the architecture first (:func:`palbench.models.backbones.build_model`), then
``load_weights(model, weights)``. This module does not import the backbones.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torchvision.models import VGG, ResNet, VisionTransformer, get_model_weights
from torchvision.models.vision_transformer import interpolate_embeddings

from palbench.config.names import DLIB_WEIGHTS
from palbench.errors import ConfigError, WeightsError
from palbench.models.dlib_face import INPUT_SCALE, MEAN_RGB, DlibFaceNet, default_model_path, load_dlib_weights
from palbench.models.layout import set_resnet_layout
from palbench.models.state import EXTRA_STATE as _EXTRA

__all__ = [
    "DLIB_FACE_NORMALIZATION",
    "IMAGENET_NORMALIZATION",
    "IMAGENET_URLS",
    "VGGFACE2_NORMALIZATION",
    "VGGFACE_NORMALIZATION",
    "detect_format",
    "head_prefix",
    "imagenet_url",
    "imagenet_weights_path",
    "load_weights",
]


def _caffe_norm(mean_255: tuple[float, float, float], scale: float = 1.0) -> dict[str, tuple[float, float, float]]:
    # The MatConvNet/Caffe ports expect RGB in 0–255 minus a per-channel mean, no division (scale 1); dlib
    # divides that by 256: (x_255 - m) / scale = (x_01 - m/255) / (scale/255).
    return {"mean": tuple(m / 255.0 for m in mean_255), "std": (scale / 255.0,) * 3}  # type: ignore[return-value]


#: torchvision's ImageNet statistics (RGB, image in [0, 1]); also the default of a randomly initialised model.
IMAGENET_NORMALIZATION: dict[str, tuple[float, float, float]] = {
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
}
#: ``vgg_face_dag.pth`` meta: mean [129.186279296875, 104.76238250732422, 93.59396362304688] (RGB, 0–255), std 1.
VGGFACE_NORMALIZATION = _caffe_norm((129.186279296875, 104.76238250732422, 93.59396362304688))
#: ``resnet50_{ft,scratch}_dag.pth`` meta: mean [131.0912, 103.8827, 91.4953] (RGB, 0–255), std 1.
VGGFACE2_NORMALIZATION = _caffe_norm((131.0912, 103.8827, 91.4953))
#: ``dlib_face_recognition_resnet_model_v1.dat``'s input layer: (RGB 0–255 − mean_rgb) / 256, mean_rgb
#: (122.782, 117.001, 104.298); also the normalisation of a freshly built ``dlib_face_resnet``.
DLIB_FACE_NORMALIZATION = _caffe_norm(MEAN_RGB, INPUT_SCALE)

#: torchvision's IMAGENET1K_V1 URLs (the classic weights; the basename is the torch hub cache file name).
IMAGENET_URLS: dict[str, str] = {
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "vgg16_bn": "https://download.pytorch.org/models/vgg16_bn-6c64b313.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
}

_BN_KEYS = ("weight", "bias", "running_mean", "running_var")


def imagenet_url(arch: str) -> str:
    """The URL of ``arch``'s ImageNet weights: :data:`IMAGENET_URLS`, else torchvision's default weights."""
    if arch in IMAGENET_URLS:
        return IMAGENET_URLS[arch]
    try:
        return str(get_model_weights(arch).DEFAULT.url)
    except (ValueError, KeyError, AttributeError):
        raise ConfigError(f"arch {arch!r}: torchvision knows no ImageNet weights for it") from None


def imagenet_weights_path(arch: str) -> Path:
    """Where ``weights="imagenet"`` looks: ``torch.hub.get_dir()/checkpoints/<basename of the URL>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(imagenet_url(arch))


def _read_state_dict(path: Path) -> dict[str, object]:
    """Load ``path`` with ``weights_only=True``; unwrap ``{"state_dict": ...}``/``{"model": ...}`` and a
    uniform ``module.`` (DDP) prefix. ``path`` exists (see :func:`_weights_file`)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling problem is a bad weights file
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(f"{path}: not a loadable weights file ({msg})") from None
    if isinstance(obj, Mapping):
        for wrapper in ("state_dict", "model"):
            if wrapper in obj and isinstance(obj[wrapper], Mapping) and not isinstance(obj[wrapper], torch.Tensor):
                obj = obj[wrapper]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{path}: expected a state dict (a mapping of names to tensors), got {type(obj).__name__}")
    sd = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def head_prefix(model: nn.Module) -> str:
    """State-dict prefix of the final classifier layer: the last ``nn.Linear`` / ``nn.Conv2d`` in module order
    (``classifier.6.`` VGG, ``fc.`` ResNet, ``heads.head.`` ViT, ``head.`` Swin, ``classifier.2.`` ConvNeXt,
    ``classifier.1.`` SqueezeNet's 1×1 convolution); torchvision defines every classifier's head last."""
    heads = [name for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not heads:
        raise ConfigError(f"{type(model).__name__}: no linear or convolutional layer to serve as the classifier head")
    return heads[-1] + "."


def detect_format(sd: Mapping[str, object], model: nn.Module) -> str:
    """``"vgg_face"``, ``"vggface2"``, ``"backbone"``, ``"torchvision"`` or ``"palbench"`` from the keys of ``sd``.

    ``"backbone"``: palbench's ``_extra_state`` and no head key at all (a head-less pretraining export).

    ``"torchvision"`` only when the head differs from the model's and has 1000 outputs (ImageNet) and the
    dict carries no palbench ``_extra_state``; any other dict is read as ``"palbench"`` and loaded strictly,
    so a checkpoint with the wrong number of classes fails loudly instead of losing its head.
    """
    if "conv1_1.weight" in sd:
        return "vgg_face"
    if "conv1_7x7_s2.weight" in sd:
        return "vggface2"
    head = head_prefix(model)
    if _EXTRA in sd and not any(k.startswith(head) for k in sd):
        return "backbone"
    own = model.state_dict()
    same_head = all(
        k in sd and isinstance(sd[k], torch.Tensor) and tuple(sd[k].shape) == tuple(v.shape)  # type: ignore[union-attr]
        for k, v in own.items()
        if k.startswith(head)
    )
    src_head = sd.get(head + "weight")
    if not same_head and _EXTRA not in sd and isinstance(src_head, torch.Tensor) and src_head.shape[0] == 1000:
        return "torchvision"
    return "palbench"


def _vgg_face_map(model: nn.Module) -> dict[str, str]:
    """torchvision key → vgg_face_dag key, for a VGG without batch norm."""
    if not isinstance(model, VGG):
        raise WeightsError(f"vgg_face_dag weights fit a VGG16, not {type(model).__name__}; use --arch vgg16")
    if any(isinstance(m, nn.BatchNorm2d) for m in model.features):
        raise WeightsError("vgg_face_dag weights have no batch-norm layers; use arch vgg16, not vgg16_bn")
    mapping: dict[str, str] = {}
    block, conv = 1, 0
    for idx, m in model.features.named_children():
        if isinstance(m, nn.MaxPool2d):
            block, conv = block + 1, 0
        elif isinstance(m, nn.Conv2d):
            conv += 1
            for p in ("weight", "bias"):
                mapping[f"features.{idx}.{p}"] = f"conv{block}_{conv}.{p}"
    linears = [name for name, m in model.classifier.named_children() if isinstance(m, nn.Linear)]
    for tv, caffe in zip(linears[:2], ("fc6", "fc7"), strict=True):
        for p in ("weight", "bias"):
            mapping[f"classifier.{tv}.{p}"] = f"{caffe}.{p}"
    return mapping


def _vggface2_map(model: nn.Module) -> dict[str, str]:
    """torchvision key → resnet50_{ft,scratch}_dag key, for a Bottleneck ResNet."""
    if not isinstance(model, ResNet):
        raise WeightsError(f"resnet50_*_dag weights fit a ResNet50, not {type(model).__name__}; use --arch resnet50")
    mapping: dict[str, str] = {"conv1.weight": "conv1_7x7_s2.weight"}
    mapping.update({f"bn1.{p}": f"conv1_7x7_s2_bn.{p}" for p in _BN_KEYS})
    parts = {"conv1": "1x1_reduce", "conv2": "3x3", "conv3": "1x1_increase"}
    for s, stage in enumerate((model.layer1, model.layer2, model.layer3, model.layer4), start=1):
        for b, block in enumerate(stage):
            src, dst = f"conv{s + 1}_{b + 1}_", f"layer{s}.{b}."
            for i in (1, 2, 3):
                caffe = src + parts[f"conv{i}"]
                mapping[f"{dst}conv{i}.weight"] = f"{caffe}.weight"
                mapping.update({f"{dst}bn{i}.{p}": f"{caffe}_bn.{p}" for p in _BN_KEYS})
            if block.downsample is not None:
                mapping[f"{dst}downsample.0.weight"] = f"{src}1x1_proj.weight"
                mapping.update({f"{dst}downsample.1.{p}": f"{src}1x1_proj_bn.{p}" for p in _BN_KEYS})
    return mapping


def _shape(t: object) -> tuple[int, ...] | str:
    return tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__


def _assign(
    model: nn.Module, sd: Mapping[str, object], mapping: dict[str, str], dropped: tuple[str, ...], path: Path
) -> None:
    """Copy ``sd[mapping[k]]`` into model key ``k`` for every mapped key, shapes checked; every model key
    except ``num_batches_tracked``, ``_extra_state`` and the unmapped head must be covered, and every source
    key must be used or start with one of ``dropped``."""
    own = model.state_dict()
    new = dict(own)
    for dst, src in mapping.items():
        if src not in sd:
            raise WeightsError(f"{path}: missing key {src!r} (for {dst}, expected shape {tuple(own[dst].shape)})")
        value = sd[src]
        target = own[dst]
        if isinstance(value, torch.Tensor) and value.dim() == 4 and target.dim() == 2 and value.numel() == target.numel():
            value = value.reshape(target.shape)  # fc6 stored as a 7×7 convolution
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(target.shape):
            raise WeightsError(
                f"{path}: key {src!r} has shape {_shape(value)}, model {dst!r} expects {tuple(target.shape)}"
            )
        new[dst] = value.to(dtype=target.dtype)
    used = set(mapping.values())
    for k in sd:
        if k not in used and not k.endswith("num_batches_tracked") and not k.startswith(dropped) and k != _EXTRA:
            raise WeightsError(f"{path}: unexpected key {k!r} (no matching layer in the model)")
    model.load_state_dict(new, strict=True)


def _load_own_keys(model: nn.Module, sd: Mapping[str, object], path: Path, with_head: bool) -> None:
    """Formats (a) and (b): identical key names; (b) leaves the final classifier layer out."""
    head = head_prefix(model)
    sd = _fit_position_embedding(model, sd)
    mapping = {
        k: k
        for k in model.state_dict()
        if k != _EXTRA and (not k.endswith("num_batches_tracked") or k in sd) and (with_head or not k.startswith(head))
    }
    _assign(model, sd, mapping, dropped=() if with_head else (head,), path=path)
    if _EXTRA in sd:  # restored by the model's own state hook (palbench.models.state); a plain module ignores it
        model.load_state_dict({_EXTRA: sd[_EXTRA]}, strict=False)


def _fit_position_embedding(model: nn.Module, sd: Mapping[str, object]) -> Mapping[str, object]:
    """A ViT state dict whose position embedding has another number of patches (weights trained at another
    image size): resized to ``model``'s grid by torchvision's ``interpolate_embeddings``."""
    key = "encoder.pos_embedding"
    if not isinstance(model, VisionTransformer) or not isinstance(sd.get(key), torch.Tensor):
        return sd
    if tuple(sd[key].shape) == tuple(model.encoder.pos_embedding.shape):  # type: ignore[union-attr]
        return sd
    return interpolate_embeddings(model.image_size, model.patch_size, dict(sd))  # type: ignore[arg-type]


def _weights_file(model: nn.Module, weights: str | os.PathLike[str]) -> Path:
    """The existing file ``weights`` names: the path itself, for ``"imagenet"`` the hub cache file of
    ``model.arch``, for ``"dlib"`` the installed ``face_recognition_models`` file; a missing one raises a
    one-line :class:`WeightsError`."""
    if str(weights) == DLIB_WEIGHTS:
        path = default_model_path()  # WeightsError when face_recognition_models is not installed
        if not path.is_file():
            raise WeightsError(f"weights 'dlib': {path} not found (the face_recognition_models package lacks its "
                               "dlib_face_recognition_resnet_model_v1.dat; reinstall it, or pass the .dat path)")
        return path
    if str(weights) != "imagenet":
        path = Path(weights)
        if not path.is_file():
            raise WeightsError(f"{weights}: weights file not found (expected a .pth/.pt state dict, a dlib .dat, "
                               "'imagenet' or 'dlib')")
        return path
    arch = getattr(model, "arch", None)
    if not isinstance(arch, str):
        raise ConfigError("weights 'imagenet': the model has no `arch` (build it with palbench.models.build_model)")
    path = imagenet_weights_path(arch)
    if not path.is_file():
        raise WeightsError(
            f"ImageNet weights for {arch} not found: place {path.name} ({imagenet_url(arch)}) at {path} "
            "(palbench never downloads)"
        )
    return path


def _load_dlib(model: nn.Module, path: Path) -> None:
    """Format (e): dlib's ``.dat`` into a ``dlib_face_resnet`` (head kept), with the file's input normalisation."""
    if not isinstance(model, DlibFaceNet) or model.pixel_input:
        raise WeightsError(f"{path}: dlib's face-recognition ResNet weights fit --arch dlib_face_resnet, not "
                           f"{getattr(model, 'arch', type(model).__name__)}")
    net = load_dlib_weights(model, path)
    model.input_normalization = _caffe_norm(net.mean_rgb, INPUT_SCALE)


def load_weights(model: nn.Module, weights: str | os.PathLike[str]) -> str:
    """Load ``weights`` into ``model`` (from :func:`~palbench.models.backbones.build_model`) in place.

    Args:
        model: a model of :func:`~palbench.models.backbones.build_model`; ``model.arch`` names it for
            ``"imagenet"``.
        weights: a ``.pth``/``.pt`` path (format detected from its keys, see the module docstring),
            ``"imagenet"`` (torchvision's ImageNet weights from the torch hub cache only — never downloaded),
            or for ``dlib_face_resnet`` ``"dlib"`` (the installed face_recognition_models file) or a ``.dat`` path.

    Returns:
        The detected format: ``"palbench"``, ``"backbone"``, ``"torchvision"``, ``"vgg_face"``, ``"vggface2"``
        or ``"dlib"``.

    Side effects: sets ``model.input_normalization`` to the statistics the weights were trained with and,
    for the VGGFace2 ResNet, switches the model to the Caffe layout.
    """
    path = _weights_file(model, weights)
    if str(weights) == DLIB_WEIGHTS or path.suffix == ".dat":
        _load_dlib(model, path)
        return "dlib"
    sd = _read_state_dict(path)
    fmt = detect_format(sd, model)
    if fmt == "vgg_face":
        _assign(model, sd, _vgg_face_map(model), dropped=("fc8.",), path=path)
        model.input_normalization = dict(VGGFACE_NORMALIZATION)
    elif fmt == "vggface2":
        mapping = _vggface2_map(model)
        _assign(model, sd, mapping, dropped=("classifier.",), path=path)
        set_resnet_layout(model, "caffe")  # type: ignore[arg-type]
        model.input_normalization = dict(VGGFACE2_NORMALIZATION)
    elif fmt == "palbench":
        _load_own_keys(model, sd, path, with_head=True)
    elif fmt == "backbone":
        _load_own_keys(model, sd, path, with_head=False)
    else:
        _load_own_keys(model, sd, path, with_head=False)
        model.input_normalization = dict(IMAGENET_NORMALIZATION)
    return fmt
