"""What the figures need from the models: the layer catalogue (Fig. 3's x axis and max-pool lines) and the
attribution maps of a PAL run and its baseline on a few test images (Fig. 2/7).

The maps are computed exactly as :mod:`palbench.evaluate` measures alignment: the run's layer and
attribution method (:func:`palbench.attribution.layer_attribution`, one forward, no augmentation), the
mean of the first ``C1 = round(c1·C)`` channels (constrained) and of the others (free), and the landmark
prior of eq. 8 rendered at the attribution's resolution with the run's σ (what the PAL term compares with).
"""

from __future__ import annotations

import numpy as np

from palbench.reports.project import Project, ReportError


def layer_positions(arch: str, size: int) -> list[dict]:
    """The PAL layers of ``arch`` in input → output order for a ``size``-pixel input.

    Returns:
        :func:`palbench.models.describe_layers` rows (``name, channels, height, width, before_pool,
        before_downsampling``) of a 1/16-width copy where the family has a width knob: names, map sizes and
        pooling positions do not depend on the width (channel counts do).
    """
    from palbench.models import build_model, describe_layers, has_width_knob

    width = 1 / 16 if has_width_knob(arch) else 1.0
    return describe_layers(build_model(arch, width=width, size=int(size)), int(size))


def study_catalogue(project: Project, study: str = "layers") -> list[dict] | None:
    """:func:`layer_positions` of the backbone a study trains (its PAL configurations' ``arch`` and ``size``,
    from the protocol), ``None`` when the protocol has no such study: the layer order and max-pool positions
    that claims (d) and (e) of :mod:`palbench.claims` group layers by."""
    from palbench.config import study_configs

    if not project.has_study(study):
        return None
    confs = study_configs(project.params, study)
    conf = confs[1] if len(confs) > 1 else confs[0]
    return layer_positions(conf["arch"], int(conf["size"]))


def layer_map(arch: str, width: float, size: int, layer: str) -> tuple[int, int, int]:
    """C×H×W of ``layer``'s map (a catalogue name or a module path) in ``arch`` at ``width`` for ``size``-pixel
    inputs, as the PAL term reads it: captured (:func:`palbench.models.capture`, tokens and channels-last
    outputs as ``[B, C, H, W]``) during one forward of a zero image, as a training step does."""
    import torch

    from palbench.models import build_model, capture

    model = build_model(arch, width=float(width), size=int(size)).eval()
    with torch.no_grad(), capture(model, layer) as cap:
        model(torch.zeros(1, 3, int(size), int(size)))
    c, h, w = cap.features.shape[1:]
    return int(c), int(h), int(w)


def backbone_maps(project: Project) -> dict[str, tuple[int, int, int]]:
    """``{study: (C, H, W)}`` of the PAL layer of every comparison study
    (:func:`palbench.reports.project.comparison_studies`), from its configuration in the protocol."""
    from palbench.config import study_configs
    from palbench.reports.project import comparison_studies

    out = {}
    for study in comparison_studies(project):
        confs = study_configs(project.params, study)
        conf = confs[1] if len(confs) > 1 else confs[0]
        out[study] = layer_map(conf["arch"], conf.get("width", 1.0), int(conf["size"]), str(conf["layer"]))
    return out


def select_images(labels: np.ndarray, valid: np.ndarray, n: int) -> np.ndarray:
    """Positions (into a split) of up to ``n`` samples with a face: the first of each class in class order,
    then the second of each, ... — deterministic and not chosen by how the models do.

    Args:
        labels: int ``[N]``; valid: bool ``[N]`` (landmarks present).

    Returns:
        int64 ``[min(n, valid.sum())]``.
    """
    queues = {k: list(np.flatnonzero((labels == k) & valid)) for k in np.unique(labels)}
    chosen: list[int] = []
    while len(chosen) < n and any(queues.values()):
        for k in sorted(queues):
            if queues[k] and len(chosen) < n:
                chosen.append(int(queues[k].pop(0)))
    return np.asarray(chosen, dtype=np.int64)


def clean_landmarks(project: Project) -> np.ndarray:
    """The landmark set the runs were evaluated with: the ``landmark_noise`` 0 set of ``priors/<data>``."""
    from palbench.data.canonical import load_landmark_set, read_dataset
    from palbench.errors import ConfigError

    folder = project.path("priors", project.data_name)
    if not folder.is_dir():
        raise ReportError(f"{folder}: not found; produce the priors with {project.repro_hint()}")
    try:
        return load_landmark_set(read_dataset(project.path("data", project.data_name), load_landmarks=False), folder)
    except ConfigError as e:
        raise ReportError(f"{e}; produce the priors with {project.repro_hint()}") from None


