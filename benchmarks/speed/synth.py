"""Speed (synth): images/s of the built-in benchmark generator on ONE core, and the wall time of the default
dataset.

    .venv/bin/python benchmarks/speed/synth.py [--n 300] [--rounds 5] [--no-dataset]

Pins the process to one CPU core (where the OS allows) and times, in interleaved rounds over the same
``--n`` samples (median of rounds):

- ``draw + render``: sampling the parameters (identity, expression, nuisances, decoy) and rendering in memory;
- ``draw + render + PNG``: the same plus PNG encoding with the generator's fixed settings: the generator's
  throughput without the file system;
- ``PNG only`` (reference): encoding the already rendered images — the floor of any generator that stores
  PNGs — so the table also gives generation time as a multiple of it.

Then one row at 224 px, and ``generate()`` of the default dataset (1400/350/700 at 64 px) into a temporary
folder beside this script, wall time end to end (one process; the target is under a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_medians, markdown_table, publish  # noqa: E402

from palbench.data.synth import generate  # noqa: E402
from palbench.data.synth.face import sample_identity  # noqa: E402
from palbench.data.synth.generator import DEFAULTS, PNG_SETTINGS  # noqa: E402
from palbench.data.synth.params import identity_rng, sample_params, sample_rngs  # noqa: E402
from palbench.data.synth.render import render_sample  # noqa: E402


def pin_one_core() -> str:
    try:
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to core {core}"
    except (AttributeError, OSError):
        return "not pinned (sched_setaffinity unavailable)"


_IDENTITY: dict[int, object] = {}


def draw(i: int, seed: int = 0):
    """Parameters of train image ``i`` as ``generate`` draws them (one identity per 7 images, drawn once)."""
    rng, drng = sample_rngs(seed, "train", i)
    subject = i // DEFAULTS["images_per_subject"]
    if subject not in _IDENTITY:
        _IDENTITY.clear()
        _IDENTITY[subject] = sample_identity(identity_rng(seed, subject))
    return sample_params(rng, drng, i % 7, _IDENTITY[subject], "train", decoy_p=DEFAULTS["decoy_p"])


def encode(img) -> int:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, **PNG_SETTINGS)
    return len(buf.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="images per timed round (default: 300)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-dataset", action="store_true", help="skip the default-dataset wall time")
    args = ap.parse_args()
    pinned = pin_one_core()
    n = args.n
    rows = []
    for size, count, rounds in ((64, n, args.rounds), (224, max(n // 6, 20), max(args.rounds // 2, 2))):
        imgs = [render_sample(draw(i), size)[0] for i in range(count)]

        def render_only(size=size, count=count) -> None:
            for i in range(count):
                render_sample(draw(i), size)

        def render_png(size=size, count=count) -> None:
            for i in range(count):
                encode(render_sample(draw(i), size)[0])

        def png_only(imgs=imgs) -> None:
            for img in imgs:
                encode(img)

        t = interleaved_medians({"render": render_only, "render+png": render_png, "png": png_only}, rounds)
        kb = sum(encode(im) for im in imgs) / len(imgs) / 1024
        for name, label in (("render", "draw + render"), ("render+png", "draw + render + PNG"), ("png", "PNG only")):
            rows.append([f"{size}", label, f"{count / t[name]:.0f}", f"{1e3 * t[name] / count:.3f}",
                         f"{t[name] / t['png']:.1f}×", f"{kb:.1f}" if name != "render" else ""])  # fmt: skip
    body = f"One core ({pinned}); median of interleaved rounds.\n\n" + markdown_table(
        ["size", "what", "images/s", "ms/image", "× PNG only", "KB/PNG"], rows
    )
    if not args.no_dataset:
        with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent) as tmp:
            t0 = time.perf_counter()
            meta = generate(Path(tmp) / "synth", progress=False)
            wall = time.perf_counter() - t0
        body += (f"\n\n`generate()` of the default dataset ({meta['n_samples']} images at "
                 f"{meta['image_size'][0]} px, one process on one core, files included): {wall:.1f} s "
                 f"({meta['n_samples'] / wall:.0f} images/s).")  # fmt: skip
    publish("synth", "Synthetic benchmark generation speed", body)


if __name__ == "__main__":
    main()
