"""One training run's resolved configuration (paper §IV-B defaults) and its validation.

A run is fully described by a :class:`TrainConfig`: the run folder stores it as ``config.json`` and
``--resume`` refuses a folder whose stored config differs in any key that changes the result.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from palbench.errors import ConfigError
from palbench.objective import PalConfig

#: Keys that do not change the result of a run (may differ on --resume).
NON_RESULT_KEYS = frozenset({"workers", "progress", "checkpoint_every"})
AMP_MODES = ("none", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    """Everything one run depends on. Defaults follow the paper's RAF-DB protocol (§IV-B).

    Attributes:
        data: canonical dataset folder.
        landmarks: landmark set ``[N, 68, 2]`` (.npy, e.g. a jittered set of the priors stage);
            ``None`` = the dataset's ``landmarks.npy``.
        arch, width, weights: backbone (see :func:`palbench.models.build_model`).
        size: input size in pixels (paper: 224).
        epochs: training epochs (paper: 75); ``max_steps`` caps the optimiser steps (AffectNet: 40k).
        batch_size: global batch (paper: 16), kept under DDP.
        lr, lr_power: Adam base learning rate and the power of the polynomial decay to 0.
        balanced: class-balanced mini-batches (AffectNet).
        seed: the only source of randomness (init, data order, augmentation, dropout).
        layer, method, strategy, c1, pal_weight, prior_sigma: PAL settings (:class:`PalConfig`);
            ``pal_weight = 0`` is the baseline, identical otherwise (same seed, same data order). The paper
            gives no λ; 1 had the best mean test accuracy of {0, 0.3, 1, 3} × 3 seeds on the built-in
            benchmark (``benchmarks/calibration/lambda_sweep_decoy06.md``).
        augment: rotation ±10° + horizontal flip.
        dropout: probability of the VGG classifier's dropout layers (``None``: torchvision's 0.5).
        amp: ``none`` | ``bf16`` | ``fp16`` autocast (CUDA); channels_last: memory format (CUDA).
        workers: data-loader processes; checkpoint_every: optimiser steps between resume points.
    """

    data: str
    landmarks: str | None = None
    arch: str = "vgg16"
    width: float = 1.0
    weights: str | None = None
    size: int = 224
    epochs: int = 75
    max_steps: int | None = None
    batch_size: int = 16
    lr: float = 5e-5
    lr_power: float = 0.9
    balanced: bool = False
    seed: int = 0
    layer: str = "conv10"
    method: str = "grad_input"
    strategy: str = "mean"
    c1: float = 0.5
    pal_weight: float = 1.0
    prior_sigma: float = 3.0
    augment: bool = True
    dropout: float | None = None
    amp: str = "none"
    channels_last: bool = False
    workers: int = 0
    checkpoint_every: int = 200
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pal  # validates method, strategy, c1, weight, sigma
        for key in ("size", "epochs", "batch_size", "checkpoint_every"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{key}: expected an integer >= 1, got {v!r}")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            raise ConfigError(f"max_steps: expected an integer >= 1 or null, got {self.max_steps!r}")
        if not self.lr > 0:
            raise ConfigError(f"lr: expected a number > 0, got {self.lr!r}")
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
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(sorted(names))}")
        try:
            return cls(**d)
        except TypeError as e:
            raise ConfigError(f"{where}: {e}") from None


def result_diff(stored: dict[str, Any], asked: dict[str, Any]) -> list[str]:
    """Keys (that change results) whose values differ, as ``key (run has A, asked B)``."""
    keys = sorted((set(stored) | set(asked)) - NON_RESULT_KEYS)
    return [f"{k} (run has {stored.get(k)!r}, asked {asked.get(k)!r})" for k in keys if stored.get(k) != asked.get(k)]


def load_config_file(path: str | Path) -> dict[str, Any]:
    """TrainConfig keys from a YAML or JSON file (a mapping at the top level)."""
    import yaml

    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of TrainConfig keys at the top level")
    return values


def read_config(path: str | Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: unreadable run config ({e})") from None
