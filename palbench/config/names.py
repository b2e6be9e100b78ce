"""The vocabulary of palbench: the names of methods, strategies and backbones, the one name of each
parameter, and the names palbench gives to things on disk (run folders, landmark-noise files).

One idea, one name, everywhere (code, params, CLI flags, tables, notebooks, README):

=================  ==========================================================================================
``pal_weight``     λ, the weight of the PAL term (0 = the cross-entropy baseline)
``prior_sigma``    σ of the landmark Gaussians of the prior (eq. 8), pixels of the attribution map
``landmark_noise`` σ of the jitter added to the landmarks (the noise study), pixels of a 224×224 crop
``c1``             fraction of the channels that PAL constrains (0.5 = Mean of half)
=================  ==========================================================================================

A key that palbench used to spell otherwise is refused with a one-line error naming the new key
(:func:`check_renamed`). Nothing here imports torch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from palbench.errors import ConfigError

#: Attribution methods usable from one forward pass (:func:`palbench.attribution.layer_attribution`).
METHODS: tuple[str, ...] = ("grad", "grad_input", "gradcam")
#: Channel strategies of the PAL term (:func:`palbench.loss.pal_loss`).
STRATEGIES: tuple[str, ...] = ("all", "mean")
#: torchvision's classification builders (``torchvision.models.list_models(module=torchvision.models)`` of the
#: pinned torchvision, written out so that configuration stays torch-free; tests/test_backbones.py checks the two
#: agree).
TORCHVISION_ARCHS: tuple[str, ...] = (
    "alexnet", "convnext_base", "convnext_large", "convnext_small", "convnext_tiny", "densenet121", "densenet161",
    "densenet169", "densenet201", "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
    "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7", "efficientnet_v2_l",
    "efficientnet_v2_m", "efficientnet_v2_s", "googlenet", "inception_v3", "maxvit_t", "mnasnet0_5", "mnasnet0_75",
    "mnasnet1_0", "mnasnet1_3", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "regnet_x_16gf",
    "regnet_x_1_6gf", "regnet_x_32gf", "regnet_x_3_2gf", "regnet_x_400mf", "regnet_x_800mf", "regnet_x_8gf",
    "regnet_y_128gf", "regnet_y_16gf", "regnet_y_1_6gf", "regnet_y_32gf", "regnet_y_3_2gf", "regnet_y_400mf",
    "regnet_y_800mf", "regnet_y_8gf", "resnet101", "resnet152", "resnet18", "resnet34", "resnet50",
    "resnext101_32x8d", "resnext101_64x4d", "resnext50_32x4d", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0",
    "shufflenet_v2_x1_5", "shufflenet_v2_x2_0", "squeezenet1_0", "squeezenet1_1", "swin_b", "swin_s", "swin_t",
    "swin_v2_b", "swin_v2_s", "swin_v2_t", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19",
    "vgg19_bn", "vit_b_16", "vit_b_32", "vit_h_14", "vit_l_16", "vit_l_32", "wide_resnet101_2", "wide_resnet50_2",
)  # fmt: skip
#: Face-recognition networks palbench reads from their authors' files, not torchvision's:
#: ``dlib_face_resnet``, dlib's face ResNet (``dlib_face_recognition_resnet_model_v1.dat``,
#: :mod:`palbench.models.dlib_face`), whose own weights are ``weights: dlib`` (:data:`DLIB_WEIGHTS`).
FACE_ARCHS: tuple[str, ...] = ("dlib_face_resnet",)
#: Backbones of :func:`palbench.models.build_model`: torchvision's classification builders and the face networks.
ARCHS: tuple[str, ...] = TORCHVISION_ARCHS + FACE_ARCHS
#: The ``weights`` value that loads dlib's own file into ``dlib_face_resnet``: the
#: ``dlib_face_recognition_resnet_model_v1.dat`` of the installed ``face_recognition_models`` package (never
#: downloaded), as ``imagenet`` loads torchvision's file of a torchvision arch. A ``.dat`` path loads that file.
DLIB_WEIGHTS = "dlib"


def dlib_model_file() -> Path:
    """The installed ``dlib_face_recognition_resnet_model_v1.dat`` (package ``face_recognition_models``, torch-free);
    :class:`ConfigError` when the package is missing."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the package imports the deprecated pkg_resources
            import face_recognition_models
    except ImportError:
        raise ConfigError("dlib face model: the face_recognition_models package is not installed; "
                          "pass the .dat path explicitly") from None
    return Path(face_recognition_models.face_recognition_model_location())

