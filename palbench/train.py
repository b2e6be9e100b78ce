"""One training run: a resolved :class:`TrainConfig` + seed → a run folder (paper §IV-B protocol).

Run folder::

    config.json        the resolved config
    state.pt           resume point: model, optimiser, scheduler, scaler, RNG, position, history
    best.pt            weights with the best validation accuracy (model selection, §IV-B)
    history.csv        one row per epoch: CE, PAL, val accuracy, lr, seconds
    metrics.json       best val accuracy and epoch, steps, seconds
    dvclive/           the same metrics for DVC (``dvc plots``)

Several runs (``palbench train --seeds``, ``--group``: a configuration's seeds, a group of the grid):
:func:`palbench.workers.train_runs`, each dataset read once per process, each run as :func:`train` alone
would make it.

Reproducibility: the seed fixes the initialisation, the data order (a permutation, or class-balanced
draws, per epoch), each sample's augmentation and dropout. ``--resume`` restarts from the last
checkpoint (taken every ``checkpoint_every`` steps and at each epoch end, written atomically) and ends
with the same metrics as an uninterrupted run on the same machine.

Distributed: under ``torchrun --nproc_per_node N`` (``WORLD_SIZE`` > 1) the run uses DDP (NCCL on GPU,
gloo on CPU); the global batch is kept: rank r takes its slice of every global batch. BatchNorm statistics
stay per rank (VGG16 has none), and the PAL mean is taken per rank over its valid maps.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from palbench.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from palbench.config import TrainConfig, read_config, result_diff
from palbench.data.canonical import CanonicalDataset, load_landmark_set, read_dataset
from palbench.data.dataset import FaceDataset
from palbench.errors import ConfigError, DataError
from palbench.evaluate import predict
from palbench.io import write_json, write_text
from palbench.models import build_model, load_weights, resolve_layer
from palbench.models.partial import reset_above
from palbench.objective import pal_objective


def epoch_order(labels: np.ndarray, epoch: int, seed: int, balanced: bool) -> torch.Tensor:
    """Positions (into the train split) of one epoch, fixed by ``(seed, epoch)``.

    ``balanced``: class-balanced draws with replacement (each class equally likely per draw).
    """
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    n = len(labels)
    if not balanced:
        return torch.randperm(n, generator=g)
    counts = np.bincount(labels, minlength=int(labels.max()) + 1).astype(np.float64)
    weights = torch.from_numpy(1.0 / counts[labels])
    return torch.multinomial(weights, n, replacement=True, generator=g)


def distributed() -> tuple[int, int]:
    """``(rank, world_size)``; initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _device(rank: int) -> torch.device:
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def prepare(cfg: TrainConfig, dataset: CanonicalDataset | None = None):
    """Validate everything a run needs before any file is written; return dataset, landmarks, model.

    ``dataset``: the dataset already read (several seeds in one process, or a relabelled pretraining set);
    default: read ``cfg.data``."""
    data = dataset if dataset is not None else read_dataset(cfg.data)
    landmarks = load_landmark_set(data, cfg.landmarks, cfg.landmark_noise)
    if landmarks is None and cfg.pal_weight > 0:
        raise DataError(f"{Path(cfg.data) / 'landmarks.npy'}: not found; PAL needs landmarks (`palbench landmarks`)")
    for split in ("train", "val"):
        if len(data.split_indices(split)) == 0:
            raise DataError(f"{Path(cfg.data) / 'samples.csv'}: split {split!r} is empty")
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch, num_classes=len(data.meta.get("classes", range(7))), width=cfg.width, size=cfg.size)
    if cfg.weights is not None:
        initial = ({k: v.clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
                   if cfg.keep_up_to else None)
        load_weights(model, cfg.weights)
        if initial is not None:
            reset_above(model, initial, cfg.keep_up_to, cfg.size)  # the partial start
    resolve_layer(model, cfg.layer, cfg.size)  # unknown layer, or one without a spatial map: error listing valid ones
    if cfg.dropout is not None:
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = cfg.dropout
    return data, landmarks, model


def check_run_folder(out: Path, cfg: TrainConfig, resume: bool, force: bool) -> None:
    """``--resume``: ``out/state.pt`` exists and was trained with the same config. Otherwise: ``out`` holds no
    run unless ``force`` (never overwrite a run by accident)."""
    stored = out / "config.json"
    if resume:
        if not (out / "state.pt").is_file():
            raise ConfigError(f"{out}: --resume given but there is no state.pt to resume from")
        # through TrainConfig: a key an older palbench did not write compares as its default
        diff = result_diff(TrainConfig.from_dict(read_config(stored), str(stored)).to_dict(), cfg.to_dict())
        if diff:
            raise ConfigError(f"{out}: --resume with a different config: {'; '.join(diff)}")
        return
    if stored.exists() and not force:
        raise ConfigError(f"{out}: already holds a run; pass --resume to continue it or --force to start over")


@dataclass
class RunState:
    """Where a run stands; saved (as plain values, ``weights_only``-readable) in every checkpoint.

    Attributes:
        epoch, step_in_epoch, global_step: position (the epoch under way and the steps done in it).
        history: one row per finished epoch (``history.csv``).
        best_val_accuracy, best_epoch: model selection (-1 before the first validation).
        ce_sum, pal_sum, n_sum: running loss sums of the epoch under way, over ``n_sum`` steps.
    """

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    history: list[dict] = field(default_factory=list)
    best_val_accuracy: float = -1.0
    best_epoch: int = -1
    ce_sum: float = 0.0
    pal_sum: float = 0.0
    n_sum: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any]) -> RunState:
        return cls(**{k: ckpt[k] for k in cls.__dataclass_fields__})

    def next_epoch(self) -> None:
        self.epoch, self.step_in_epoch = self.epoch + 1, 0
        self.ce_sum, self.pal_sum, self.n_sum = 0.0, 0.0, 0


