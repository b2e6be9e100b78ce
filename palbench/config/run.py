"""One training run's resolved configuration (paper §IV-B defaults) and its validation; torch-free.

A run is fully described by a :class:`TrainConfig`: the run folder stores it as ``config.json`` (every
setting, ``landmark_noise`` included, so ``palbench aggregate`` reads a run's settings from there and
never from its folder name) and ``--resume`` refuses a folder whose stored config differs in any key that
changes the result.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from palbench.config.names import (AMP_MODES, ARCHS, METHODS, STRATEGIES, check_renamed, check_size, check_width,
                                   constrained_channels, run_name, seed_folder)
from palbench.config.files import read_yaml
from palbench.errors import ConfigError

#: Keys that do not change the result of a run (may differ on --resume).
NON_RESULT_KEYS = frozenset({"workers", "progress", "checkpoint_every"})


@dataclass(frozen=True)
class PalConfig:
    """PAL settings of one run (the part of :class:`TrainConfig` the objective reads). Their defaults are declared
    here only: :class:`TrainConfig`'s PAL fields read them.

    Attributes:
        layer: catalogue name of the constrained layer (``conv10``, ``layer4.2``, ...; default: VGG16's conv10).
        method: attribution method (``grad`` eq. 2, ``grad_input`` eq. 3, ``gradcam``).
        strategy: channel strategy (``mean`` eq. 5-6, ``all``).
        c1: fraction of constrained channels, in (0, 1] (0.5 = Mean of half).
        pal_weight: λ, the weight of the PAL term; 0 = baseline (CE only, same forward).
        prior_sigma: σ of the prior's Gaussians in pixels of the attribution map (paper: 3).
    """

    layer: str = "conv10"
    method: str = "grad_input"
    strategy: str = "mean"
    c1: float = 0.5
    pal_weight: float = 1.0
    prior_sigma: float = 3.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"method: unknown attribution method {self.method!r}; expected one of {', '.join(METHODS)}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy: unknown channel strategy {self.strategy!r}; expected one of {', '.join(STRATEGIES)}")
        constrained_channels(1, self.c1)  # validates c1 in (0, 1]
        if not _number(self.pal_weight) or not self.pal_weight >= 0:
            raise ConfigError(f"pal_weight: expected a number >= 0, got {self.pal_weight!r}")
        if not _number(self.prior_sigma) or not self.prior_sigma > 0:
            raise ConfigError(f"prior_sigma: expected a number > 0, got {self.prior_sigma!r}")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class TrainConfig:
    """Everything one run depends on. Defaults follow the paper's RAF-DB protocol (§IV-B).

    Attributes:
        data: canonical dataset folder.
        landmarks: landmark file ``[N, 68, 2]`` (.npy), or a folder of the priors stage (its set of
            ``landmark_noise``); ``None`` = the dataset's ``landmarks.npy``.
        arch, width, weights: backbone (see :func:`palbench.models.build_model`); ``weights``: a ``.pth``/``.pt``
            state dict, ``imagenet`` (torchvision's file of ``arch``), ``dlib`` (dlib's own file of
            ``dlib_face_resnet``) or a dlib ``.dat`` path (:func:`palbench.models.load_weights`); ``None``: scratch.
        keep_up_to: the *partial* start: the last layer (catalogue name, e.g. ``conv4``) whose ``weights`` are
            kept; every layer above it and the head start from the seed's initialisation, as from scratch
            (:mod:`palbench.models.partial`). ``None``: every weight is kept.
        size: input size in pixels (paper: 224).
        epochs: training epochs (paper: 75); ``max_steps`` caps the optimiser steps (AffectNet: 40k).
        batch_size: global batch (paper: 16), kept under DDP.
        lr, lr_power: Adam base learning rate and the power of the polynomial decay to 0.
        balanced: class-balanced mini-batches (AffectNet).
        seed: the only source of randomness (init, data order, augmentation, dropout).
        landmark_noise: σ of the landmark jitter (noise study, pixels of a 224 crop): with ``landmarks`` a
            folder of the priors stage, the set of this σ is read (:func:`~palbench.config.landmark_set_path`).
        layer, method, strategy, c1, pal_weight, prior_sigma: PAL settings (:class:`PalConfig`, which declares
            their defaults);
            ``pal_weight = 0`` is the baseline, identical otherwise (same seed, same data order). The paper
            gives no λ; 1 had the best mean test accuracy of {0, 0.3, 1, 3} × 3 seeds on the built-in
            benchmark (``benchmarks/calibration/lambda_sweep_decoy06.md``).
        augment: rotation ±``max_rotation``° + horizontal flip (paper: ±10°); ``max_rotation = 0``: flips only.
        dropout: probability of the VGG classifier's dropout layers (``None``: torchvision's 0.5).
        amp: ``none`` | ``bf16`` | ``fp16`` autocast (CUDA); channels_last: memory format (CUDA).
        workers: data-loader processes; checkpoint_every: optimiser steps between resume points.
    """

    data: str
    landmarks: str | None = None
    landmark_noise: float = 0.0
    arch: str = "vgg16"
    width: float = 1.0
    weights: str | None = None
    keep_up_to: str | None = None
    size: int = 224
    epochs: int = 75
    max_steps: int | None = None
    batch_size: int = 16
    lr: float = 5e-5
    lr_power: float = 0.9
    balanced: bool = False
    seed: int = 0
    layer: str = PalConfig.layer
    method: str = PalConfig.method
    strategy: str = PalConfig.strategy
    c1: float = PalConfig.c1
    pal_weight: float = PalConfig.pal_weight
    prior_sigma: float = PalConfig.prior_sigma
    augment: bool = True
    max_rotation: float = 10.0
    dropout: float | None = None
    amp: str = "none"
    channels_last: bool = False
    workers: int = 0
    checkpoint_every: int = 200
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pal  # validates method, strategy, c1, pal_weight, prior_sigma
        if self.arch not in ARCHS:
            raise ConfigError(f"arch: expected a torchvision classification model or a face network, one of "
                              f"{', '.join(ARCHS)}; got {self.arch!r}")
        check_width(self.arch, self.width)
        if self.keep_up_to is not None:
            if not isinstance(self.keep_up_to, str) or not self.keep_up_to:
                raise ConfigError(f"keep_up_to: expected a layer name such as conv4, got {self.keep_up_to!r}")
            if self.weights is None:
                raise ConfigError(f"keep_up_to: {self.keep_up_to!r} keeps the lower layers of `weights`, but "
                                  "weights is null (a run from scratch keeps nothing)")
        if not _number(self.landmark_noise) or not self.landmark_noise >= 0:
            raise ConfigError(f"landmark_noise: expected a number >= 0, got {self.landmark_noise!r}")
        for key in ("size", "epochs", "batch_size", "checkpoint_every"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{key}: expected an integer >= 1, got {v!r}")
        check_size(self.arch, self.size)
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            raise ConfigError(f"max_steps: expected an integer >= 1 or null, got {self.max_steps!r}")
        if not self.lr > 0:
            raise ConfigError(f"lr: expected a number > 0, got {self.lr!r}")
        if not _number(self.max_rotation) or not 0 <= self.max_rotation <= 180:
            raise ConfigError(f"max_rotation: expected degrees in [0, 180], got {self.max_rotation!r}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout: expected a probability in [0, 1) or null, got {self.dropout!r}")
        if self.amp not in AMP_MODES:
            raise ConfigError(f"amp: expected one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        if not isinstance(self.workers, int) or self.workers < 0:
            raise ConfigError(f"workers: expected an integer >= 0, got {self.workers!r}")

    @property
    def pal(self) -> PalConfig:
        return PalConfig(self.layer, self.method, self.strategy, self.c1, self.pal_weight, self.prior_sigma)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "config") -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        check_renamed(set(d) - names, where)
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(sorted(names))}")
        try:
            return cls(**d)
        except TypeError as e:
            raise ConfigError(f"{where}: {e}") from None


def planned_runs(
    values: Mapping[str, Any],
    out: str | Path,
    seeds: Sequence[int] | None = None,
    group: str | None = None,
    params: Mapping[str, Any] | None = None,
    where: str = "command line",
) -> list[tuple[TrainConfig, Path]]:
    """The runs one ``palbench train`` makes, ``[(config, run folder)]``, every configuration validated before
    anything trains (:func:`palbench.workers.train_runs` trains them):

    - one run of ``values`` into ``out``;
    - ``seeds``: one run per seed into ``out/s<seed>``;
    - ``group``: every configuration of ``params["runs"][group]`` × ``params["seeds"]``, into
      ``out/<config>/s<seed>`` (the DVC grid: one stage per group); settings: ``params["train"]``, then
      ``values``, then the configuration's overrides (whose ``seeds``, where a study set its own, replace
      ``params["seeds"]``).

    ``where`` names the settings' source in errors: the ``--config`` file or ``command line``; with ``group``,
    the params file.
    """
    if group is not None:
        if group not in params["runs"]:
            raise ConfigError(f"{where}: runs has no group {group!r}; expected one of {', '.join(params['runs'])}")
        values = {**params["train"], **values}
        return [(TrainConfig.from_dict({**values, **{k: v for k, v in overrides.items() if k != "seeds"}, "seed": seed},
                                       where=f"{where}: runs.{group}.{config}"),
                 Path(out) / Path(run_name(config, seed)))
                for config, overrides in params["runs"][group].items()
                for seed in overrides.get("seeds") or params["seeds"]]
    if seeds is None:
        return [(TrainConfig.from_dict(dict(values), where=where), Path(out))]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"train: --seeds {list(seeds)} repeats a seed")
    return [(TrainConfig.from_dict({**values, "seed": s}, where=where), Path(out) / seed_folder(s)) for s in seeds]


def result_diff(stored: dict[str, Any], asked: dict[str, Any]) -> list[str]:
    """Keys (that change results) whose values differ, as ``key (run has A, asked B)``."""
    keys = sorted((set(stored) | set(asked)) - NON_RESULT_KEYS)
    return [f"{k} (run has {stored.get(k)!r}, asked {asked.get(k)!r})" for k in keys if stored.get(k) != asked.get(k)]


def load_config_file(path: str | Path) -> dict[str, Any]:
    """TrainConfig keys from a YAML or JSON file (a mapping at the top level)."""
    return read_yaml(path, "config file not found", "a mapping of TrainConfig keys")


def read_config(path: str | Path) -> dict[str, Any]:
    """A run's ``config.json`` as a dict."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: unreadable run config ({e})") from None
