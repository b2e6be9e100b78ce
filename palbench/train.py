"""One training run: a resolved :class:`TrainConfig` + seed → a run folder (paper §IV-B protocol).

Run folder::

    config.json        the resolved config
    state.pt           resume point: model, optimiser, scheduler, scaler, RNG, position, history
    best.pt            weights with the best validation accuracy (model selection, §IV-B)
    history.csv        one row per epoch: CE, PAL, val accuracy, lr, seconds
    metrics.json       best val accuracy and epoch, steps, seconds
    dvclive/           the same metrics for DVC (``dvc plots``)

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
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from palbench.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from palbench.config import TrainConfig, read_config, result_diff
from palbench.data.canonical import load_landmark_set, read_dataset
from palbench.data.dataset import FaceDataset
from palbench.errors import ConfigError, DataError
from palbench.evaluate import predict
from palbench.io import write_json, write_text
from palbench.models import build_model, resolve_layer
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


def prepare(cfg: TrainConfig):
    """Validate everything a run needs before any file is written; return dataset, landmarks, model."""
    data = read_dataset(cfg.data)
    landmarks = load_landmark_set(data, cfg.landmarks)
    if landmarks is None and cfg.pal_weight > 0:
        raise DataError(f"{Path(cfg.data) / 'landmarks.npy'}: not found; PAL needs landmarks (`palbench landmarks`)")
    for split in ("train", "val"):
        if len(data.split_indices(split)) == 0:
            raise DataError(f"{Path(cfg.data) / 'samples.csv'}: split {split!r} is empty")
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch, num_classes=len(data.meta.get("classes", range(7))), width=cfg.width, weights=cfg.weights)
    resolve_layer(model, cfg.layer)  # unknown layer: error listing the valid ones
    if cfg.dropout is not None:
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = cfg.dropout
    return data, landmarks, model


def check_run_folder(out: Path, cfg: TrainConfig, resume: bool, force: bool) -> bool:
    """True when the run continues from ``out/state.pt``. Refuses to overwrite a run by accident."""
    stored = out / "config.json"
    if resume:
        if not (out / "state.pt").is_file():
            raise ConfigError(f"{out}: --resume given but there is no state.pt to resume from")
        diff = result_diff(read_config(stored), cfg.to_dict())
        if diff:
            raise ConfigError(f"{out}: --resume with a different config: {'; '.join(diff)}")
        return True
    if stored.exists() and not force:
        raise ConfigError(f"{out}: already holds a run; pass --resume to continue it or --force to start over")
    return False


def train(cfg: TrainConfig, out: str | Path, resume: bool = False, force: bool = False) -> dict:
    """Run one training; return ``metrics.json``'s content."""
    out = Path(out)
    t_start = time.perf_counter()
    data, landmarks, model = prepare(cfg)
    resuming = check_run_folder(out, cfg, resume, force)
    rank, world = distributed()
    if cfg.batch_size % world:
        raise ConfigError(f"batch_size {cfg.batch_size} is not divisible by the {world} processes")
    device = _device(rank)
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    norm = model.input_normalization
    train_set = FaceDataset(data, "train", cfg.size, landmarks, cfg.augment, norm, cfg.seed)
    val_set = FaceDataset(data, "val", cfg.size, landmarks, False, norm, cfg.seed)
    steps_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    total_steps = min(cfg.epochs * steps_per_epoch, cfg.max_steps or 10**12)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / total_steps) ** cfg.lr_power)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)

    state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "history": [], "best": {"val_accuracy": -1.0, "epoch": -1},
             "sums": {"ce": 0.0, "pal": 0.0, "n": 0}}  # sums: running loss sums of the current epoch
    if resuming:
        ckpt = load_checkpoint(out / "state.pt", map_location=device)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        state = {k: ckpt[k] for k in state}
    elif rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        for stale in ("state.pt", "best.pt", "metrics.json", "history.csv"):
            (out / stale).unlink(missing_ok=True)
        write_json(out / "config.json", cfg.to_dict())

    def checkpoint() -> None:
        if rank == 0:
            save_checkpoint(out / "state.pt", {
                "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict(), "rng": rng_state(), **state,
            })

    live = _live(out, resuming) if rank == 0 else None
    from tqdm.auto import tqdm

    bar = tqdm(total=total_steps, initial=state["global_step"], disable=None if cfg.progress and rank == 0 else True,
               desc=f"train {out.name}", unit="step", dynamic_ncols=True)
    labels = train_set.labels.numpy()
    local = cfg.batch_size // world
    while state["global_step"] < total_steps:
        epoch = state["epoch"]
        train_set.set_epoch(epoch)
        order = epoch_order(labels, epoch, cfg.seed, cfg.balanced)
        batches = [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
        mine = [b[rank * local : (rank + 1) * local].tolist() for b in batches[state["step_in_epoch"] :]]
        # own generator: creating the loader must not draw from the global RNG (dropout's, restored on resume)
        loader = DataLoader(train_set, batch_sampler=mine, num_workers=cfg.workers, generator=torch.Generator())
        net.train()
        sums = state["sums"]
        t_epoch = time.perf_counter()
        for batch in loader:
            images = batch["image"].to(device, non_blocking=True)
            if cfg.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                outs = pal_objective(net, images, batch["label"].to(device), batch["landmarks"].to(device), cfg.pal)
            opt.zero_grad(set_to_none=True)
            scaler.scale(outs["loss"]).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            state["step_in_epoch"] += 1
            state["global_step"] += 1
            sums["ce"] += outs["ce"].item()
            sums["pal"] += outs["pal"].item()
            sums["n"] += 1
            bar.update(1)
            bar.set_postfix(epoch=epoch, ce=f"{outs['ce'].item():.3f}", pal=f"{outs['pal'].item():.3f}",
                            val=f"{state['best']['val_accuracy']:.3f}")
            if state["global_step"] >= total_steps:
                break
            if state["global_step"] % cfg.checkpoint_every == 0:
                checkpoint()
        val_acc = _val_accuracy(model, val_set, device, cfg) if rank == 0 else 0.0
        row = {"epoch": epoch, "train_ce": sums["ce"] / max(sums["n"], 1), "train_pal": sums["pal"] / max(sums["n"], 1),
               "val_accuracy": val_acc, "lr": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t_epoch}
        state["history"].append(row)
        if rank == 0 and val_acc > state["best"]["val_accuracy"]:
            state["best"] = {"val_accuracy": val_acc, "epoch": epoch}
            save_checkpoint(out / "best.pt", {"model": model.state_dict(), "epoch": epoch, "val_accuracy": val_acc,
                                              "config": cfg.to_dict()})
        if live is not None:
            for k in ("train_ce", "train_pal", "val_accuracy", "lr"):
                live.log_metric(k, row[k])
            live.next_step()
        state["epoch"], state["step_in_epoch"], state["sums"] = epoch + 1, 0, {"ce": 0.0, "pal": 0.0, "n": 0}
        checkpoint()
        if world > 1:
            dist.barrier()
    bar.close()
    metrics = {
        "best_val_accuracy": state["best"]["val_accuracy"], "best_epoch": state["best"]["epoch"],
        "epochs": state["epoch"], "steps": state["global_step"], "seconds": time.perf_counter() - t_start,
    }
    if rank == 0:
        write_text(out / "history.csv", _csv(state["history"]))
        write_json(out / "metrics.json", metrics)
        if live is not None:
            live.end()
    if world > 1:
        dist.destroy_process_group()
    return metrics


def _val_accuracy(model: torch.nn.Module, val_set: FaceDataset, device: torch.device, cfg: TrainConfig) -> float:
    logits, labels = predict(model, val_set, device, batch_size=64, workers=cfg.workers)
    return float((logits.argmax(1) == labels).float().mean())


def _live(out: Path, resume: bool):
    from dvclive import Live

    return Live(dir=str(out / "dvclive"), resume=resume, save_dvc_exp=False, dvcyaml=None, report=None)


def _csv(rows: list[dict]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    return "\n".join([",".join(keys)] + [",".join(f"{r[k]:.6g}" if isinstance(r[k], float) else str(r[k]) for k in keys) for r in rows]) + "\n"
