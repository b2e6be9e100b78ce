"""Checkpoints: atomic writes, ``weights_only=True`` reads, RNG state capture.

Everything stored is tensors, numbers, strings, lists and dicts, so ``torch.load(..., weights_only=True)``
reads every palbench checkpoint (no pickled code runs when a file is opened).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from palbench.errors import DataError
from palbench.io import atomic_path


def save_checkpoint(path: str | Path, obj: dict[str, Any]) -> None:
    """``torch.save`` to a temp file beside ``path``, then rename: a kill never leaves half a file."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; a missing or corrupt file is a one-line DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for corrupt files
        raise DataError(f"{path}: unreadable checkpoint ({str(e).splitlines()[0]})") from None


def rng_state() -> dict[str, Any]:
    """The global torch RNG states (CPU and CUDA) — dropout draws from them."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def load_trained_model(run: str | Path, map_location: Any = "cpu"):
    """The best model of a run folder (or a ``best.pt`` path), in eval mode, and its :class:`TrainConfig`.

    Returns:
        ``(model, config)``; the model's ``input_normalization`` is restored from the checkpoint.
    """
    from palbench.config import TrainConfig
    from palbench.models import build_model

    run = Path(run)
    path = run / "best.pt" if run.is_dir() else run
    ckpt = load_checkpoint(path, map_location)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise DataError(f"{path}: not a palbench run checkpoint (expected keys 'model' and 'config')")
    cfg = TrainConfig.from_dict(ckpt["config"], where=str(path))
    from palbench.models import head_prefix

    model = build_model(cfg.arch, num_classes=7, width=cfg.width, size=cfg.size)
    head = ckpt["model"].get(head_prefix(model) + "weight")
    if head is not None and int(head.shape[0]) != 7:
        model = build_model(cfg.arch, num_classes=int(head.shape[0]), width=cfg.width, size=cfg.size)
    model.load_state_dict(ckpt["model"])
    return model.eval(), cfg
