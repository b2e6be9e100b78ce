"""Using a trained model outside the benchmark: predictions on image files and export.

PAL needs landmarks only during training (paper §III): :func:`predict_images` takes plain image files.
Preprocessing is the run's dataset's, then :class:`~palbench.data.dataset.FaceDataset`'s without augmentation
— the very same code paths, so a file gives the same probabilities here as in ``palbench evaluate``:

- a run trained on aligned photos (its dataset's ``meta.json`` has an ``align`` record, written by
  ``palbench import folder --align BACKEND`` or ``palbench align``; :func:`run_face_crop`) predicts on each
  photo's face crop: the 68 landmarks found by the same landmark backend with the same options, the crop made
  by :mod:`palbench.data.align` with the recorded size and margin (:func:`palbench.face_crops.crop_photos`).
  A photo where the backend finds no face gets no prediction. ``crop=None`` (``palbench predict
  --no-align``, and any run whose dataset was not aligned) predicts on the whole image;
- then RGB, antialiased resize to the run's size, the model's ``input_normalization``.

:func:`export_model` writes a run's best model for deployment::

    model.pt     TorchScript (torch.jit.trace), input float32 [B, 3, S, S] normalised, output logits [B, K]
    model.onnx   ONNX (opset 18, dynamic batch axis), input "image", output "logits"
    model.json   classes, input size, normalisation, the crop the input must be (input.crop), arch, source
                 run and checkpoint hash

``model.json``'s ``input.crop`` is ``{"aligned": false}`` where the model takes whole images, else
``{"aligned": true, "backend", "options", "crop_size", "margin", "method"}``: the model expects face crops
made from the 68 landmarks of that backend (eye line levelled, side ``2 (1 + margin) d`` photo pixels with
``d`` the larger of the inter-ocular and eyes-to-mouth distances, centred 0.6 of the way from the eyes to the
mouth, resampled to ``crop_size`` pixels; :func:`palbench.data.align.crop_matrix`), then resized to ``size``.
"""

from __future__ import annotations

import hashlib
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from palbench.data.canonical import CLASSES, CanonicalDataset, read_dataset
from palbench.data.dataset import FaceDataset
from palbench.errors import ConfigError, DataError
from palbench.evaluate import load_run, predict
from palbench.face_crops import FaceCrop, crop_photos
from palbench.io import atomic_path, write_json
from palbench.landmarks import image_size

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


def run_face_crop(cfg, data: str | Path | None = None) -> FaceCrop | None:
    """How the photos of a run's dataset were cropped to their faces (:class:`FaceCrop`), or ``None`` where
    they were not aligned.

    Args:
        cfg: the run's TrainConfig; its ``data`` is the dataset folder, relative to the working folder (the
            project root) unless absolute.
        data: the dataset folder instead (where the run's path does not resolve from here).
    """
    root = Path(cfg.data if data is None else data)
    if data is not None and not root.is_dir():
        raise DataError(f"{root}: dataset folder not found; expected the run's dataset (--data)")
    if not root.is_dir():
        raise DataError(f"{root}: the run's dataset (config.json's data) not found from {Path.cwd()}; its meta.json "
                        "says how the run's images were cropped: run from the project root or pass --data DATASET")
    return FaceCrop.from_meta(read_dataset(root, load_landmarks=False).meta, str(root / "meta.json"))


def predict_images(
    model: torch.nn.Module, cfg, paths: Sequence[str | Path], batch_size: int = 32, device: str | torch.device = "cpu",
    crop: FaceCrop | None = None,
) -> list[dict]:
    """Class probabilities of image files, no landmarks needed.

    Args:
        model: a trained model (``load_run`` / ``load_trained_model``); ``cfg``: its TrainConfig (for ``size``).
        paths: image files (any size; they are resized to ``cfg.size``).
        crop: crop each photo to its face this way first (:func:`run_face_crop`); ``None``: the whole image.

    Returns:
        One dict per path, in order: ``path``, ``prediction`` (class index), ``class`` (its name),
        ``probabilities`` (``{class name: p}``, softmax of the logits, CLASSES order), ``crop`` (what the model
        saw: ``{"aligned": false, "box": [0, 0, W, H]}``, the whole image, or the face crop's
        :func:`~palbench.face_crops.crop_record`) and ``error`` (``None``). A photo where no face was found has
        ``prediction``, ``class``, ``probabilities`` and ``crop`` ``None`` and ``error`` saying so.
    """
    photos = image_dataset(paths, cfg.size, model.input_normalization)
    if crop is None:
        crops = [{"file": f, "crop": _whole(f)} for f in photos.data.samples["path"]]
        return _rows(model, cfg, paths, crops, batch_size, device)
    with tempfile.TemporaryDirectory(prefix="palbench-predict-") as tmp:
        crops = crop_photos(photos.data, crop, Path(tmp))
        return _rows(model, cfg, paths, crops, batch_size, device, crop.backend)