@dataclass
class Run:
    """What one training needs once set up: config, folder, process, model, optimisation, data."""

    cfg: TrainConfig
    out: Path
    rank: int
    world: int
    device: torch.device
    model: torch.nn.Module
    net: torch.nn.Module  # the model, or its DDP wrapper
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    train_set: FaceDataset
    val_set: FaceDataset
    total_steps: int

    def checkpoint(self, state: RunState) -> None:
        """The resume point (rank 0 writes it)."""
        if self.rank == 0:
            save_checkpoint(self.out / "state.pt", {
                "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "scaler": self.scaler.state_dict(), "rng": rng_state(),
                **state.to_dict(),
            })


def train(
    cfg: TrainConfig, out: str | Path, resume: bool = False, force: bool = False,
    dataset: CanonicalDataset | None = None,
) -> dict:
    """Run one training; return ``metrics.json``'s content. ``dataset``: see :func:`prepare`."""
    t_start = time.perf_counter()
    run = setup(cfg, Path(out), resume, force, dataset)
    state = start(run, resume)
    live = _live(run.out, resume) if run.rank == 0 else None
    from tqdm.auto import tqdm

    bar = tqdm(total=run.total_steps, initial=state.global_step, unit="step", dynamic_ncols=True,
               disable=None if cfg.progress and run.rank == 0 else True, desc=f"train {run.out.name}")
    while state.global_step < run.total_steps:
        t_epoch = time.perf_counter()
        train_epoch(run, state, bar)
        end_epoch(run, state, live, time.perf_counter() - t_epoch)
    bar.close()
    return finish(run, state, live, time.perf_counter() - t_start)