#: The smallest input side ``dlib_face_resnet`` takes. Its stride-2 convolutions are unpadded (the 7×7 stem's
#: and each down block's 3×3), so a map of side ``h`` leaves a down block at ``⌊h/2⌋`` and the stem at
#: ``⌊(s−7)/2⌋+1``: layer5.0's 3×3 convolution needs layer4's map ≥ 3, i.e. ≥ 6 into layer4, ≥ 12 into layer3,
#: ≥ 24 into layer2, ≥ 49 out of the stem, an image ≥ 103 px (112: layer5.0's map is 1×1; 150, dlib's chip: 2×2).
DLIB_FACE_MIN_SIZE = 103
#: Families whose channels ``width`` < 1 can narrow (:func:`palbench.models.build_model`), by builder-name prefix;
#: others build at width 1 only.
WIDTH_FAMILIES: dict[str, tuple[str, ...]] = {
    "vgg": ("vgg",), "resnet": ("resnet", "resnext", "wide_resnet"), "convnext": ("convnext",),
    "efficientnet": ("efficientnet_b",), "mobilenet_v2": ("mobilenet_v2",), "mobilenet_v3": ("mobilenet_v3",),
    "vit": ("vit_",), "swin": ("swin_",),
}  # fmt: skip


def width_family(arch: str) -> str | None:
    """The family of :data:`WIDTH_FAMILIES` ``arch`` belongs to, or ``None`` (no width knob)."""
    return next((family for family, prefixes in WIDTH_FAMILIES.items() if arch.startswith(prefixes)), None)


def check_width(arch: str, width: float) -> None:
    """``width``: a number in (0, 1], and 1 for an ``arch`` without a width knob (:data:`WIDTH_FAMILIES`); the
    one check of it (:class:`~palbench.config.TrainConfig` and ``build_model``). Raises :class:`ConfigError`."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 1:
        raise ConfigError(f"width: expected a number in (0, 1], got {width!r}")
    if width != 1 and width_family(arch) is None:
        raise ConfigError(f"width: {arch} has no width knob (width 1 only); families with one: "
                          f"{', '.join(WIDTH_FAMILIES)}")


def check_size(arch: str, size: int) -> None:
    """``size`` (pixels, an integer ≥ 1) fits ``arch``: a ViT cuts the image into patches of the side its
    torchvision name ends with (``vit_b_32`` → 32), so the size must be a multiple of it; ``dlib_face_resnet``
    takes :data:`DLIB_FACE_MIN_SIZE` px or more. Raises :class:`ConfigError` ``size: ...``; other architectures
    take any size here (the network says otherwise)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"size: expected an integer >= 1, got {size!r}")
    if arch == "dlib_face_resnet" and size < DLIB_FACE_MIN_SIZE:
        raise ConfigError(f"size: dlib_face_resnet takes at least {DLIB_FACE_MIN_SIZE} px (its unpadded stride-2 "
                          f"convolutions shrink the map below layer5.0's 3×3 kernel); expected 150 (dlib's chip) or "
                          f"112 (the images are resized to it), got {size}")
    patch = re.fullmatch(r"vit_[a-z]_(\d+)", arch)
    if patch and size % int(patch.group(1)):
        p = int(patch.group(1))
        raise ConfigError(f"size: {arch} cuts the image into {p}×{p} patches; expected a multiple of {p} "
                          f"(e.g. {max(p, size // p * p)} or {(size // p + 1) * p}), got {size}")


#: Side of the aligned face crops in pixels (RAF-DB's aligned crops are 100; a multiple of 16 suits the
#: backbones) and their room around the face (share of the face scale on each side): :mod:`palbench.data.align`.
CROP_SIZE = 112
MARGIN = 0.4
#: Autocast modes of a training run.
AMP_MODES: tuple[str, ...] = ("none", "bf16", "fp16")

