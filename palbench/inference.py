"""Using a trained model outside the benchmark: predictions on image files and export.

PAL needs landmarks only during training (paper §III): :func:`predict_images` takes plain image files.
Preprocessing is :class:`~palbench.data.dataset.FaceDataset`'s without augmentation (RGB, antialiased
resize to the run's size, the model's ``input_normalization``) — the very same code path, so a file gives
the same probabilities here as in ``palbench evaluate``.

:func:`export_model` writes a run's best model for deployment::

    model.pt     TorchScript (torch.jit.trace), input float32 [B, 3, S, S] normalised, output logits [B, K]
    model.onnx   ONNX (opset 18, dynamic batch axis), input "image", output "logits"
    model.json   classes, input size, normalisation, arch, source run and checkpoint hash
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from palbench.data.canonical import CLASSES, CanonicalDataset
from palbench.data.dataset import FaceDataset
from palbench.errors import ConfigError, DataError
from palbench.evaluate import load_run, predict
from palbench.io import atomic_path, write_json

FORMATS: tuple[str, ...] = ("torchscript", "onnx")
FILES = {"torchscript": "model.pt", "onnx": "model.onnx"}
ONNX_OPSET = 18


def image_dataset(paths: Sequence[str | Path], size: int, normalization: dict) -> FaceDataset:
    """A :class:`FaceDataset` over arbitrary image files (no augmentation, no landmarks).

    The files become a one-split canonical table whose ``path`` column holds absolute paths:
    ``root / "images" / path`` is then the file itself (pathlib drops the parts before an absolute one).
    Items are ``{"image": [3, size, size], ...}`` in the order of ``paths``.
    """
    if not paths:
        raise ConfigError("predict: no image given")
    files = [Path(p).resolve() for p in paths]
    for given, f in zip(paths, files):
        if not f.is_file():
            raise DataError(f"{given}: image not found")
    samples = pd.DataFrame({"path": [str(f) for f in files], "label": 0, "split": "test"})
    data = CanonicalDataset(root=Path("/"), samples=samples, meta={}, landmarks=None)
    return FaceDataset(data, "test", size, None, False, normalization)


def predict_images(
    model: torch.nn.Module, cfg, paths: Sequence[str | Path], batch_size: int = 32, device: str | torch.device = "cpu"
) -> list[dict]:
    """Class probabilities of image files, no landmarks needed.

    Args:
        model: a trained model (``load_run`` / ``load_trained_model``); ``cfg``: its TrainConfig (for ``size``).
        paths: image files (any size; they are resized to ``cfg.size``).

    Returns:
        One dict per path, in order: ``path``, ``prediction`` (class index), ``class`` (its name),
        ``probabilities`` (``{class name: p}``, softmax of the logits, CLASSES order).
    """
    dataset = image_dataset(paths, cfg.size, model.input_normalization)
    logits, _ = predict(model, dataset, device, batch_size)
    probs = torch.softmax(logits.double(), dim=1)
    names = list(CLASSES) if probs.shape[1] == len(CLASSES) else [str(k) for k in range(probs.shape[1])]
    rows = []
    for path, p in zip(paths, probs):
        k = int(p.argmax())
        rows.append({"path": str(path), "prediction": k, "class": names[k],
                     "probabilities": {c: float(v) for c, v in zip(names, p)}})  # fmt: skip
    return rows


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_model(run: str | Path, out_dir: str | Path, formats: Sequence[str] = FORMATS) -> dict:
    """Export a run's best model as TorchScript and/or ONNX, with ``model.json`` describing the input.

    Args:
        run: run folder (or ``best.pt``).
        out_dir: output folder; each file is written atomically, ``model.json`` last.
        formats: some of ``torchscript``, ``onnx``.

    Returns:
        ``model.json``'s content.
    """
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        given = ", ".join(unknown) or "(none)"
        raise ConfigError(f"export: unknown format(s) {given}; expected some of {', '.join(FORMATS)}")
    model, cfg = load_run(run)
    ckpt = Path(run) / "best.pt" if Path(run).is_dir() else Path(run)
    example = torch.randn(2, 3, cfg.size, cfg.size, generator=torch.Generator().manual_seed(0))
    out = Path(out_dir)
    with torch.no_grad():
        k = int(model(example).shape[1])
    if "torchscript" in formats:
        _export_torchscript(model, example, out / FILES["torchscript"])
    if "onnx" in formats:
        _export_onnx(model, example, out / FILES["onnx"])
    info = {
        **_model_info(model, cfg, k),
        "source_run": str(run),
        "source_checkpoint_sha256": _sha256(ckpt),
        "pal": {k2: getattr(cfg, k2) for k2 in ("layer", "method", "strategy", "c1", "pal_weight", "prior_sigma")},
        "files": {f: FILES[f] for f in formats},
        "onnx_opset": ONNX_OPSET if "onnx" in formats else None,
        "torch_version": torch.__version__,
    }
    write_json(out / "model.json", info)
    return info


def _export_torchscript(model: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    """``torch.jit.trace`` on ``example`` ``[B, 3, S, S]``, saved atomically at ``path``."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated but still the portable format
        traced = torch.jit.trace(model, example)
        with atomic_path(path) as tmp:
            torch.jit.save(traced, str(tmp))


def _export_onnx(model: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    """ONNX (opset :data:`ONNX_OPSET`, dynamo exporter, dynamic batch axis), input ``image`` output ``logits``,
    weights inside the file, saved atomically at ``path``."""
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = torch.export.Dim("batch", min=1)
        torch.onnx.export(
            model, (example,), str(tmp), input_names=["image"], output_names=["logits"], opset_version=ONNX_OPSET,
            dynamo=True, external_data=False, verbose=False, dynamic_shapes=({0: batch},),
        )  # fmt: skip


def _model_info(model: torch.nn.Module, cfg, k: int) -> dict:
    """The part of ``model.json`` that describes the model: classes, input, output (``k`` logits), arch."""
    names = list(CLASSES) if k == len(CLASSES) else [str(i) for i in range(k)]
    return {
        "classes": names,
        "input": {
            "name": "image",
            "shape": ["batch", 3, cfg.size, cfg.size],
            "size": cfg.size,
            "dtype": "float32",
            "layout": "NCHW, RGB, scaled to [0, 1], then (x - mean) / std",
            "normalization": {k2: [float(v) for v in vals] for k2, vals in model.input_normalization.items()},
            "resize": "antialiased bilinear resize of the whole image to size x size (torchvision resize)",
        },
        "output": {"name": "logits", "shape": ["batch", k], "meaning": "logits; softmax gives the class probabilities"},
        "arch": cfg.arch,
        "width": cfg.width,
    }