def _whole(path: str | Path) -> dict:
    """The crop record of a whole image (``box`` in pixel-edge coordinates, as the face crops')."""
    h, w = image_size(Path(path))
    return {"aligned": False, "box": [0, 0, w, h]}


def _rows(model: torch.nn.Module, cfg, paths: Sequence[str | Path], crops: list[dict | None], batch_size: int,
          device: str | torch.device, backend: str = "") -> list[dict]:
    """:func:`predict_images`' rows: the model on the ``file`` of every found entry of ``crops`` (one per path;
    ``None``: no face found by ``backend``)."""
    found = [c for c in crops if c is not None]
    probs = iter(())
    if found:
        dataset = image_dataset([c["file"] for c in found], cfg.size, model.input_normalization)
        logits, _ = predict(model, dataset, device, batch_size)
        probs = iter(torch.softmax(logits.double(), dim=1))
    names = None
    rows = []
    for path, c in zip(paths, crops):
        if c is None:
            rows.append({"path": str(path), "prediction": None, "class": None, "probabilities": None, "crop": None,
                         "error": f"no face found by the {backend} landmark backend; no prediction (--no-align "
                                  "predicts on the whole image)"})  # fmt: skip
            continue
        p = next(probs)
        names = names or (list(CLASSES) if len(p) == len(CLASSES) else [str(k) for k in range(len(p))])
        k = int(p.argmax())
        rows.append({"path": str(path), "prediction": k, "class": names[k],
                     "probabilities": {n: float(v) for n, v in zip(names, p)},
                     "crop": c["crop"], "error": None})  # fmt: skip
    return rows


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_model(run: str | Path, out_dir: str | Path, formats: Sequence[str] = FORMATS,
                 data: str | Path | None = None) -> dict:
    """Export a run's best model as TorchScript and/or ONNX, with ``model.json`` describing the input.

    Args:
        run: run folder (or ``best.pt``).
        out_dir: output folder; each file is written atomically, ``model.json`` last.
        formats: some of ``torchscript``, ``onnx``.
        data: the run's dataset folder, whose ``meta.json`` says how its images were cropped (``input.crop``;
            default: the run's, :func:`run_face_crop`).

    Returns:
        ``model.json``'s content.
    """
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        given = ", ".join(unknown) or "(none)"
        raise ConfigError(f"export: unknown format(s) {given}; expected some of {', '.join(FORMATS)}")
    model, cfg = load_run(run)
    crop = run_face_crop(cfg, data)
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
        **_model_info(model, cfg, k, crop),
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


def _model_info(model: torch.nn.Module, cfg, k: int, crop: FaceCrop | None) -> dict:
    """The part of ``model.json`` that describes the model: classes, input (whole images, or face crops made as
    ``crop`` records), output (``k`` logits), arch."""
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
            "crop": _crop_info(crop),
            "resize": f"antialiased bilinear resize of {'the face crop (crop)' if crop else 'the whole image'} to "
                      "size x size (torchvision resize)",
        },
        "output": {"name": "logits", "shape": ["batch", k], "meaning": "logits; softmax gives the class probabilities"},
        "arch": cfg.arch,
        "width": cfg.width,
    }


def _crop_info(crop: FaceCrop | None) -> dict:
    """``model.json``'s ``input.crop``: whole images, or the face crop the model was trained on."""
    if crop is None:
        return {"aligned": False}
    return {
        "aligned": True, **crop.to_dict(),
        "method": f"the 68 landmarks (iBUG order) found in the photo by the {crop.backend} landmark backend "
                  "(options); the photo rotated so the eye line (mean of points 36-41 to mean of 42-47) is "
                  "level, scaled so 2 (1 + margin) d photo pixels span crop_size (d: the larger of the "
                  "inter-ocular and the eyes-to-mouth distances), the crop centred 0.6 of the way from the eye "
                  "centre to the mouth centre (points 48, 54); bilinear, black outside the photo "
                  "(palbench.data.align.crop_matrix, crop_face)",
    }  # fmt: skip
