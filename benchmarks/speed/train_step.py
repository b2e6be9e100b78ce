"""Speed (a): the CE+PAL train step against the CE-only step, at the layers of any torchvision model.

    .venv/bin/python benchmarks/speed/train_step.py [--arch vgg16 resnet50 swin_t vit_b_16:0.5 ...]
        [--width 0.25] [--size 112] [--layers late middle conv10 ...] [--no-naive]

``--arch`` takes any torchvision classification builder name or ``dlib_face_resnet``
(:data:`palbench.config.names.ARCHS`), optionally as ``NAME:WIDTH``. ``--width`` (or the ``:WIDTH`` suffix)
narrows the families that have a width knob (:func:`palbench.models.has_width_knob`); any other family
(RegNet, DenseNet, dlib's, ...) is built at width 1 and the output says so. ViT builds for one input size: ``--size`` must be a multiple of its patch size. dlib's face
ResNet takes 103 px or more; the Makefile's ``speed`` times it at dlib's 150 px chip, batch 16, at a middle
block (``layer3.1``), the last 4×4 block (``layer4.2``) and the last one (``layer5.0``, 2×2)::

    .venv/bin/python benchmarks/speed/train_step.py --arch dlib_face_resnet --size 150 --batch 16 --rounds 11 \
        --no-naive --layers layer3.1 layer4.2 layer5.0

``--layers`` takes catalogue names or module paths (``palbench layers --arch NAME``) and the keywords ``late``
and ``middle`` (:func:`pick_layers`). Default: every layer of a VGG / ResNet catalogue (the paper's backbones,
13–17 rows; a layer that only repeats the map of the row before it is skipped, :func:`floor_rows`), and
``late middle`` for every other family (a 20-block catalogue would take too long).

Both steps are timed side by side in one process (interleaved rounds, median). PAL's extra work is the
first-order backward of the part of the network ABOVE the layer (to get the attribution) and its double
backward (to differentiate the attribution), about 3 × its forward FLOPs on top of the CE step's
3 × the whole forward — hence the analytic floor printed beside each ratio::

    floor = 1 + F_above / F_total        (F = forward FLOPs, from torch.utils.flop_counter)

F counts convolutions and matrix products (attention's included); normalisation, activations and other
elementwise work are not counted, so a family heavy in them (BatchNorm in train mode, squeeze-excitation)
can sit above its floor, as can one with grouped or depthwise convolutions (EfficientNet, MobileNet,
ConvNeXt, RegNet): torch's double backward of a grouped convolution computes its weight term one group at a
time (``_convolution_double_backward``), one small convolution per channel for a depthwise one. Inside the
PAL step attention runs torch's math kernel (the fused CPU kernels have no double backward,
:func:`palbench.models.capture`); the CE step uses the default one.

"naive" is the pattern of reproductions that call an attribution library inside the loop: a second
forward pass to get the attribution, then the PAL term through it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import VGG, ResNet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_medians, markdown_table, publish  # noqa: E402

from palbench.attribution import layer_attribution  # noqa: E402
from palbench.config import PalConfig  # noqa: E402
from palbench.loss import pal_loss  # noqa: E402
from palbench.models import build_model, capture, describe_layers, flops_above, has_width_knob  # noqa: E402
from palbench.objective import pal_objective  # noqa: E402
from palbench.priors import render_priors  # noqa: E402

PICKS = ("late", "middle")


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


def arch_width(spec: str, width: float) -> tuple[str, float, str]:
    """``NAME`` or ``NAME:WIDTH`` → ``(arch, width, note)``: ``width`` where the family has a width knob,
    else 1 with a note saying so."""
    arch, _, w = spec.partition(":")
    width = float(w) if w else width
    if width != 1 and not has_width_knob(arch):
        return arch, 1.0, f"{arch} has no width knob: built at width 1"
    return arch, width, ""


def inputs(batch: int, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fixed random batch: images ``[B, 3, size, size]``, labels ``[B]``, landmarks ``[B, 68, 2]`` in pixels."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=g)
    y = torch.randint(0, 7, (batch,), generator=g)
    landmarks = torch.rand(batch, 68, 2, generator=g) * size
    return x, y, landmarks


def with_floor(model: nn.Module, row: dict[str, Any], size: int) -> dict[str, Any]:
    above, total = flops_above(model, row["name"], size)
    return {**row, "above": above, "total": total, "floor": 1 + above / total}


def floor_rows(model: nn.Module, size: int) -> list[dict[str, Any]]:
    """The catalogue rows (:func:`palbench.models.describe_layers`) with their FLOPs above and floor, less
    each row that only repeats the row before it: the same C×H×W map with no FLOPs counted between the two
    (a ResNet stage output is its last block's output; a norm, dropout or permute after a block; the
    class-token concatenation after ViT's patch projection). Timing it would repeat the row above."""
    rows: list[dict[str, Any]] = []
    for row in describe_layers(model, size):
        row = with_floor(model, row, size)
        if rows and row["above"] == rows[-1]["above"] and _chw(row) == _chw(rows[-1]):
            continue
        rows.append(row)
    return rows


def pick_layers(rows: list[dict[str, Any]], picks: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """``[(pick, row), ...]`` for ``picks`` among :data:`PICKS`, from :func:`floor_rows`' rows.

    * ``middle``: the row whose share of the forward FLOPs above it is nearest one half (floor nearest 1.5).
      Halfway by compute rather than by index: catalogues slice networks unevenly (EfficientNet lists its
      stem's conv, norm and activation as three rows; a CNN spends its FLOPs early, at high resolution, a ViT
      evenly), so a middle index would put each family at a different floor; this way the middle rows of
      all families have about the same floor and their ratios compare directly.
    * ``late``: the last layer before the final downsampling of the map: from the middle row on, the last
      row whose map has more positions than the last row's; the last row where there is none (ViT never
      downsamples: every block sees the same patch grid; at small inputs the final stage's map is 1×1, no
      catalogue layer, so the last row is the one before it). The last stage works on maps too small to carry
      a prior at CPU sizes (2×2 at 64 px, 7×7 even at 224 px), so the late PAL layer sits just before it —
      for VGG16 that is conv10, palbench's default layer; at 64 px it keeps a map of at least 4×4 in every
      family of ``backbones.py``.
    """
    middle = min(range(len(rows)), key=lambda i: abs(rows[i]["above"] / rows[i]["total"] - 0.5))
    out = []
    for pick in picks:
        if pick == "late":
            last = rows[-1]["height"] * rows[-1]["width"]
            row = next((r for r in reversed(rows[middle:]) if r["height"] * r["width"] > last), rows[-1])
        elif pick == "middle":
            row = rows[middle]
        else:
            raise ValueError(f"pick {pick!r}: expected one of {', '.join(PICKS)}")
        out.append((pick, row))
    return out


def layer_rows(model: nn.Module, size: int, layers: list[str] | None) -> list[tuple[str, dict[str, Any]]]:
    """``[(pick or "", row with floor), ...]`` to time: ``layers`` (names, module paths, ``late`` / ``middle``)
    or the default (module doc). A layer picked twice (``late`` = a named one) is timed once."""
    rows = floor_rows(model, size) if not layers or set(layers) & set(PICKS) else []
    if not layers:
        if isinstance(model, (VGG, ResNet)):
            return [("", r) for r in rows]
        layers = list(PICKS)
    out: list[tuple[str, dict[str, Any]]] = []
    named: dict[str, dict[str, Any]] = {}
    for name in layers:
        if name in PICKS:
            out += pick_layers(rows, [name])
            continue
        if not named:  # every module path with a spatial output, and the catalogue names
            named = {r["name"]: r for r in [*describe_layers(model, size, paths=True), *describe_layers(model, size)]}
        row = named.get(name)
        if row is None:
            raise SystemExit(f"{getattr(model, 'arch', '?')}: layer {name!r} is neither a catalogue layer nor a module "
                             f"path with a spatial output (`palbench layers --arch ARCH --paths` lists them)")
        out.append(("", with_floor(model, row, size)))
    seen: dict[str, int] = {}
    for i, (pick, row) in enumerate(out):
        if row["name"] in seen:  # merge the labels: "late, middle: features.5.2"
            j = seen[row["name"]]
            out[j] = (", ".join(p for p in (out[j][0], pick) if p), out[j][1])
        else:
            seen[row["name"]] = i
    return [out[i] for i in sorted(seen.values())]


def _chw(row: dict[str, Any]) -> str:
    return f"{row['channels']}×{row['height']}×{row['width']}"


def label(pick: str, row: dict[str, Any]) -> str:
    return f"{pick}: {row['name']}" if pick else row["name"]


def time_layer(model: nn.Module, layer: str, batch: tuple[torch.Tensor, ...], rounds: int,
               naive: bool = True) -> dict[str, float]:
    """Median seconds of the CE, CE+PAL (and naive) steps at ``layer``, interleaved."""
    steps = make_steps(model, layer, *batch)
    if not naive:
        del steps["naive"]
    return interleaved_medians(steps, rounds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", nargs="+", default=["vgg16", "resnet50"],
                    help="torchvision builder names, each optionally NAME:WIDTH")
    ap.add_argument("--width", type=float, default=0.25,
                    help="channel multiplier of the families with a width knob (others: width 1)")
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--layers", nargs="*", help="catalogue names, module paths or the keywords late / middle "
                    "(default: every layer of a VGG / ResNet catalogue, late and middle for other families)")
    ap.add_argument("--no-naive", action="store_true", help="skip the naive (second forward) step")
    args = ap.parse_args()

    batch = inputs(args.batch, args.size)
    rows, notes = [], []
    for spec in args.arch:
        arch, width, note = arch_width(spec, args.width)
        if note:
            notes.append(note)
            print(note, flush=True)
        torch.manual_seed(0)
        model = build_model(arch, width=width, size=args.size).train()
        name = arch if width == args.width else f"{arch} (×{width:g})"
        for pick, info in layer_rows(model, args.size, args.layers):
            t = time_layer(model, info["name"], batch, args.rounds, naive=not args.no_naive)
            ratio = t["pal"] / t["ce"]
            rows.append([
                name, label(pick, info), _chw(info), f"{1e3 * t['ce']:.0f}", f"{1e3 * t['pal']:.0f}",
                f"{ratio:.3f}", f"{info['floor']:.3f}", f"{ratio / info['floor']:.3f}",
                *([] if args.no_naive else [f"{t['naive'] / t['ce']:.3f}"]),
            ])
            print(" | ".join(rows[-1]), flush=True)
    body = (
        f"Batch {args.batch}, {args.size}×{args.size} px, width ×{args.width}, train mode, Grad×Input, Mean of half, "
        f"median of {args.rounds} interleaved rounds. floor = 1 + F_above/F_total; goal: ratio ≤ 1.10 at the last "
        "conv layer and ratio/floor ≤ 1.10 everywhere."
        + "".join(f" {n[0].upper()}{n[1:]}." for n in notes)
        + "\n\n"
        + markdown_table(
            ["arch", "layer", "C×H×W", "CE ms", "CE+PAL ms", "ratio", "floor", "ratio/floor",
             *([] if args.no_naive else ["naive ratio"])], rows
        )
    )
    publish("train_step_" + "_".join(a.partition(":")[0] for a in args.arch),
            "CE+PAL train step vs CE-only step (CPU)", body)


if __name__ == "__main__":
    main()
