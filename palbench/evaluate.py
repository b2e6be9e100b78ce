"""Evaluation of a trained model on a split: classification metrics and where the model looks.

:func:`predict` gives the logits of a split in order (the trainer's validation uses it);
:func:`evaluate_run` (``palbench evaluate RUN OUT``) writes into ``OUT``:

``predictions.csv``
    ``index,path,label,prediction,prob_0..prob_{K-1}``: the samples.csv row, its path and label, the
    predicted class and the softmax probabilities (class order of :data:`palbench.data.canonical.CLASSES`).
``confusion.csv``
    ``label,prediction``: the true and predicted class names of each image (``predictions.csv``'s order), the
    confusion matrix ``dvc plots`` draws (``runs/dvc.yaml``, :mod:`palbench.config.plots`).
``metrics.json``
    ``accuracy``, ``balanced_accuracy`` (mean recall over the classes present), ``macro_f1``, per-class
    ``precision/recall/f1/support`` keyed by class name, ``confusion_matrix`` (rows = true class), ``n``
    (scikit-learn computes all of these); the run's PAL settings (``pal``); and the attention metrics of
    :mod:`palbench.alignment`:

    * ``alignment_constrained`` / ``alignment_free`` / ``alignment_all``: mean Pearson correlation, over
      the images with landmarks (``alignment_n``), between the run's layer attribution (first C1
      channels / the others / all, channel-averaged) and the landmark prior. 1 = the map has the prior's
      shape; 0 = unrelated. ``alignment_free`` is ``null`` when every channel is constrained (c1 = 1).
    * ``decoy_share``: only where the dataset has ``decoy_boxes.npy`` (the built-in benchmark): mean over
      the ``decoy_n`` images with a decoy of the input Grad×Input mass inside the decoy square over the
      whole image's. 0 = ignores the square, 1 = looks only at it; ``decoy_area_share`` (the square's
      area over the image's) is what a uniform map would give. ``null`` for other datasets.
    * ``shortcut_follow``: where the dataset records what its shortcuts encode (``decoy_labels.npy``,
      ``stripes_labels.npy`` of ``palbench synth``): over the ``shortcut_n`` images of the split whose
      shortcut encodes a class other than the label, the share predicted as the shortcut's class. 1 = the
      model follows the shortcut; a model that ignores it lands there only by its errors, about
      (1 − accuracy) / 6. ``null`` where there is no such image.

The landmarks are the dataset's ``landmarks.npy`` unless another set is given (a run trained on a jittered
set of the noise study is still measured against the clean landmarks by default). Nothing is written
unless the whole evaluation succeeds.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from palbench.alignment import attention_batch, box_coverage, nanmean
from palbench.config import landmark_set_path
from palbench.config.plots import CONFUSION_FILE
from palbench.data.canonical import CLASSES, CanonicalDataset, load_landmark_set, read_dataset
from palbench.data.dataset import FaceDataset
from palbench.errors import ConfigError, DataError, PalbenchError
from palbench.io import atomic_path, write_text

DECOY_BOXES = "decoy_boxes.npy"
#: What each image's shortcuts encode (``palbench synth``; int64 ``[N]``, -1 = none).
SHORTCUT_LABELS = ("decoy_labels.npy", "stripes_labels.npy")


@torch.no_grad()
def predict(
    model: torch.nn.Module, dataset: FaceDataset, device: torch.device | str = "cpu", batch_size: int = 64, workers: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``[N, K]`` (float32, CPU) and labels ``[N]`` of every sample of ``dataset``, in order (eval mode)."""
    was_training = model.training
    model.eval()
    logits, labels = [], []
    # own generator: building the loader must not draw from the global RNG (dropout, resume identity)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, generator=torch.Generator())
    for batch in loader:
        logits.append(model(batch["image"].to(device)).float().cpu())
        labels.append(batch["label"])
    model.train(was_training)
    return torch.cat(logits), torch.cat(labels)


