"""The documentation figure: a grid of synthetic faces per class with landmarks and decoy boxes overlaid.

    python -m palbench.data.synth.preview docs/synth_grid.png [--size 64] [--per-class 6] [--seed 0]

Rows are the classes (RAF-DB order); each image is a train image as ``generate`` draws it (identity, pose,
background, lighting, blur, noise, occluder, decoy with the default probability), shown with its 68
landmarks (dots: jaw, brows, nose, eyes, mouth in different colours) and its decoy box (dashed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from palbench.data.canonical import CLASSES
from palbench.data.synth.face import GROUPS, sample_identity
from palbench.data.synth.generator import DEFAULTS
from palbench.data.synth.params import identity_rng, sample_params, sample_rngs
from palbench.data.synth.render import render_sample
from palbench.io import atomic_path

_GROUP_COLOURS = {"jaw": "#ffffff", "brows": "#ffd400", "nose": "#00e5ff", "eyes": "#7CFC00", "mouth": "#ff4fd8"}


def preview_samples(per_class: int = 6, size: int = 64, seed: int = 0, decoy_p: float = DEFAULTS["decoy_p"]):
    """``[(label, image uint8 [H,W,3], landmarks [68,2], decoy box [4])]``, ``per_class`` per class, class-major.

    Sample ``j`` of class ``k`` is train image ``k * per_class + j`` of identity ``k * per_class + j``."""
    out = []
    for k in range(len(CLASSES)):
        for j in range(per_class):
            i = k * per_class + j
            rng, drng = sample_rngs(seed, "train", i)
            p = sample_params(rng, drng, k, sample_identity(identity_rng(seed, i)), "train", decoy_p=decoy_p)
            out.append((k, *render_sample(p, size)))
    return out


def save_grid(path: str | Path, per_class: int = 6, size: int = 64, seed: int = 0, landmarks: bool = True) -> None:
    """Write the grid figure (PNG) to ``path`` atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    samples = preview_samples(per_class, size, seed)
    fig, axes = plt.subplots(len(CLASSES), per_class, figsize=(1.6 * per_class + 0.9, 1.6 * len(CLASSES)), dpi=100)
    for ax, (k, img, lm, box) in zip(axes.ravel(), samples):
        ax.imshow(img, interpolation="nearest")
        if landmarks:
            for name, idx in GROUPS.items():
                ax.scatter(lm[idx, 0], lm[idx, 1], s=0.8, c=_GROUP_COLOURS[name], linewidths=0, alpha=0.8)
        if not np.isnan(box).any():
            ax.add_patch(Rectangle((box[0], box[1]), box[2] - box[0], box[3] - box[1], fill=False, ec="white",
                                   lw=0.8, ls="--"))  # fmt: skip
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlim(-0.5, size - 0.5)
        ax.set_ylim(size - 0.5, -0.5)
    for k, name in enumerate(CLASSES):
        axes[k, 0].set_ylabel(f"{k} {name}", fontsize=10)
    fig.suptitle(f"palbench synth: {size}px train samples, landmarks and decoy boxes (seed {seed})", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m palbench.data.synth.preview", description=__doc__.splitlines()[0])
    ap.add_argument("out", help="output PNG (e.g. docs/synth_grid.png)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--per-class", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-landmarks", action="store_true", help="images only")
    args = ap.parse_args(argv)
    save_grid(args.out, args.per_class, args.size, args.seed, landmarks=not args.no_landmarks)
    print(args.out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