def setup(cfg: TrainConfig, out: Path, resume: bool, force: bool, dataset: CanonicalDataset | None = None) -> Run:
    """Validate (before writing anything), then model, optimiser, poly-LR schedule, scaler and data on the
    process's device."""
    data, landmarks, model = prepare(cfg, dataset)
    check_run_folder(out, cfg, resume, force)
    rank, world = distributed()
    if cfg.batch_size % world:
        raise ConfigError(f"batch_size {cfg.batch_size} is not divisible by the {world} processes")
    device = _device(rank)
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    norm = model.input_normalization
    train_set = FaceDataset(data, "train", cfg.size, landmarks, cfg.augment, norm, cfg.seed, cfg.max_rotation)
    val_set = FaceDataset(data, "val", cfg.size, landmarks, False, norm, cfg.seed)
    total_steps = min(cfg.epochs * math.ceil(len(train_set) / cfg.batch_size), cfg.max_steps or 10**12)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / total_steps) ** cfg.lr_power)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
    return Run(cfg, out, rank, world, device, model, net, opt, sched, scaler, amp_dtype, train_set, val_set,
               total_steps)


def start(run: Run, resume: bool) -> RunState:
    """The state to start from: the checkpoint's (model, optimiser, schedule, scaler and RNG restored), or a
    fresh one in an emptied run folder holding ``config.json``."""
    if resume:
        ckpt = load_checkpoint(run.out / "state.pt", map_location=run.device)
        run.model.load_state_dict(ckpt["model"])
        run.opt.load_state_dict(ckpt["optimizer"])
        run.sched.load_state_dict(ckpt["scheduler"])
        run.scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        return RunState.from_checkpoint(ckpt)
    if run.rank == 0:
        run.out.mkdir(parents=True, exist_ok=True)
        for stale in ("state.pt", "best.pt", "metrics.json", "history.csv"):
            (run.out / stale).unlink(missing_ok=True)
        write_json(run.out / "config.json", run.cfg.to_dict())
    return RunState()