def load_run(run: str | Path):
    """``(model on the CPU in eval mode, TrainConfig)`` of a run folder (or a ``best.pt``), with one-line
    errors for a missing folder, a missing or corrupt checkpoint, and weights that do not fit the config."""
    from palbench.checkpoint import load_trained_model

    run = Path(run)
    if not run.exists():
        raise DataError(f"{run}: run folder not found (train it with `palbench train {run} ...`)")
    try:
        return load_trained_model(run)
    except PalbenchError:
        raise
    except (RuntimeError, KeyError, TypeError, ValueError, IndexError) as e:  # weights that do not fit the arch
        where = run / "best.pt" if run.is_dir() else run
        raise DataError(f"{where}: checkpoint does not fit its config ({str(e).splitlines()[0][:200]})") from None


class _EvalSet(FaceDataset):
    """FaceDataset without augmentation that adds each sample's decoy-box coverage of the input pixels."""

    def __init__(self, *args, boxes: np.ndarray | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.boxes = boxes
        self._stored_size = (0, 0)

    def read_image(self, i: int) -> torch.Tensor:
        image = super().read_image(i)
        self._stored_size = tuple(image.shape[-2:])
        return image

    def __getitem__(self, k: int) -> dict:
        item = super().__getitem__(k)
        if self.boxes is not None:  # stored size of THIS image: images may differ in size
            cov = box_coverage(self.boxes[item["index"]], self._stored_size, self.size)[0]
            item["coverage"] = torch.from_numpy(cov)
        return item


def _decoy_boxes(data: CanonicalDataset) -> np.ndarray | None:
    """``decoy_boxes.npy`` of the built-in benchmark (float32 ``[N, 4]``), ``None`` for other datasets."""
    path = data.root / DECOY_BOXES
    if not path.is_file():
        return None
    try:
        boxes = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise DataError(f"{path}: unreadable .npy ({str(e).splitlines()[0]})") from None
    if boxes.shape != (len(data), 4):
        raise DataError(f"{path}: shape {boxes.shape}; expected ({len(data)}, 4): x0, y0, x1, y1 per samples.csv row")
    return boxes.astype(np.float32)


def classification_metrics(labels: np.ndarray, predictions: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, balanced accuracy, macro F1, per-class precision/recall/F1/support, confusion matrix (sklearn)."""
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
    )

    ks = list(range(len(classes)))
    with warnings.catch_warnings():  # classes absent from y_true: recall 0/0 -> reported as 0
        warnings.simplefilter("ignore")
        p, r, f, s = precision_recall_fscore_support(labels, predictions, labels=ks, zero_division=0)
        balanced = balanced_accuracy_score(labels, predictions)
        macro_f1 = f1_score(labels, predictions, labels=ks, average="macro", zero_division=0)
    return {
        "n": int(len(labels)),
        "absent_classes": [c for k, c in enumerate(classes) if s[k] == 0],  # no image in the split: no recall
        "accuracy": float(accuracy_score(labels, predictions)),
        "balanced_accuracy": float(balanced),
        "macro_f1": float(macro_f1),
        "per_class": {
            c: {"precision": float(p[k]), "recall": float(r[k]), "f1": float(f[k]), "support": int(s[k]),
                "absent": bool(s[k] == 0)}
            for k, c in enumerate(classes)
        },
        "confusion_matrix": confusion_matrix(labels, predictions, labels=ks).tolist(),
    }


def evaluate_run(
    run: str | Path,
    out: str | Path,
    split: str = "test",
    data: str | Path | CanonicalDataset | None = None,
    landmarks: str | Path | None = None,
    batch_size: int = 64,
    workers: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict:
    """Evaluate a run's best model on ``split``; write ``metrics.json``, ``predictions.csv`` and ``confusion.csv``
    into ``out``.

    Args:
        run: run folder (``best.pt`` inside) or a ``best.pt`` path.
        out: output folder (created; files replaced atomically, only after everything succeeded).
        split: ``train`` | ``val`` | ``test``.
        data: canonical dataset folder, or the dataset already read (its decoded images are reused: the
            grid evaluates each seed in the process that trained it); default: the one the run was trained on.
        landmarks: the landmark set for the alignment: a ``.npy [N, 68, 2]``, or a priors folder (its
            ``landmark_noise`` 0 set); default: the dataset's ``landmarks.npy``.
        batch_size, workers, device: inference settings (device default: CUDA when available).

    Returns:
        ``metrics.json``'s content.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, cfg = load_run(run)
    model = model.to(device)
    if isinstance(data, CanonicalDataset):
        dataset, root = data, data.root
    else:
        root = Path(data if data is not None else cfg.data)
        if data is None and not root.is_dir():
            raise DataError(f"{root}: the run's dataset folder not found; pass --data DIR")
        dataset = read_dataset(root)
    lm_path = landmark_set_path(landmarks)
    lm = load_landmark_set(dataset, lm_path)
    boxes = _decoy_boxes(dataset)
    eval_set = _EvalSet(dataset, split, cfg.size, lm, False, model.input_normalization, boxes=boxes)
    names = list(dataset.meta.get("classes") or CLASSES)
    dropped = _drop_untrained(eval_set, cfg, root, names)
    loader = DataLoader(eval_set, batch_size=batch_size, shuffle=False, num_workers=workers)
    passes = _attention_pass(model, cfg, loader, device, boxes is not None, progress, split)

    probs = torch.softmax(passes["logits"].double(), dim=1).numpy()
    pred = probs.argmax(axis=1)
    n_classes = probs.shape[1]
    names = names if len(names) == n_classes else [str(k) for k in range(n_classes)]
    metrics = classification_metrics(passes["labels"], pred, names)
    metrics.update({
        "split": split, "classes": names, "run": str(run), "data": str(root), "dropped_untrained": dropped,
        "landmarks": str(lm_path if lm_path is not None else root / "landmarks.npy") if lm is not None else None,
        "pal": {k: getattr(cfg, k) for k in ("layer", "method", "strategy", "c1", "pal_weight", "prior_sigma")},
        **attention_metrics(passes["scores"], passes["valid"], boxes is not None),
        **shortcut_follow(dataset.root, passes["index"], passes["labels"], pred),
    })  # fmt: skip
    out = Path(out)
    with atomic_path(out / "predictions.csv") as tmp:
        _prediction_table(dataset, passes, probs).to_csv(tmp, index=False, float_format="%.9g")
    with atomic_path(out / CONFUSION_FILE) as tmp:
        by_name = np.asarray(names)
        pd.DataFrame({"label": by_name[passes["labels"]], "prediction": by_name[pred]}).to_csv(tmp, index=False)
    write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")  # unsorted: per_class in CLASSES order
    return metrics


def shortcut_follow(root: str | Path, index: np.ndarray, labels: np.ndarray, pred: np.ndarray) -> dict:
    """``shortcut_follow`` and ``shortcut_n`` (module doc) of predictions ``pred [n]`` of the images ``index
    [n]`` (rows of samples.csv) with true ``labels [n]``, from the dataset's shortcut label files."""
    follow, n = 0, 0
    for name in SHORTCUT_LABELS:
        path = Path(root) / name
        if not path.is_file():
            continue
        encoded = np.load(path)[np.asarray(index)]
        misleading = (encoded >= 0) & (encoded != np.asarray(labels))
        follow += int((np.asarray(pred)[misleading] == encoded[misleading]).sum())
        n += int(misleading.sum())
    return {"shortcut_follow": follow / n if n else None, "shortcut_n": n}


def _drop_untrained(eval_set: FaceDataset, cfg, root: Path, names: list[str]) -> dict[str, int]:
    """Cross-dataset evaluation (``data`` is not the run's dataset): drop from ``eval_set`` the images of
    classes the run never saw in training (no train image in its dataset's ``meta.json`` counts); return
    ``{class: images dropped}``. Nothing is dropped on the run's own dataset, or when its counts are unknown."""
    meta = Path(cfg.data) / "meta.json"
    if Path(root).resolve() == Path(cfg.data).resolve() or not meta.is_file():
        return {}
    trained = json.loads(meta.read_text()).get("counts", {}).get("train")
    if not trained:
        return {}
    unseen = [k for k, c in enumerate(names) if not trained.get(c)]
    labels = eval_set.labels.numpy()
    drop = np.isin(labels, unseen)
    if not drop.any():
        return {}
    if drop.all():
        raise DataError(f"{root}: every {eval_set.indices.size} image of the split is of a class the run never "
                        f"trained on ({', '.join(names[k] for k in unseen)}); nothing to evaluate")
    eval_set.indices, eval_set.labels = eval_set.indices[~drop], eval_set.labels[~drop]
    return {names[k]: int((labels == k).sum()) for k in unseen if (labels == k).any()}


def _prediction_table(dataset: CanonicalDataset, passes: dict, probs: np.ndarray) -> pd.DataFrame:
    """``predictions.csv``: samples.csv row, path, label, predicted class, softmax probabilities ``[N, K]``."""
    index = passes["index"]
    return pd.DataFrame({
        "index": index, "path": dataset.samples["path"].to_numpy()[index], "label": passes["labels"],
        "prediction": probs.argmax(axis=1),
        **{f"prob_{k}": probs[:, k] for k in range(probs.shape[1])},
    })  # fmt: skip


def _attention_pass(model: torch.nn.Module, cfg, loader: DataLoader, device: torch.device, decoy: bool,
                    progress: bool, split: str) -> dict:
    """Logits and the per-sample attention scores of every batch (:func:`palbench.alignment.attention_batch`).

    Returns:
        ``logits [N, K]`` (tensor), ``labels, index, valid [N]`` and ``scores {name: float64 [N]}`` (arrays).
    """
    from tqdm.auto import tqdm

    logits, labels, index, valid, scores = [], [], [], [], {}
    for batch in tqdm(loader, desc=f"evaluate {split}", unit="batch", disable=None if progress else True):
        images = batch["image"].to(device)
        cov = batch["coverage"].to(device) if decoy else None
        out_logits, s = attention_batch(
            model, images, batch["landmarks"].to(device), cfg.layer, cfg.method, cfg.c1, cfg.prior_sigma, cov
        )
        logits.append(out_logits.float().cpu())
        labels.append(batch["label"])
        index.append(batch["index"])
        valid.append(batch["valid"])
        for k, v in s.items():
            scores.setdefault(k, []).append(v.numpy())
    return {"logits": torch.cat(logits), "labels": torch.cat(labels).numpy(), "index": torch.cat(index).numpy(),
            "valid": torch.cat(valid).numpy(), "scores": {k: np.concatenate(v) for k, v in scores.items()}}


def attention_metrics(scores: dict[str, np.ndarray], with_face: np.ndarray, decoy: bool) -> dict:
    """The split's attention metrics (see the module docstring) from the per-sample scores."""
    share = scores.get("share")
    return {
        "alignment_constrained": nanmean(scores["constrained"][with_face]),
        "alignment_free": nanmean(scores["free"][with_face]),
        "alignment_all": nanmean(scores["all"][with_face]),
        "alignment_n": int(np.isfinite(scores["constrained"][with_face]).sum()),
        "decoy_share": nanmean(share) if decoy else None,
        "decoy_area_share": nanmean(scores["area"][np.isfinite(share)]) if decoy else None,
        "decoy_n": int(np.isfinite(share).sum()) if decoy else 0,
    }
