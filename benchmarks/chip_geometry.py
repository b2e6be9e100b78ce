"""Which crop should dlib's face network see: dlib's own face chip, or palbench's aligned crop? (issue 22)

    .venv/bin/python benchmarks/chip_geometry.py --work /tmp/ps --out /tmp/chip --name chip_geometry

Takes the aligned photo dataset that ``benchmarks/photos_start.py`` made in ``--work`` (palbench's crop: eye line
levelled, margin 0.4, 112 px) and builds its twin with the same samples and splits, each photo cropped by dlib's
``get_face_chip`` (the 5-point chip geometry dlib's network was trained on: 150 px, padding 0.25) from dlib's
68 points of the original photo; photos where dlib finds no face keep palbench's (whole, letterboxed) image in
both. Landmarks of the chips are found again by palbench's dlib backend, priors drawn from them. Then the dlib
start trains on both, same seeds and settings (``photos_start.py``'s dlib row: 112 px input, 5 epochs, lr 2e-5),
baseline and PAL. Writes ``benchmarks/calibration/<name>.md``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent / "speed"))
from common import markdown_table, publish  # noqa: E402

from palbench.config.new import BACKBONES  # noqa: E402
from palbench.data.images import to_rgb  # noqa: E402
from palbench.landmarks.dlib_backend import default_predictor_path  # noqa: E402
from palbench.models.dlib_face import default_model_path  # noqa: E402
from palbench.results import paired_comparison, summarize  # noqa: E402
from photos_start import palbench  # noqa: E402  (each step a `palbench` command, as photos_start runs them)

HERE = Path(__file__).resolve().parent / "calibration"


def chip_dataset(work: Path, out: Path, size: int = 150, padding: float = 0.25) -> int:
    """Write ``out``: ``work/data``'s samples with dlib face chips of the original photos; returns how many
    photos had a face (the others keep palbench's image)."""
    import dlib

    src = work / "data"
    samples = pd.read_csv(src / "samples.csv")
    originals = {p.with_suffix("").relative_to(work / "photos").as_posix(): p
                 for p in (work / "photos").rglob("*") if p.is_file() and p.suffix != ".csv"}
    detector, predictor = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(default_predictor_path()))
    if out.exists():
        shutil.rmtree(out)
    (out / "images").mkdir(parents=True)
    found = 0
    for path in samples["path"]:
        target = out / "images" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(originals[Path(path).with_suffix("").as_posix()]) as im:
            rgb = np.asarray(to_rgb(im))
        faces = detector(rgb, 1)
        if len(faces):
            shape = predictor(rgb, max(faces, key=lambda r: r.area()))
            Image.fromarray(dlib.get_face_chip(rgb, shape, size=size, padding=padding)).save(target)
            found += 1
        else:
            with Image.open(src / "images" / path) as im:
                to_rgb(im).resize((size, size), Image.BILINEAR).save(target)
    samples.to_csv(out / "samples.csv", index=False)
    meta = json.loads((src / "meta.json").read_text())
    meta.pop("align", None)
    meta["image_size"] = [size, size]
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="photos_start.py's --work (photos, data, runs)")
    ap.add_argument("--out", type=Path, required=True, help="scratch folder for the chip dataset and its runs")
    ap.add_argument("--name", default="chip_geometry")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=5)
    args = ap.parse_args()
    dlib_spec = BACKBONES["dlib_face_resnet"]
    data = args.out / "data"
    found = chip_dataset(args.work, data)
    palbench("landmarks", data, "--backend", "dlib", "--out", args.out / "landmarks")
    palbench("priors", data, args.out / "priors", "--landmarks", args.out / "landmarks" / "landmarks.npy",
             "--landmark-noise", 0)
    settings = ["--arch", "dlib_face_resnet", "--width", 1.0, "--size", dlib_spec["size"], "--epochs", args.epochs,
                "--batch-size", 32, "--lr-power", 0.9, "--layer", dlib_spec["layer"], "--method", "grad_input",
                "--c1", 0.5, "--prior-sigma", 1.0, "--weights", default_model_path(), "--lr", dlib_spec["lr"]]
    acc: dict[tuple[str, str], dict[int, float]] = {}
    for loss, weight in (("baseline", 0.0), ("PAL", 1.0)):
        out = args.out / "runs" / f"chip-{weight:g}"
        palbench("train", out, "--force", "--seeds", *args.seeds, "--data", data, "--landmarks", args.out / "priors",
                 "--evaluate", "test", "--evaluate-landmarks", args.out / "priors", *settings, "--pal-weight", weight)
        acc[("dlib chip (150 px, padding 0.25)", loss)] = {
            s: json.loads((out / f"s{s}" / "test" / "metrics.json").read_text())["accuracy"] for s in args.seeds}
        ref = args.work / "runs" / f"dlib-face-network-{weight:g}"
        acc[("palbench crop (112 px, margin 0.4)", loss)] = {
            s: json.loads((ref / f"s{s}" / "test" / "metrics.json").read_text())["accuracy"] for s in args.seeds}
    rows = []
    for (crop, loss), by_seed in sorted(acc.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        s = summarize([100 * v for v in by_seed.values()])
        rows.append([crop, loss, f"{s['mean']:.1f} ± {s['std']:.1f}", f"[{s['ci_low']:.1f}, {s['ci_high']:.1f}]",
                     " ".join(f"{100 * by_seed[k]:.1f}" for k in args.seeds)])
    diffs = []
    for loss in ("baseline", "PAL"):
        d = paired_comparison({k: 100 * v for k, v in acc[("palbench crop (112 px, margin 0.4)", loss)].items()},
                              {k: 100 * v for k, v in acc[("dlib chip (150 px, padding 0.25)", loss)].items()})
        diffs.append([loss, f"{d['diff']:+.1f}", f"[{d['diff_ci_low']:+.1f}, {d['diff_ci_high']:+.1f}]", d["n_pairs"]])
    n = len(pd.read_csv(data / "samples.csv"))
    body = (f"The photos of `photos_start.md` ({n}, same splits). dlib found a face in {found} of them; the others keep "
            f"palbench's letterboxed whole image in both datasets. Both train dlib_face_resnet from dlib's file at "
            f"{dlib_spec['size']} px input (the chips are resized from 150), {args.epochs} epochs, lr {dlib_spec['lr']:g}, "
            f"PAL at {dlib_spec['layer']}, seeds {args.seeds}; the palbench-crop rows are `photos_start.md`'s dlib runs.\n\n"
            + markdown_table(["crop", "loss", "test accuracy % (mean ± std)", "95% CI", "per seed"], rows)
            + "\n\nPaired difference, palbench crop − dlib chip (test accuracy points, same seeds):\n\n"
            + markdown_table(["loss", "difference", "95% CI", "pairs"], diffs))
    publish(args.name, "dlib's face network: dlib's face chip against palbench's aligned crop", body, HERE)


if __name__ == "__main__":
    main()
