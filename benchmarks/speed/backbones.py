"""Speed (a'): the CE+PAL / CE train-step ratio and its FLOP floor for one narrow model per family.

    .venv/bin/python benchmarks/speed/backbones.py [--size 64] [--batch 16] [--rounds 21] [--threads 1]
        [--arch NAME[:WIDTH] ...]

For each model of :data:`FAMILIES` (or ``--arch``), at its ``late`` and ``middle`` layer
(:func:`train_step.pick_layers`), the CE step and the CE+PAL step (Grad×Input, Mean of half) are timed side
by side in one process (interleaved rounds, median), with the floor ``1 + F_above / F_total`` of
:mod:`train_step`. Writes ``results/backbones.md``. About 4 minutes on a 2-core CPU at the defaults
(the table also gives the interquartile range of the rounds' own ratios: the noise of each ratio).

One torch thread by default: a step of these narrow models is too small to split well over cores, and with
two threads a process that shares the cores with any other one (a second benchmark, a test run) waits at
every thread barrier — steps then took up to 30× longer and their ratios meant nothing; with one thread the
ratios of five runs on a busy 2-core machine agreed to about 5%.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_times, markdown_table, publish  # noqa: E402
from train_step import _chw, arch_width, inputs, layer_rows, make_steps  # noqa: E402

from palbench.models import build_model  # noqa: E402

#: One model per family, ``NAME[:WIDTH]`` (default width: ``--width``; RegNet has no width knob: width 1).
FAMILIES = ("vgg16_bn", "resnet18", "resnet50", "convnext_tiny", "efficientnet_b0", "mobilenet_v3_large",
            "regnet_y_800mf", "vit_b_16", "swin_t")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", nargs="+", default=list(FAMILIES), help="NAME or NAME:WIDTH (default: FAMILIES)")
    ap.add_argument("--width", type=float, default=0.25,
                    help="channel multiplier of the families with a width knob (others: width 1)")
    ap.add_argument("--size", type=int, default=64, help="input side in px (ViT: a multiple of its patch size)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (module doc)")
    ap.add_argument("--name", default="backbones", help="results/<name>.md")
    args = ap.parse_args()
    if args.rounds < 2:
        ap.error("--rounds: at least 2 (the table gives the rounds' quartiles)")

    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    batch = inputs(args.batch, args.size)
    rows = []
    for spec in args.arch:
        arch, width, note = arch_width(spec, args.width)
        torch.manual_seed(0)
        model = build_model(arch, width=width, size=args.size).train()
        for pick, info in layer_rows(model, args.size, ["late", "middle"]):
            steps = make_steps(model, info["name"], *batch)
            times = interleaved_times({"ce": steps["ce"], "pal": steps["pal"]}, args.rounds)
            t = {k: statistics.median(v) for k, v in times.items()}
            ratio = t["pal"] / t["ce"]
            q1, q2, q3 = statistics.quantiles([p / c for p, c in zip(times["pal"], times["ce"])], n=4)
            rows.append([
                arch, f"{width:g}" + (" (no knob)" if note else ""), args.size, pick, info["name"], _chw(info),
                f"{1e3 * t['ce']:.0f}", f"{1e3 * t['pal']:.0f}", f"{ratio:.3f}", f"{q2:.2f} ({q1:.2f}–{q3:.2f})",
                f"{info['floor']:.3f}", f"{ratio / info['floor']:.3f}",
            ])
            print(" | ".join(str(c) for c in rows[-1]), flush=True)
    body = (
        f"Batch {args.batch}, {args.size}×{args.size} px, random init, train mode, Grad×Input, Mean of half, "
        f"median of {args.rounds} interleaved rounds (CE step and CE+PAL step alternating in one process; ratio = "
        "CE+PAL ms / CE ms; beside it the median and interquartile range of the rounds' own CE+PAL / CE ratios, "
        "the noise of each ratio). "
        f"Width ×{args.width:g} where the family has a width knob, else ×1 (\"no knob\"). "
        "late = the last layer before the final downsampling of the map (ViT, never downsampled: the last "
        "block); middle = the layer with half the forward FLOPs above it (`benchmarks/speed/train_step.py`, "
        "`pick_layers`). floor = 1 + F_above/F_total, F = forward FLOPs of convolutions and matrix products "
        "(attention included) from `torch.utils.flop_counter`; ratio/floor > 1 is work the FLOP count does "
        "not see: normalisation, activations and other elementwise ops, and grouped / depthwise convolutions, "
        "whose double backward torch computes one group at a time (EfficientNet, MobileNet, ConvNeXt, RegNet). "
        f"1-minute load average at the start: {load:.2f}.\n\n"
        + markdown_table(
            ["arch", "width", "px", "pick", "layer", "C×H×W", "CE ms", "CE+PAL ms", "ratio",
             "round ratios: median (IQR)", "floor", "ratio/floor"],
            rows,
        )
    )
    publish(args.name, "CE+PAL / CE train step by backbone family (CPU)", body)


if __name__ == "__main__":
    main()
