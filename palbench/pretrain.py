"""Pretraining: the paper's "start from a network that knows faces" (VGG-Face, §IV-B), for any backbone.

``palbench pretrain OUT --data DIR`` trains the protocol's backbone once, with cross-entropy alone, on a face
dataset that is NOT the expression set the grid is trained on (for the built-in benchmark: other synthetic
people, without the decoy). Every run of the grid then starts from ``OUT/weights.pt`` (``train.weights``)
and fine-tunes. Two pretexts (``labels``):

``label``    the dataset's own expression labels — the AffectNet → RAF-DB analogue. ``weights.pt`` keeps the
             classifier head: it has the grid's 7 classes, so fine-tuning starts from a working classifier.
``subject``  identities from the ``subject`` column — the VGG-Face analogue, for users whose face data has
             no expression labels. The images of the train split's subjects are the classes; every
             ``VAL_EVERY``-th image of each subject is held out for model selection (a subject-disjoint
             val split would share no class with train). ``weights.pt`` has NO head (identities mean nothing
             downstream): fine-tuning draws a fresh 7-class head (:func:`palbench.models.load_weights`,
             format ``backbone``).

OUT is a run folder (``config.json``, ``best.pt``, ``history.csv``, ``metrics.json``, as ``palbench train``
writes) plus ``weights.pt`` and ``pretrain.json`` (pretext, classes, images, the dataset it came from).
Never pretrain on the expression set itself: its images, landmarks or labels would leak into the baseline
what PAL is meant to add.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from palbench.config import PRETEXTS, TrainConfig
from palbench.data.canonical import CanonicalDataset, read_dataset
from palbench.errors import ConfigError, DataError
from palbench.io import atomic_dir, write_json

#: Pretext ``subject``: every VAL_EVERY-th image of a subject (in samples.csv order) is held out for val.
VAL_EVERY = 5


def identity_dataset(data: CanonicalDataset) -> CanonicalDataset:
    """The train split of ``data`` relabelled by subject: ``label`` = index of the subject (sorted ids),
    ``split`` = ``val`` for every :data:`VAL_EVERY`-th image of each subject, else ``train``.

    Raises :class:`DataError` when there is no ``subject`` column or a subject has too few images."""
    where = data.root / "samples.csv"
    if "subject" not in data.samples.columns:
        raise DataError(f"{where}: pretext 'subject' needs a subject column (identity of each image)")
    train = data.samples[data.samples["split"] == "train"]
    subjects = train["subject"].astype(str)
    if subjects.isin(["", "nan"]).any():
        row = int(subjects.index[subjects.isin(["", "nan"])][0])
        raise DataError(f"{where}: row {row + 2} has no subject; pretext 'subject' needs one per train image")
    counts = subjects.value_counts()
    if counts.min() < 2:
        raise DataError(f"{where}: subject {counts.idxmin()!r} has {counts.min()} train image; pretext "
                        "'subject' needs >= 2 per subject (one to train on, one to validate)")
    ids = sorted(counts.index)
    code = {s: i for i, s in enumerate(ids)}
    rank = subjects.groupby(subjects).cumcount().to_numpy()
    samples = train.assign(
        label=subjects.map(code).to_numpy(np.int64),
        split=np.where(rank % VAL_EVERY == VAL_EVERY - 1, "val", "train"),
    )
    keep = samples.index.to_numpy()
    landmarks = data.landmarks[keep] if data.landmarks is not None else None
    meta = {**data.meta, "classes": [f"subject {s}" for s in ids]}
    return CanonicalDataset(data.root, samples.reset_index(drop=True), meta, landmarks)


def _check(cfg: TrainConfig, labels: str) -> None:
    if labels not in PRETEXTS:
        raise ConfigError(f"pretrain: labels {labels!r}; expected one of {', '.join(PRETEXTS)}")
    if cfg.pal_weight != 0:
        raise ConfigError(f"pretrain: pal_weight {cfg.pal_weight!r}; pretraining is cross-entropy only (0)")
    if cfg.weights is not None:
        raise ConfigError("pretrain: weights is set; pretraining starts from a random initialisation")


def pretrain(cfg: TrainConfig, out: str | Path, labels: str = "label", force: bool = False) -> dict:
    """Train ``cfg``'s backbone on ``cfg.data`` with pretext ``labels``; write OUT (see the module docstring).

    Args:
        cfg: the run's settings; ``pal_weight`` must be 0 and ``weights`` unset.
        out: the output folder (replaced as a whole when the run succeeds).
        labels: ``label`` or ``subject`` (:data:`PRETEXTS`).

    Returns:
        ``pretrain.json``'s content (with the run's ``metrics.json`` under ``metrics``).
    """
    from palbench.train import train

    _check(cfg, labels)
    out = Path(out)
    if (out / "config.json").exists() and not force:
        raise ConfigError(f"{out}: already holds a pretraining run; pass --force to start over")
    data = read_dataset(cfg.data)
    if labels == "subject":
        data = identity_dataset(data)
    n_classes = len(data.meta.get("classes", range(7)))
    with atomic_dir(out) as tmp:
        metrics = train(cfg, tmp, dataset=data)
        best = torch.load(tmp / "best.pt", map_location="cpu", weights_only=True)["model"]
        if labels == "subject":
            from palbench.models import build_model, head_prefix

            head = head_prefix(build_model(cfg.arch, num_classes=n_classes, width=cfg.width, size=cfg.size))
            best = {k: v for k, v in best.items() if not k.startswith(head)}
        torch.save(best, tmp / "weights.pt")
        (tmp / "state.pt").unlink(missing_ok=True)
        info = {
            "pretext": labels,
            "classes": n_classes,
            "head": labels == "label",
            "images": {s: int((data.samples["split"] == s).sum()) for s in ("train", "val")},
            "dataset": str(cfg.data),
            "dataset_source": data.meta.get("source"),
            "config": cfg.to_dict(),
            "metrics": metrics,
        }
        write_json(tmp / "pretrain.json", info)
    return info