def _model_maps(run_dir, data_dir, split: str, landmarks: np.ndarray, n: int, layer: str | None = None,
                method: str | None = None) -> dict:
    """One run's maps on the selected images of ``split`` at ``layer`` with ``method`` (default: the run's):
    ``images [n,S,S,3]`` in [0, 1], ``labels [n]``, ``landmarks [n,68,2]`` (input pixels),
    ``attribution [n,C,h,w]``, ``pred [n]``, ``index [n]``, ``cfg`` (the run's TrainConfig)."""
    import torch

    from palbench.data.dataset import FaceDataset
    from palbench.evaluate import load_run
    from palbench.objective import attributed_forward

    model, cfg = load_run(run_dir)
    layer, method = layer or cfg.layer, method or cfg.method
    ds = FaceDataset(data_dir, split, cfg.size, landmarks, False, model.input_normalization)
    labels = ds.labels.numpy()
    valid = np.isfinite(landmarks[ds.indices]).all(axis=(1, 2))
    items = [ds[int(k)] for k in select_images(labels, valid, n)]
    if not items:
        raise ReportError(f"{data_dir}: no {split} image with landmarks to show")
    x = torch.stack([it["image"] for it in items])
    logits, attribution = attributed_forward(model, x, layer, method, create_graph=False)
    logits, attribution = logits.detach(), attribution.detach()
    mean, std = (torch.tensor(model.input_normalization[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    return {
        "images": (x * std + mean).clamp(0, 1).permute(0, 2, 3, 1).numpy(),
        "labels": np.array([int(it["label"]) for it in items]),
        "landmarks": torch.stack([it["landmarks"] for it in items]),
        "attribution": attribution,
        "pred": logits.argmax(dim=1).numpy(),
        "index": np.array([it["index"] for it in items]),
        "cfg": cfg,
    }


def attribution_maps(project: Project, base_config: str, pal_config: str, seed: int, n: int) -> dict:
    """Prior and attribution maps of a PAL run and its baseline (same seed) on ``n`` test images.

    Both runs are read at the PAL run's layer with its method (the baseline has no PAL layer of its own).

    Returns:
        ``images [n,S,S,3]`` float in [0, 1] (the model input), ``labels [n]``, ``index [n]`` (samples.csv
        rows), ``prior [n,h,w]``, ``pal_constrained [n,h,w]`` (mean of the first C1 channels),
        ``pal_free [n,h,w]`` or ``None`` (c1 = 1), ``base_all [n,h,w]`` (mean of all channels), ``pal_pred`` and
        ``base_pred [n]``, and ``layer, method, c1, c1_channels, channels, prior_sigma, split, seed``.
    """
    from palbench.loss import split_channels
    from palbench.priors import render_priors
    from palbench.reports.tables import run_dir

    runs = {k: run_dir(project, c, seed) for k, c in (("pal", pal_config), ("base", base_config))}
    for path in runs.values():
        if not (path / "best.pt").is_file():
            raise ReportError(f"{path / 'best.pt'}: not found; train the run with {project.repro_hint()}")
    landmarks = clean_landmarks(project)
    data_dir = project.path("data", project.data_name)
    pal = _model_maps(runs["pal"], data_dir, project.split, landmarks, n)
    cfg = pal["cfg"]
    base = _model_maps(runs["base"], data_dir, project.split, landmarks, n, cfg.layer, cfg.method)
    a = pal["attribution"]
    constrained, free = split_channels(a, cfg.c1)
    prior = render_priors(pal["landmarks"], pal["images"].shape[1:3], a.shape[-2:], cfg.prior_sigma)
    return {
        "images": pal["images"], "labels": pal["labels"], "index": pal["index"], "prior": prior.numpy(),
        "pal_constrained": constrained.mean(dim=1).numpy(),
        "pal_free": free.mean(dim=1).numpy() if free is not None else None,
        "base_all": base["attribution"].mean(dim=1).numpy(),
        "pal_pred": pal["pred"], "base_pred": base["pred"],
        "layer": cfg.layer, "method": cfg.method, "c1": cfg.c1, "c1_channels": constrained.shape[1], "channels": a.shape[1],
        "prior_sigma": cfg.prior_sigma, "split": project.split, "seed": seed,
    }  # fmt: skip
