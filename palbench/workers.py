"""Train and evaluate many runs — a group of the DVC grid — in one process or in ``jobs`` single-threaded worker
processes side by side.

On a small CPU, two single-threaded processes training two runs at once finish sooner than one process with
two threads training them one after the other: the narrow networks of the built-in benchmark do not keep two
threads busy (``benchmarks/speed/side_by_side.py`` measures the ratio). Each run's result does not depend on
the worker that trains it: every worker uses one thread, the run's seed fixes its initialisation and data order,
and a run reads only its own configuration — so ``jobs`` changes the time, not the numbers (tested).

Each process reads a dataset once (``config.data``; a group may train on the protocol's data and its variants)
and keeps its decoded images for every run it trains on that dataset. Evaluation follows each run in the
process that trained it (an interpreter start with torch costs seconds). Workers are started with ``spawn``:
a fork of a process that already ran torch's thread pool can hang.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from palbench.config import TrainConfig
from palbench.errors import ConfigError

#: Datasets read by this process, by folder (each worker keeps its own).
_DATASETS: dict[str, object] = {}


def _dataset(path: str):
    from palbench.data.canonical import read_dataset

    if path not in _DATASETS:
        _DATASETS[path] = read_dataset(path)
    return _DATASETS[path]


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def run_one(task: tuple[dict, str, str | None, str | None, bool, bool, bool]) -> tuple[dict, str, dict, dict | None]:
    """Train (then evaluate) one run: ``(config dict, run folder, evaluate split or None, evaluation landmarks,
    resume, force, discard_state)`` → ``(config dict, run folder, training metrics, evaluation metrics or None)``."""
    from palbench.evaluate import evaluate_run
    from palbench.train import train

    values, out, split, landmarks, resume, force, discard_state = task
    cfg = TrainConfig.from_dict(values)
    data = _dataset(cfg.data)
    metrics = train(cfg, out, resume=resume, force=force, dataset=data)
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 writes, evaluates and reports
        return values, out, metrics, None
    if discard_state:
        (Path(out) / "state.pt").unlink(missing_ok=True)
    evaluation = None
    if split:
        evaluation = evaluate_run(out, Path(out) / split, split, data, landmarks, progress=False)
    return values, out, metrics, evaluation


def train_runs(
    runs: Sequence[tuple[TrainConfig, Path]], jobs: int = 1, evaluate: str | None = None,
    evaluate_landmarks: str | None = None, resume: bool = False, force: bool = False, discard_state: bool = False,
) -> Iterator[tuple[TrainConfig, Path, dict, dict | None]]:
    """Train ``runs`` (``[(config, run folder)]``, e.g. :func:`palbench.config.planned_runs`), each then evaluated
    on split ``evaluate`` (into ``<run>/<split>``, as ``palbench evaluate``) when given.

    ``jobs`` = 1: one after the other in this process (with its torch threads; under torchrun, every rank).
    ``jobs`` > 1: that many single-threaded worker processes, each taking the next run when it is free.

    Yields ``(config, run folder, training metrics, evaluation metrics or None)`` as runs finish (in order for
    ``jobs`` = 1). A run that fails stops the others and raises its error here.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"jobs: expected an integer >= 1, got {jobs!r}")
    tasks = [(cfg.to_dict(), str(out), evaluate, evaluate_landmarks, resume, force, discard_state) for cfg, out in runs]
    if jobs > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("jobs: side-by-side workers and torchrun's processes do not mix; use jobs 1 under torchrun")
    if jobs == 1 or len(tasks) <= 1:
        for task in tasks:
            values, out, metrics, evaluation = run_one(task)
            if int(os.environ.get("RANK", "0")) == 0:
                yield TrainConfig.from_dict(values), Path(out), metrics, evaluation
        return
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(min(jobs, len(tasks)), initializer=_one_thread) as pool:
        for values, out, metrics, evaluation in pool.imap_unordered(run_one, tasks):
            yield TrainConfig.from_dict(values), Path(out), metrics, evaluation
