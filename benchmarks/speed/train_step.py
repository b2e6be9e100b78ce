"""Speed (a): the CE+PAL train step against the CE-only step, at every layer of the catalogue.

    .venv/bin/python benchmarks/speed/train_step.py [--arch vgg16 resnet50] [--width 0.25] [--size 112]

Both steps are timed side by side in one process (interleaved rounds, median). PAL's extra work is the
first-order backward of the part of the network ABOVE the layer (to get the attribution) and its double
backward (to differentiate the attribution), about 3 × its forward FLOPs on top of the CE step's
3 × the whole forward — hence the analytic floor printed beside each ratio::

    floor = 1 + F_above / F_total        (F = forward FLOPs, from torch.utils.flop_counter)

"naive" is the pattern of reproductions that call an attribution library inside the loop: a second
forward pass to get the attribution, then the PAL term through it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_medians, markdown_table, publish  # noqa: E402

from palbench.attribution import layer_attribution  # noqa: E402
from palbench.loss import pal_loss  # noqa: E402
from palbench.models import build_model, capture, describe_layers, flops_above  # noqa: E402
from palbench.config import PalConfig  # noqa: E402
from palbench.objective import pal_objective  # noqa: E402
from palbench.priors import render_priors  # noqa: E402


def make_steps(model: nn.Module, layer: str, x, y, landmarks):
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    cfg = PalConfig(layer=layer, method="grad_input", strategy="mean", c1=0.5, pal_weight=1.0)

    def step(loss):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def ce_step():
        step(nn.functional.cross_entropy(model(x), y))

    def pal_step():
        step(pal_objective(model, x, y, landmarks, cfg)["loss"])

    def naive_step():
        ce = nn.functional.cross_entropy(model(x), y)
        with capture(model, layer) as cap:  # second forward, as an attribution library would do
            logits = model(x)
        attribution = layer_attribution(logits, cap.features, "grad_input")
        prior = render_priors(landmarks, x.shape[-2:], attribution.shape[-2:], 3.0)
        step(ce + pal_loss(attribution, prior, "mean", 0.5))

    return {"ce": ce_step, "pal": pal_step, "naive": naive_step}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", nargs="+", default=["vgg16", "resnet50"])
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--layers", nargs="*", help="subset of catalogue names (default: all)")
    args = ap.parse_args()

    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=g)
    y = torch.randint(0, 7, (args.batch,), generator=g)
    landmarks = torch.rand(args.batch, 68, 2, generator=g) * args.size
    rows = []
    for arch in args.arch:
        torch.manual_seed(0)
        model = build_model(arch, width=args.width).train()
        for info in describe_layers(model, args.size):
            layer = info["name"]
            if args.layers and layer not in args.layers:
                continue
            if arch.startswith("resnet") and "." not in layer and layer != "stem":
                continue  # a stage output is its last block's output: timed under that name
            above, total = flops_above(model, layer, args.size)
            floor = 1 + above / total
            t = interleaved_medians(make_steps(model, layer, x, y, landmarks), args.rounds)
            ratio = t["pal"] / t["ce"]
            rows.append([
                arch, layer, f"{info['channels']}×{info['height']}×{info['width']}", f"{1e3 * t['ce']:.0f}",
                f"{1e3 * t['pal']:.0f}", f"{ratio:.3f}", f"{floor:.3f}", f"{ratio / floor:.3f}",
                f"{t['naive'] / t['ce']:.3f}",
            ])
            print(" | ".join(rows[-1]), flush=True)
    body = (
        f"Batch {args.batch}, {args.size}×{args.size} px, width ×{args.width}, train mode, Grad×Input, Mean of half, "
        f"median of {args.rounds} interleaved rounds. floor = 1 + F_above/F_total; goal: ratio ≤ 1.10 at the last "
        "conv layer and ratio/floor ≤ 1.10 everywhere.\n\n"
        + markdown_table(
            ["arch", "layer", "C×H×W", "CE ms", "CE+PAL ms", "ratio", "floor", "ratio/floor", "naive ratio"], rows
        )
    )
    publish("train_step_" + "_".join(args.arch), "CE+PAL train step vs CE-only step (CPU)", body)


if __name__ == "__main__":
    main()
