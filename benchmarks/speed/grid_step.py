"""Speed (e): what one image of the built-in benchmark's grid costs to fine-tune, old settings against new.

    .venv/bin/python benchmarks/speed/grid_step.py

The default protocol trained from scratch at 64 px with batch 16 (issue 4); it now fine-tunes a pretrained
VGG16-BN ×0.125 at 48 px with batch 32 (issue 11). This times the CE+PAL train step (Grad×Input, Mean of half,
conv10 — the default configuration) and the CE step of both settings side by side in one process
(interleaved rounds, median), per image, with the ratio to the old setting. Data loading is not included:
the images are decoded once per process and augmented per sample in both cases.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_medians, markdown_table, publish  # noqa: E402

from palbench.config import PalConfig  # noqa: E402
from palbench.models import build_model  # noqa: E402
from palbench.objective import pal_objective  # noqa: E402

SETTINGS = {"64 px, batch 16 (from scratch, before)": (64, 16), "48 px, batch 32 (fine-tuning, now)": (48, 32)}


def steps(size: int, batch: int) -> dict:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=g)
    y = torch.randint(0, 7, (batch,), generator=g)
    landmarks = torch.rand(batch, 68, 2, generator=g) * size
    torch.manual_seed(0)
    model = build_model("vgg16_bn", width=0.125).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)

    def step(pal_weight: float):
        cfg = PalConfig(layer="conv10", method="grad_input", strategy="mean", c1=0.5, pal_weight=pal_weight,
                        prior_sigma=1.0)

        def run() -> None:
            opt.zero_grad(set_to_none=True)
            pal_objective(model, x, y, landmarks, cfg)["loss"].backward()
            opt.step()

        return run

    return {"ce": step(0.0), "pal": step(1.0)}


def main() -> None:
    fns = {}
    for name, (size, batch) in SETTINGS.items():
        for kind, fn in steps(size, batch).items():
            fns[(name, kind)] = fn
    t = interleaved_medians(fns, rounds=15, warmup=3)
    first = next(iter(SETTINGS))
    rows = []
    for name, (_, batch) in SETTINGS.items():
        per = {k: 1e3 * t[(name, k)] / batch for k in ("ce", "pal")}
        ref = {k: 1e3 * t[(first, k)] / SETTINGS[first][1] for k in ("ce", "pal")}
        rows.append([name, f"{per['ce']:.2f}", f"{per['pal']:.2f}", f"{per['pal'] / ref['pal']:.2f}"])
    body = ("VGG16-BN ×0.125, train mode, conv10, Grad×Input, Mean of half; median of 15 interleaved rounds, "
            "per image.\n\n" + markdown_table(["setting", "CE ms/image", "CE+PAL ms/image", "CE+PAL vs before"], rows))
    publish("grid_step", "Fine-tuning cost per image of the built-in benchmark's grid, before and after issue 11", body)


if __name__ == "__main__":
    main()
