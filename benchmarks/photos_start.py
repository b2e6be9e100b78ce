"""Which start should a user's photos train from: scratch, the synthetic-faces pretraining, or dlib's face network?

    .venv/bin/python benchmarks/photos_start.py --work /tmp/photos_start --name photos_start

Makes a folder of labelled photos (:func:`palbench.data.synth.photos.make_photo_folder`: synthetic faces of
``--subjects`` people, scaled, rotated, pasted on backgrounds, several image modes), imports it the way
``palbench protocol new`` does (``--align dlib``: face crops and moved landmarks; subject-disjoint splits),
pretrains the backbone on synthetic faces of *other* people (expression labels) as the built-in benchmark
renders them and framed like the photos (the protocol's default ``synth-faces`` entry), then trains the same configuration from each starting point — the pretraining's
``weights.pt`` and random initialisation — for the protocol's seeds, baseline (CE) and PAL; and dlib's face
ResNet (``dlib_face_resnet`` with the installed ``dlib_face_recognition_resnet_model_v1.dat``, trained on ~3M real
faces) fine-tuned at its own size (``protocol new``'s settings for it). Every step is a ``palbench`` command, as in
the pipeline, on the same splits. Writes ``benchmarks/calibration/<name>.md``: test accuracy per start (mean ±
std, 95% CI over seeds), seconds per epoch, and the paired difference of each start − scratch; and
``<name>.csv``, one row per start and loss, which ``palbench.config.new``'s default start is tested against.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "speed"))
from common import markdown_table, publish  # noqa: E402

from palbench.config.new import BACKBONES, SYNTH_PRETRAINING  # noqa: E402
from palbench.io import write_text  # noqa: E402
from palbench.data.synth.photos import make_photo_folder  # noqa: E402
from palbench.results import paired_comparison, summarize  # noqa: E402

HERE = Path(__file__).resolve().parent / "calibration"
BIN = Path(sys.executable).parent


def palbench(*args: object) -> None:
    cmd = [str(BIN / "palbench"), *map(str, args)]
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)


def flags(settings: dict) -> list[str]:
    out = []
    for k, v in settings.items():
        flag = "--" + k.replace("_", "-")
        out += [flag if v else "--no-" + flag[2:]] if isinstance(v, bool) else [flag, str(v)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="scratch folder for photos, datasets and runs")
    ap.add_argument("--name", default="photos_start")
    ap.add_argument("--subjects", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--backbone", default="vgg16_bn", choices=list(BACKBONES))
    ap.add_argument("--dlib-epochs", type=int, default=None, help="epochs of the dlib start (default: --epochs)")
    ap.add_argument("--dlib-lr", type=float, default=None, help="lr of the dlib start (default: protocol new's, "
                    "BACKBONES['dlib_face_resnet']['lr'])")
    ap.add_argument("--reuse", action="store_true", help="keep what --work already holds (photos, dataset, priors, "
                    "pretrainings, runs with test metrics); delete a run's folder to retrain it")
    ap.add_argument("--no-rendered", action="store_true", help="skip the synth-faces-as-rendered start")
    args = ap.parse_args()
    args.dlib_epochs = args.dlib_epochs or args.epochs
    args.dlib_lr = args.dlib_lr or BACKBONES["dlib_face_resnet"]["lr"]
    spec = BACKBONES[args.backbone]
    work = args.work
    t0 = time.perf_counter()

    def made(path: Path) -> bool:  # --reuse: a step whose output exists is not run again
        return args.reuse and path.exists()

    labels = work / "photos" / "labels.csv"
    n_photos = (sum(1 for _ in labels.open()) - 1 if made(labels) else
                len(make_photo_folder(work / "photos", subjects=args.subjects, seed=5)))
    data = work / "data"
    if not made(data / "meta.json"):
        palbench("import", "folder", labels, data, "--align", "dlib", "--seed", 0)
    if not made(work / "priors"):
        palbench("landmarks", data, "--backend", "file", "--out", work / "landmarks")
        palbench("priors", data, work / "priors", "--landmarks", work / "landmarks" / "landmarks.npy",
                 "--landmark-noise", 0)
    pre = SYNTH_PRETRAINING
    pre_train = flags({"arch": args.backbone, "width": spec["width"], "size": spec["size"], **pre["train"]})
    # The faces as the built-in benchmark renders them (whole head, background), at the training size ...
    if not args.no_rendered and not made(work / "pretrain" / "weights.pt"):
        palbench("synth", work / "faces", *flags({**pre["args"], "size": spec["size"], "align": False}))
        palbench("pretrain", work / "pretrain", "--data", work / "faces", "--labels", pre["labels"], "--force",
                 *pre_train)
    # ... and framed as the photos are (the protocol's default): rendered at 128 px, cropped by the photos'
    # alignment from their exact landmarks (`synth --align`).
    if not made(work / "pretrain_aligned" / "weights.pt"):
        palbench("synth", work / "faces_aligned", *flags(pre["args"]))
        palbench("pretrain", work / "pretrain_aligned", "--data", work / "faces_aligned", "--labels", pre["labels"],
                 "--force", *pre_train)
    base = {"arch": args.backbone, "width": spec["width"], "size": spec["size"], "epochs": args.epochs,
            "batch_size": 32, "lr_power": 0.9, "layer": spec["layer"], "method": "grad_input", "c1": 0.5,
            "prior_sigma": 1.0}
    from palbench.models.dlib_face import default_model_path

    dlib = BACKBONES["dlib_face_resnet"]
    starts = {"synth-faces as rendered": {"weights": work / "pretrain" / "weights.pt", "lr": 0.0005},
              "synth-faces aligned (default)": {"weights": work / "pretrain_aligned" / "weights.pt", "lr": 0.0005},
              "dlib face network": {"arch": "dlib_face_resnet", "width": dlib["width"], "size": dlib["size"],
                                    "layer": dlib["layer"], "weights": default_model_path(),
                                    "epochs": args.dlib_epochs, "lr": args.dlib_lr},
              "scratch (random init)": {"lr": 0.0005}}
    if args.no_rendered:
        del starts["synth-faces as rendered"]
    acc: dict[tuple[str, float], dict[int, float]] = {}
    per_epoch: dict[tuple[str, float], list[float]] = {}
    for start, extra in starts.items():
        for pal_weight in (0.0, 1.0):
            out = work / "runs" / f"{re.sub(r'[^a-z0-9]+', '-', start.lower()).strip('-')}-{pal_weight:g}"
            if not all(made(out / f"s{s}" / "test" / "metrics.json") for s in args.seeds):
                palbench("train", out, "--force", "--seeds", *args.seeds, "--data", data, "--landmarks",
                         work / "priors", "--evaluate", "test", "--evaluate-landmarks", work / "priors",
                         *flags({**base, **extra, "pal_weight": pal_weight}))
            acc[(start, pal_weight)] = {s: json.loads((out / f"s{s}" / "test" / "metrics.json").read_text())["accuracy"]
                                        for s in args.seeds}
            runs = [json.loads((out / f"s{s}" / "metrics.json").read_text()) for s in args.seeds]
            per_epoch[(start, pal_weight)] = [r["seconds"] / r["epochs"] for r in runs]
    rows, csv = [], ["start,arch,size,epochs,loss,mean,ci_low,ci_high,n,seconds_per_epoch"]
    for (start, pal_weight), by_seed in acc.items():
        s = summarize([100 * v for v in by_seed.values()])
        cfg = {**base, **starts[start]}
        sec = sum(per_epoch[(start, pal_weight)]) / len(args.seeds)
        loss = "PAL" if pal_weight else "baseline"
        rows.append([start, f"{cfg['arch']} ×{cfg['width']:g}, {cfg['size']} px, {cfg['epochs']} ep", loss,
                     f"{s['mean']:.1f} ± {s['std']:.1f}", f"[{s['ci_low']:.1f}, {s['ci_high']:.1f}]",
                     " ".join(f"{100 * by_seed[k]:.1f}" for k in args.seeds), f"{sec:.1f}"])
        csv.append(f"{start},{cfg['arch']},{cfg['size']},{cfg['epochs']},{loss},{s['mean']:.2f},{s['ci_low']:.2f},"
                   f"{s['ci_high']:.2f},{len(args.seeds)},{sec:.2f}")
    diffs = []
    for start in list(starts)[:-1]:
        for pal_weight in (0.0, 1.0):
            d = paired_comparison({k: 100 * v for k, v in acc[(start, pal_weight)].items()},
                                  {k: 100 * v for k, v in acc[("scratch (random init)", pal_weight)].items()})
            diffs.append([start, "PAL" if pal_weight else "baseline", f"{d['diff']:+.1f}",
                          f"[{d['diff_ci_low']:+.1f}, {d['diff_ci_high']:+.1f}]", d["n_pairs"]])
    pretext = {s: json.loads((work / f / "metrics.json").read_text())["best_val_accuracy"]
               for s, f in (("as rendered", "pretrain"), ("aligned", "pretrain_aligned")) if (work / f).is_dir()}
    meta = json.loads((data / "meta.json").read_text())
    n = {s: sum(meta["counts"][s].values()) for s in ("train", "val", "test")}
    body = (
        f"{n_photos} photos of {args.subjects} people (7 classes), aligned by dlib "
        f"({meta['align']['no_face']} without a face, kept whole); splits train {n['train']}, val {n['val']}, "
        f"test {n['test']}, subject-disjoint. {args.backbone} x{spec['width']} at {spec['size']} px, {args.epochs} "
        f"epochs, lr 5e-4, seeds {args.seeds}; chance 14.3%. Pretraining: `synth-faces` of the protocol "
        f"(4,000 synthetic faces of other people, expression labels, {pre['train']['epochs']} epochs), as rendered at "
        f"{spec['size']} px, or rendered at 128 px and cropped like the photos (`synth --align`, the protocol's "
        f"default). dlib's face network: dlib_face_resnet at {dlib['size']} px (the crops' own size; its minimum is "
        f"103), PAL at {dlib['layer']}, {args.dlib_epochs} epochs at lr {args.dlib_lr:g}, a new 7-class head on "
        "its 256 pooled features.\n\n"
        + markdown_table(["start", "backbone", "loss", "test accuracy % (mean ± std)", "95% CI", "per seed",
                          "s / epoch"], rows)
        + "\n\nSeconds per epoch: training and one validation pass, one process with 2 threads, 2-core machine."
        + "\n\nPaired difference, each start − scratch (test accuracy points, same seeds):\n\n"
        + markdown_table(["start", "loss", "difference", "95% CI", "pairs"], diffs)
        + "\n\nPretext validation accuracy of the pretrainings (on their own synthetic faces): "
        + ", ".join(f"{k} {100 * v:.1f}%" for k, v in pretext.items()) + "."
        + (f"\n\nWall time of this invocation: {time.perf_counter() - t0:.0f} s"
           + (" (--reuse: the photos, dataset, pretrainings and runs already in --work were kept)." if args.reuse
              else "."))
    )
    write_text(HERE / f"{args.name}.csv", "\n".join(csv) + "\n")
    publish(args.name, "Starting point on photos: scratch, synthetic-faces pretraining, dlib's face network", body,
            HERE)


if __name__ == "__main__":
    main()