#: Keys palbench once spelt otherwise, per section (``None``: a run's settings: ``train``, ``set``, ``vary``,
#: ``runs``, a ``--config`` file) → the one name now.
RENAMED: dict[str | None, dict[str, str]] = {
    None: {"weight": "pal_weight", "lambda": "pal_weight", "sigma": "prior_sigma", "psigma": "prior_sigma",
           "noise": "landmark_noise", "noise_sigma": "landmark_noise"},
    "priors": {"noise_sigmas": "landmark_noise", "sigma": "landmark_noise"},
    "reports": {"sigma": "landmark_noise"},
}  # fmt: skip
#: Command-line flags once spelt otherwise → the flag now (DVC writes ``${train}``'s keys as flags, so an old key
#: left in a protocol's ``train`` or passed by ``dvc exp run -S train.weight=…`` is caught here too).
RENAMED_FLAGS: dict[str, str] = {
    "--" + old.replace("_", "-"): "--" + new.replace("_", "-") for old, new in {**RENAMED["priors"], **RENAMED[None]}.items()
}


def check_renamed(keys: Iterable[str], where: str, section: str | None = None) -> None:
    """Refuse a key that palbench renamed: ``ConfigError`` ``<where>: key 'noise_sigmas' is now 'landmark_noise'``."""
    renamed = RENAMED.get(section, {})
    for key in keys:
        if key in renamed:
            raise ConfigError(f"{where}: key {key!r} is now {renamed[key]!r} (one name per parameter); rename it")


def constrained_channels(channels: int, c1: float) -> int:
    """``C1 = round(c1 · C)``, at least 1: how many of a layer's ``C`` channels PAL constrains (eq. 6).

    ``c1`` must lie in ``(0, 1]``; ``channels = 1`` validates ``c1`` alone.
    """
    if isinstance(c1, bool) or not (isinstance(c1, (int, float)) and 0.0 < float(c1) <= 1.0):
        raise ConfigError(f"c1 must be in (0, 1] (fraction of channels constrained), got {c1!r}")
    return max(1, int(round(float(c1) * channels)))


# --- run and configuration names ------------------------------------------------------------------------------

#: Order of the keys in a configuration name (others follow alphabetically).
NAME_ORDER = ("arch", "width", "weights", "size", "layer", "method", "strategy", "c1", "prior_sigma",
              "landmark_noise")
#: Values written bare in configuration names; other keys are written ``key_value``.
BARE_KEYS = ("arch", "layer", "method", "strategy")
_SEED = re.compile(r"(?:(?P<group>[A-Za-z0-9_-]+)/)?(?P<config>[A-Za-z0-9_-]+)/s(?P<seed>[0-9]+)")


#: A pretraining's weights (``pretrain/<name>/weights.pt``), named by its entry in configuration names.
_PRETRAINED = re.compile(r"pretrain/(?P<name>[A-Za-z0-9_-]+)/weights\.pt")


def _text(value: Any, key: str = "") -> str:
    if key == "weights" and isinstance(value, str) and _PRETRAINED.fullmatch(value):
        return _PRETRAINED.fullmatch(value)["name"]
    if key == "weights" and value is None:
        return "scratch"
    if key == "data" and isinstance(value, str):
        return value.rstrip("/").rsplit("/", 1)[-1]  # data/synth-none -> synth-none
    return f"{value:g}" if isinstance(value, float) else str(value)


def config_name(conf: Mapping[str, Any], defaults: Mapping[str, Any]) -> str:
    """A readable, unique name of a configuration: ``base`` or ``pal``, then the settings that differ from
    ``defaults`` (``pal-conv4-grad``, ``pal-c1_0p25``, ``pal-landmark_noise_4``, ``base``; a pretraining's
    weights by its entry: ``base-resnet18-width_0p25-weights_synth-faces-resnet18``).

    Names are DVC stage keys: letters, digits, ``-`` and ``_`` only (a ``.`` becomes ``p``). The name is a
    label for people and folders; palbench never reads settings back from it (they are in ``config.json``).
    """
    diff = {k: v for k, v in conf.items() if k != "pal_weight" and v != defaults.get(k)}
    keys = [k for k in NAME_ORDER if k in diff] + sorted(k for k in diff if k not in NAME_ORDER)
    pal_weight = conf.get("pal_weight", defaults.get("pal_weight"))
    if pal_weight not in (0, defaults.get("pal_weight")):
        keys.insert(0, "pal_weight")
        diff["pal_weight"] = pal_weight
    parts = ["base" if pal_weight == 0 else "pal"]
    parts += [_text(diff[k]) if k in BARE_KEYS else f"{k}_{_text(diff[k], k)}" for k in keys]
    return re.sub(r"[^A-Za-z0-9_-]", "", "-".join(parts).replace(".", "p"))


