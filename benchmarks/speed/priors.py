"""Speed (b): render_priors (eq. 8 exact, one batched matmul) against the literal recipe of other
reproductions: an indicator image at the rounded landmarks (eq. 7) blurred with a Gaussian filter
(scipy.ndimage or OpenCV), either at 224×224 and then resized to the map, or at the map's own size.

    .venv/bin/python benchmarks/speed/priors.py [--n 10000]

Prints maps/s, the Pearson agreement of the two outputs (landmarks rounded for the comparison, so
the only differences are eq. 7's indicator — duplicates collapse, off-canvas points vanish — and the
filter's truncation/boundary handling), and the rendering time of one training batch (16 maps) as a
share of one CE+PAL training step of the narrow VGG16 at 112 px.

σ is the same physical blur at every size: 3 pixels of a 28×28 map (VGG conv8-10 at 224 px input),
i.e. σ = 3·s/28 on an s×s map and 24 px at 224.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_medians, markdown_table, publish  # noqa: E402

from palbench.models import build_model  # noqa: E402
from palbench.config import PalConfig  # noqa: E402
from palbench.objective import pal_objective  # noqa: E402
from palbench.priors import render_priors  # noqa: E402

FULL = 224


def face_like_landmarks(n: int, seed: int = 0) -> np.ndarray:
    """[n, 68, 2] points in a 224 crop: a face-sized cloud with per-sample shift and scale."""
    rng = np.random.default_rng(seed)
    centre = rng.uniform(90, 134, (n, 1, 2))
    scale = rng.uniform(35, 55, (n, 1, 1))
    return (centre + scale * rng.normal(size=(n, 68, 2)).clip(-2, 2)).astype(np.float32)


def indicator(points: np.ndarray, size: int) -> np.ndarray:
    """Eq. 7: 1 at the rounded landmark pixels (inside the canvas), 0 elsewhere."""
    img = np.zeros((size, size), np.float32)
    p = np.rint(points).astype(int)
    ok = (p >= 0).all(1) & (p < size).all(1)
    img[p[ok, 1], p[ok, 0]] = 1.0
    return img


def recipe(points: np.ndarray, size: int, sigma: float, lib: str, via_full: bool) -> np.ndarray:
    """The literal recipe for one map of size×size."""
    s = FULL if via_full else size
    pts = points if via_full else (points + 0.5) * size / FULL - 0.5
    sig = sigma * FULL / size if via_full else sigma
    img = indicator(pts, s)
    if lib == "scipy":
        img = ndimage.gaussian_filter(img, sig, mode="constant")
    else:
        img = cv2.GaussianBlur(img, (0, 0), sig, borderType=cv2.BORDER_CONSTANT)
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA) if via_full else img


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a.reshape(len(a), -1) - a.reshape(len(a), -1).mean(1, keepdims=True)
    b = b.reshape(len(b), -1) - b.reshape(len(b), -1).mean(1, keepdims=True)
    r = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
    return float(np.mean(r))


def rate(fn, n: int) -> float:
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10000, help="maps per measurement (default 10000)")
    ap.add_argument("--n-full", type=int, default=1000, help="maps for the slow 224-then-resize recipes")
    args = ap.parse_args()
    lm = face_like_landmarks(args.n)
    lm_t = torch.from_numpy(lm)

    # one CE+PAL step of the narrow VGG16 at 112 px, batch 16, for the share column
    torch.manual_seed(0)
    model = build_model("vgg16", width=0.25).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    x, y = torch.randn(16, 3, 112, 112), torch.randint(0, 7, (16,))
    lm16 = lm_t[:16] / 2

    def train_step():
        out = pal_objective(model, x, y, lm16, PalConfig(layer="conv10"))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()

    rows = []
    for size in (14, 28, 56):
        sigma = 3.0 * size / 28
        ours = lambda lm=lm_t: [render_priors(c, FULL, size, sigma) for c in lm.split(1000)]  # noqa: E731
        render_priors(lm_t[:1000], FULL, size, sigma)  # warm-up
        r_ours = rate(ours, args.n)
        r_ours16 = rate(lambda: [render_priors(c, FULL, size, sigma) for c in lm_t.split(16)], args.n)
        t = interleaved_medians({"prior16": lambda: render_priors(lm16 * 2, FULL, size, sigma), "step": train_step}, 3)
        rnd_own = (np.rint((lm + 0.5) * size / FULL - 0.5) + 0.5) * FULL / size - 0.5  # rounded on the map grid
        exact_own = render_priors(torch.from_numpy(rnd_own[: args.n_full]), FULL, size, sigma).numpy()
        exact_full = render_priors(torch.from_numpy(np.rint(lm[: args.n_full])), FULL, size, sigma).numpy()
        for lib in ("scipy", "opencv"):
            for via_full in (False, True):
                n = args.n_full if via_full else args.n
                out: list[np.ndarray] = []
                r = rate(lambda: out.extend(recipe(p, size, sigma, lib, via_full) for p in lm[:n]), n)
                ref = exact_full if via_full else exact_own
                agree = pearson(np.stack(out[: args.n_full]), ref)
                rows.append([
                    f"{size}×{size}", f"{lib}, {'224 → resize' if via_full else 'own size'}", f"{r:,.0f}",
                    f"{r_ours:,.0f}", f"{r_ours / r:.1f}×", f"{agree:.4f}", "",
                ])
        rows.append([f"{size}×{size}", "render_priors, calls of 16 (training use)", f"{r_ours16:,.0f}", "", "", "",
                     f"{100 * t['prior16'] / t['step']:.3f}%"])
        print(" | ".join(rows[-1]), flush=True)
    body = (
        f"{args.n:,} maps per measurement ({args.n_full:,} for the 224→resize recipes), σ = 3·s/28 map pixels. "
        "'ours' = render_priors in batches of 1000. Agreement = mean per-map Pearson r between the recipe and "
        "render_priors on the same rounded landmarks. Share = rendering 16 maps / one CE+PAL step "
        "(narrow VGG16 ×0.25, 112 px, batch 16, conv10).\n\n"
        + markdown_table(["map", "recipe", "recipe maps/s", "ours maps/s", "ours / recipe", "agreement r", "share of step"], rows)
    )
    publish("priors", "render_priors vs the indicator + blur recipe (CPU)", body)


if __name__ == "__main__":
    main()
