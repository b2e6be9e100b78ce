"""Speed (issue 20): two single-threaded runs side by side against one run with every thread, per image.

    .venv/bin/python benchmarks/speed/side_by_side.py [--steps 30] [--rounds 5]

The built-in benchmark's grid trains many small runs. A train stage can train them one at a time in its process
(``jobs: 1``, torch using every core) or ``jobs`` at a time in single-threaded worker processes
(:mod:`palbench.workers`). This times the CE+PAL train step of the default configuration (VGG16-BN ×0.125, conv10,
Grad×Input, Mean of half) at 48 px, batch 32 and 64, both ways, in interleaved rounds (median): images per
second of the whole machine, and the ratio. The workers are started once (``spawn``) and wait on a barrier, so
the rounds time training only.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, publish  # noqa: E402
from grid_step import steps  # noqa: E402

SIZE = 48


def make_step(batch: int):
    """A CE+PAL train step of the default configuration on a fixed random batch (grid_step.py's step)."""
    return steps(SIZE, batch)["pal"]


def worker(batch: int, n_steps: int, start, done) -> None:
    torch.set_num_threads(1)
    step = make_step(batch)
    step()  # warm-up
    while True:  # until the main process terminates it
        start.wait()
        for _ in range(n_steps):
            step()
        done.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30, help="train steps per process per round")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    jobs = os.cpu_count() or 2
    rows = []
    for batch in (32, 64):
        ctx = multiprocessing.get_context("spawn")
        start, done = ctx.Barrier(jobs + 1), ctx.Barrier(jobs + 1)
        procs = [ctx.Process(target=worker, args=(batch, args.steps, start, done), daemon=True) for _ in range(jobs)]
        for p in procs:
            p.start()
        torch.set_num_threads(jobs)
        step = make_step(batch)
        step()
        alone, side = [], []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            alone.append(args.steps * batch / (time.perf_counter() - t0))
            start.wait()  # the workers' first wait returns once they are all built
            t0 = time.perf_counter()
            done.wait()
            side.append(jobs * args.steps * batch / (time.perf_counter() - t0))
        for p in procs:
            p.terminate()
        a, s = statistics.median(alone), statistics.median(side)
        rows.append([f"48 px, batch {batch}", f"{a:.0f}", f"{s:.0f}", f"{s / a:.2f}"])
    publish("side_by_side", "Two single-threaded runs side by side against one run with every thread",
            f"CE+PAL train step of the default configuration (VGG16-BN ×0.125, conv10, Grad×Input, Mean of half); "
            f"{args.steps} steps per process per round, median of {args.rounds} interleaved rounds; images per "
            f"second of the whole machine ({jobs} cores).\n\n"
            + markdown_table(["setting", f"1 process × {jobs} threads", f"{jobs} processes × 1 thread",
                              "side by side / alone"], rows))


if __name__ == "__main__":
    main()