def train_epoch(run: Run, state: RunState, bar) -> None:
    """The remaining optimiser steps of epoch ``state.epoch`` (all of them, unless resumed mid-epoch)."""
    cfg = run.cfg
    run.train_set.set_epoch(state.epoch)
    order = epoch_order(run.train_set.labels.numpy(), state.epoch, cfg.seed, cfg.balanced)
    batches = [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    local = cfg.batch_size // run.world
    mine = [b[run.rank * local : (run.rank + 1) * local].tolist() for b in batches[state.step_in_epoch :]]
    # own generator: creating the loader must not draw from the global RNG (dropout's, restored on resume)
    loader = DataLoader(run.train_set, batch_sampler=mine, num_workers=cfg.workers, generator=torch.Generator())
    run.net.train()
    for batch in loader:
        outs = train_step(run, batch)
        state.step_in_epoch += 1
        state.global_step += 1
        state.ce_sum += outs["ce"].item()
        state.pal_sum += outs["pal"].item()
        state.n_sum += 1
        bar.update(1)
        bar.set_postfix(epoch=state.epoch, ce=f"{outs['ce'].item():.3f}", pal=f"{outs['pal'].item():.3f}",
                        val=f"{state.best_val_accuracy:.3f}")
        if state.global_step >= run.total_steps:
            break
        if state.global_step % cfg.checkpoint_every == 0:
            run.checkpoint(state)


def train_step(run: Run, batch: dict) -> dict[str, torch.Tensor]:
    """One optimiser step of ``CE + λ·PAL`` (:func:`palbench.objective.pal_objective`) on one batch."""
    images = batch["image"].to(run.device, non_blocking=True)
    if run.cfg.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    amp = run.amp_dtype
    with torch.autocast(run.device.type, dtype=amp or torch.float32, enabled=amp is not None):
        outs = pal_objective(run.net, images, batch["label"].to(run.device), batch["landmarks"].to(run.device),
                             run.cfg.pal)
    run.opt.zero_grad(set_to_none=True)
    run.scaler.scale(outs["loss"]).backward()
    run.scaler.step(run.opt)
    run.scaler.update()
    run.sched.step()
    return outs


def end_epoch(run: Run, state: RunState, live, seconds: float) -> None:
    """Validate, log the epoch's row, keep the best model (``best.pt``), checkpoint, move to the next epoch."""
    val_acc = _val_accuracy(run.model, run.val_set, run.device, run.cfg) if run.rank == 0 else 0.0
    n = max(state.n_sum, 1)
    row = {"epoch": state.epoch, "train_ce": state.ce_sum / n, "train_pal": state.pal_sum / n,
           "val_accuracy": val_acc, "lr": run.opt.param_groups[0]["lr"], "seconds": seconds}
    state.history.append(row)
    if run.rank == 0 and val_acc > state.best_val_accuracy:
        state.best_val_accuracy, state.best_epoch = val_acc, state.epoch
        save_checkpoint(run.out / "best.pt", {"model": run.model.state_dict(), "epoch": state.epoch,
                                              "val_accuracy": val_acc, "config": run.cfg.to_dict()})
    if live is not None:
        for k in ("train_ce", "train_pal", "val_accuracy", "lr"):
            live.log_metric(k, row[k])
        live.next_step()
    state.next_epoch()
    run.checkpoint(state)
    if run.world > 1:
        dist.barrier()


def finish(run: Run, state: RunState, live, seconds: float) -> dict:
    """``history.csv`` and ``metrics.json`` (rank 0); the process group is closed."""
    metrics = {"best_val_accuracy": state.best_val_accuracy, "best_epoch": state.best_epoch,
               "epochs": state.epoch, "steps": state.global_step, "seconds": seconds}
    if run.rank == 0:
        write_text(run.out / "history.csv", _csv(state.history))
        write_json(run.out / "metrics.json", metrics)
        if live is not None:
            live.end()
    if run.world > 1:
        dist.destroy_process_group()
    return metrics


def _val_accuracy(model: torch.nn.Module, val_set: FaceDataset, device: torch.device, cfg: TrainConfig) -> float:
    logits, labels = predict(model, val_set, device, batch_size=64, workers=cfg.workers)
    return float((logits.argmax(1) == labels).float().mean())


def _live(out: Path, resume: bool):
    """The run's DVCLive logger: ``dvclive/metrics.json`` and one ``dvclive/plots/metrics/<name>.tsv`` per curve.

    Inside a DVC project (the working directory's, as dvclive looks it up: ``dvc repro`` runs the stages from
    the project root) dvclive's own ``Live``. Outside one, ``Live`` would run ``dvc init`` in the enclosing git
    repository and stage ``.dvc/config``, ``.dvc/.gitignore`` and ``.dvcignore`` in the user's index, whatever
    ``save_dvc_exp`` says (dvclive 3.49: ``dvclive.dvc.get_dvc_repo`` falls back to ``Repo.init``;
    treeverse/dvclive#531, #539), and no argument turns that off; so there it is :class:`LiveOutsideDvc`, which
    writes the same files and touches no repository.
    """
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo
    from dvclive import Live

    class LiveOutsideDvc(Live):
        """dvclive's ``Live`` without its DVC set-up (dvclive has no knob for it, see :func:`_live`).

        ``Live.__init__`` calls ``_init_dvc`` to find (or create) the DVC repository, for experiments, Studio
        and ``dvc.yaml``; palbench uses none of them (``save_dvc_exp=False``, ``dvcyaml=None``). Skipping it
        leaves ``Live`` as it is when that set-up fails (it then goes on without a repository, the
        ``_dvc_repo = None`` it starts with): the metrics and curves are written all the same.
        """

        def _init_dvc(self) -> None:
            pass

    settings = {"dir": str(out / "dvclive"), "resume": resume, "save_dvc_exp": False, "dvcyaml": None, "report": None}
    try:
        Repo.find_root()
    except NotDvcRepoError:
        return LiveOutsideDvc(**settings)
    return Live(**settings)


def _csv(rows: list[dict]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    return "\n".join([",".join(keys)] + [",".join(f"{r[k]:.6g}" if isinstance(r[k], float) else str(r[k]) for k in keys) for r in rows]) + "\n"