#: Pretexts of ``palbench pretrain``: the dataset's expression labels, or identities from its ``subject`` column.
PRETEXTS = ("label", "subject")


def seed_folder(seed: int) -> str:
    """The folder of ``seed``'s run inside its configuration's folder: ``s<seed>``."""
    return f"s{int(seed)}"


def run_name(config: str, seed: int, group: str | None = None) -> str:
    """The run of configuration ``config`` with ``seed``: ``<config>/s<seed>``, or ``<group>/<config>/s<seed>``
    in the grid (a folder under ``runs/``: one DVC stage trains a group's configurations, ``runs/<group>``,
    each configuration's seeds in ``runs/<group>/<config>``)."""
    return f"{group + '/' if group else ''}{config}/{seed_folder(seed)}"


def parse_run_name(name: str) -> tuple[str, int]:
    """``(config, seed)`` of a run name written by :func:`run_name`; ``ConfigError`` for any other string."""
    m = _SEED.fullmatch(name)
    if not m:
        raise ConfigError(f"run name {name!r}: expected [<group>/]<configuration>/s<seed>, e.g. "
                          "layers/pal-conv4-grad/s0")
    return m["config"], int(m["seed"])


# --- landmark-noise sets of the priors stage ------------------------------------------------------------------


def noise_file(landmark_noise: float) -> str:
    """File name of the landmark set of ``landmark_noise`` in a priors folder (``landmarks_noise2.npy``,
    ``landmarks_noise2.5.npy``). The priors stage writes these names and :func:`landmark_set_path` finds
    them; nothing reads a σ back from a file name."""
    return f"landmarks_noise{float(landmark_noise):g}.npy"


def landmark_set_path(landmarks: str | Path | None, landmark_noise: float = 0.0) -> Path | None:
    """The landmark file a run reads.

    Args:
        landmarks: a landmark file ``.npy [N, 68, 2]``; or a folder written by the priors stage
            (``palbench priors``), whose set of ``landmark_noise`` is taken; or ``None`` (the dataset's own
            ``landmarks.npy``, returned as ``None``).
        landmark_noise: σ of the set to take from a priors folder; must be 0 with a file or ``None``.

    Raises:
        ConfigError: ``landmark_noise`` without a priors folder, or a σ the folder has no set of.
    """
    if not isinstance(landmark_noise, (int, float)) or isinstance(landmark_noise, bool) or not (
            math.isfinite(landmark_noise) and landmark_noise >= 0):
        raise ConfigError(f"landmark_noise: expected a number >= 0, got {landmark_noise!r}")
    if landmarks is None or not Path(landmarks).is_dir():
        if landmark_noise != 0:
            raise ConfigError(
                f"landmark_noise {landmark_noise:g} selects a landmark set of the priors stage: set landmarks to "
                f"its folder (e.g. priors/<data>), not {'a file' if landmarks else 'the dataset'} ({landmarks})")
        return None if landmarks is None else Path(landmarks)
    path = Path(landmarks) / noise_file(landmark_noise)
    if not path.is_file():
        raise ConfigError(f"{path}: no landmark set for landmark_noise {landmark_noise:g} (the priors stage drew "
                          f"{', '.join(_drawn(Path(landmarks))) or 'none'}); add it to priors.landmark_noise")
    return path


def _drawn(folder: Path) -> list[str]:
    """The σ a priors folder has sets of, from its ``priors.json`` (for error messages)."""
    import json

    try:
        return list(json.loads((folder / "priors.json").read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return []
