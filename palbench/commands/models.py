"""The model commands of ``palbench``: ``layers``, ``pretrain``, ``train``, ``evaluate``, ``predict``, ``export``.

Each ``add_<command>(sub)`` creates its sub-parser (:mod:`palbench.cli` lists them) and sets ``func``: parse,
call the library, print its summary. ``train`` and ``pretrain`` take one flag per
:class:`~palbench.config.TrainConfig` field. Heavy modules (torch) are imported inside ``func``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from palbench.config.names import ARCHS
from palbench.errors import ConfigError


def add_layers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("layers", help="list the PAL layers of a backbone with channels and spatial size")
    p.add_argument("--arch", default="vgg16", choices=ARCHS, metavar="ARCH",
                   help="any torchvision classification model by its builder name: vgg16, resnet50, resnet18, "
                        "convnext_tiny, efficientnet_b0, mobilenet_v3_large, regnet_y_800mf, vit_b_16, swin_t, ..., "
                        "or dlib's face ResNet, dlib_face_resnet (default: vgg16)")
    p.add_argument("--width", type=float, default=1.0, help="channel width multiplier (default: 1.0)")
    p.add_argument("--size", type=int, default=224, help="input size in pixels (default: 224)")
    p.add_argument("--paths", action="store_true",
                   help="list every module path with a spatial output (each is a valid --layer) instead of the names")

    def run(args: argparse.Namespace) -> int:
        from palbench.models import build_model, describe_layers

        model = build_model(args.arch, width=args.width, size=args.size)
        rows = describe_layers(model, args.size, paths=args.paths)
        wide = max(16, *(len(r["name"]) for r in rows))
        for row in rows:
            note = ("  (before a max-pool)" if row["before_pool"] else
                    "  (before downsampling)" if row["before_downsampling"] else "")
            print(f"{row['name']:<{wide}} channels={row['channels']:<5} size={row['height']}x{row['width']}{note}")
        return 0

    p.set_defaults(func=run)


def _train_flags(p: argparse.ArgumentParser) -> dict:
    """One flag per :class:`~palbench.config.TrainConfig` field (``--pal-weight``, ``--augment/--no-augment``);
    returns the fields by name."""
    import dataclasses

    from palbench.config import TrainConfig

    p.add_argument("--config", help="YAML/JSON file of TrainConfig keys (flags below override it)")
    hints = {f.name: f for f in dataclasses.fields(TrainConfig) if f.name != "extra"}
    for name, f in hints.items():
        flag = "--" + name.replace("_", "-")
        kind = str(f.type)
        if kind == "bool":
            p.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None)
        else:
            conv = int if kind.startswith("int") else float if kind.startswith("float") else str
            p.add_argument(flag, dest=name, type=conv, default=None, metavar=name.split("_")[-1].upper())
    return hints


def _train_values(args: argparse.Namespace, hints: dict, command: str) -> dict:
    """The TrainConfig values of ``--config`` overridden by the flags given; a dataset is required."""
    from palbench.config import load_config_file

    values = load_config_file(args.config) if args.config else {}
    values.update({k: getattr(args, k) for k in hints if getattr(args, k) is not None})
    if "data" not in values:
        raise ConfigError(f"{command}: no dataset given; pass --data DIR or a --config file with a 'data' key")
    return values


def add_pretrain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="pretrain the backbone on a face dataset disjoint from the expression set "
                                        "(the paper's VGG-Face start); the grid fine-tunes from OUT/weights.pt")
    p.add_argument("out", help="output folder (a run folder plus weights.pt and pretrain.json)")
    from palbench.config import PRETEXTS

    p.add_argument("--labels", default=PRETEXTS[0], choices=PRETEXTS,
                   help="pretext: the dataset's expression labels, or identities from its subject column")
    p.add_argument("--force", action="store_true", help="replace a pretraining run already in OUT")
    hints = _train_flags(p)

    def run(args: argparse.Namespace) -> int:
        from palbench.config import TrainConfig
        from palbench.pretrain import pretrain

        values = {"pal_weight": 0.0, **_train_values(args, hints, "pretrain")}
        info = pretrain(TrainConfig.from_dict(values, where=args.config or "command line"), args.out,
                        labels=args.labels, force=args.force)
        m = info["metrics"]
        print(f"palbench pretrain: {info['pretext']} pretext, {info['classes']} classes, {info['images']['train']} "
              f"train images; best val accuracy {m['best_val_accuracy']:.4f} at epoch {m['best_epoch']} "
              f"({m['seconds']:.1f} s) -> {Path(args.out) / 'weights.pt'}")
        return 0

    p.set_defaults(func=run)


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="one training run (config + seed) into a run folder; torchrun-ready")
    p.add_argument("out", help="run folder (with --seeds: the configuration's folder, one OUT/s<seed> per seed)")
    p.add_argument("--resume", action="store_true", help="continue the run in OUT from its last checkpoint")
    p.add_argument("--force", action="store_true", help="start over in a folder that already holds a run")
    p.add_argument("--evaluate", metavar="SPLIT",
                   help="then evaluate the best model on SPLIT into OUT/SPLIT (as `palbench evaluate`), same process")
    p.add_argument("--evaluate-landmarks", metavar="PATH",
                   help="landmark set for that evaluation's alignment: a .npy, or a priors folder (its "
                        "landmark_noise 0 set); default: the dataset's landmarks.npy")
    p.add_argument("--discard-state", action="store_true",
                   help="delete the resume checkpoint state.pt once the run has finished (keeps best.pt)")
    p.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                   help="train these seeds one after the other in this process, into OUT/s<seed>; instead of --seed")
    p.add_argument("--group", metavar="NAME",
                   help="train every configuration of group NAME of the params file's `runs` with each of its "
                        "`seeds`, one after the other in this process, into OUT/<config>/s<seed> (the DVC grid: "
                        "one stage per group); the params file's `train` settings, then the flags, then each "
                        "configuration's overrides")
    p.add_argument("--params", default="params.yaml", help="with --group: the params file (default: params.yaml)")
    p.add_argument("--jobs", type=int, default=1,
                   help="train that many runs side by side, each in a single-threaded worker process (default: 1, "
                        "one run at a time in this process); results do not depend on it")
    hints = _train_flags(p)

    def run(args: argparse.Namespace) -> int:
        from palbench.config import planned_runs, read_params
        from palbench.workers import train_runs

        if args.group is not None and (args.seed is not None or args.seeds is not None):
            raise ConfigError("train: --group trains the params file's seeds; drop --seed/--seeds")
        params = read_params(args.params) if args.group is not None else None
        values = _train_values(args, hints, "train")
        if args.seeds is not None and args.seed is not None:
            raise ConfigError("train: pass --seed (one run in OUT) or --seeds (one run per seed in OUT/s<seed>), "
                              "not both")
        where = args.params if args.group is not None else args.config or "command line"
        runs = planned_runs(values, args.out, args.seeds, args.group, params, where)
        # Evaluation in the process that trained the run, on the dataset read for training (its images already
        # decoded): the DVC grid runs dozens of runs, and a second interpreter start would cost seconds per run.
        for _, out, m, ev in train_runs(runs, args.jobs, args.evaluate, args.evaluate_landmarks, args.resume,
                                        args.force, args.discard_state):
            print(f"palbench train: best val accuracy {m['best_val_accuracy']:.4f} at epoch {m['best_epoch']} "
                  f"({m['steps']} steps, {m['seconds']:.1f} s) -> {out}")
            if ev is not None:
                _print_evaluation(ev, args.evaluate, str(out / args.evaluate))
        return 0

    p.set_defaults(func=run)


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="metrics, predictions and attention (alignment, decoy share) on a split")
    p.add_argument("run", help="run folder (best.pt inside)")
    p.add_argument("out", help="output folder: metrics.json, predictions.csv")
    p.add_argument("--split", default="test", help="train | val | test (default: test)")
    p.add_argument("--data", help="dataset folder (default: the run's)")
    p.add_argument("--landmarks", help="landmark set for the alignment: a .npy [N,68,2], or a priors folder (its "
                                        "landmark_noise 0 set); default: the dataset's landmarks.npy")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (default: 64)")
    p.add_argument("--workers", type=int, default=0, help="data-loader processes (default: 0)")
    p.add_argument("--device", help="torch device (default: cuda when available, else cpu)")

    def run(args: argparse.Namespace) -> int:
        _evaluate(args.run, args.out, args.split, args.data, args.landmarks, args.batch_size, args.workers, args.device)
        return 0

    p.set_defaults(func=run)


def _evaluate(run: str, out: str, split: str, data, landmarks: str | None, batch_size: int = 64,
              workers: int = 0, device: str | None = None) -> None:
    from palbench.evaluate import evaluate_run

    _print_evaluation(evaluate_run(run, out, split, data, landmarks, batch_size, workers, device), split, out)


def _print_evaluation(m: dict, split: str, out: str) -> None:
    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    if m.get("dropped_untrained"):
        print(f"palbench evaluate: dropped {sum(m['dropped_untrained'].values())} image(s) of classes the run never "
              f"trained on ({', '.join(f'{c}: {n}' for c, n in m['dropped_untrained'].items())})")
    print(f"palbench evaluate: {split} n={m['n']} accuracy {m['accuracy']:.4f} "
          f"balanced {m['balanced_accuracy']:.4f} alignment {fmt(m['alignment_constrained'])} "
          f"(free {fmt(m['alignment_free'])}) decoy share {fmt(m['decoy_share'])} (area {fmt(m['decoy_area_share'])}) -> {out}")


def add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="expression of image files with a trained run (no landmarks needed); a run "
                                       "trained on aligned photos predicts on each photo's face, cropped the same way")
    p.add_argument("run", help="run folder (best.pt inside)")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list instead of one line per image: path, prediction, class, probabilities, "
                        "crop (what the model saw: aligned false and box [0, 0, W, H], the whole image; or aligned "
                        "true, backend, crop_size, margin, corners (the crop square's 4 corners, top-left first, "
                        "clockwise), box (their bounds [x0, y0, x1, y1]) in the photo's pixel-edge coordinates "
                        "((0, 0) its top-left corner, as a PIL crop box), angle (the eye line's, degrees, "
                        "clockwise) and matrix (2x3, photo pixel (x, y, 1) to crop pixel, pixel centres at "
                        "integers))")
    p.add_argument("--batch-size", type=int, default=32, help="images per batch (default: 32)")
    p.add_argument("--no-align", dest="align", action="store_false",
                   help="predict on the images as given (default: crop each photo to its face as the run's dataset "
                        "was, when it was aligned: its meta.json's align record)")
    p.add_argument("--data", help="the run's dataset folder, whose meta.json says how its images were cropped "
                                  "(default: the run's config.json data, from the working folder)")

    def run(args: argparse.Namespace) -> int:
        import json

        from palbench.evaluate import load_run
        from palbench.inference import predict_images, run_face_crop

        model, cfg = load_run(args.run)
        crop = run_face_crop(cfg, args.data) if args.align else None
        rows = predict_images(model, cfg, args.images, args.batch_size, crop=crop)
        found = [{k: v for k, v in r.items() if k != "error"} for r in rows if r["error"] is None]
        if args.json:
            print(json.dumps(found, indent=2))
        for r in found if not args.json else []:
            probs = " ".join(f"{c}={v:.4f}" for c, v in r["probabilities"].items())
            print(f"{r['path']}\t{r['class']}\t{probs}\t{_crop_text(r['crop'])}")
        for r in rows:
            if r["error"] is not None:
                print(f"palbench: error: {r['path']}: {r['error']}", file=sys.stderr)
        return 0 if len(found) == len(rows) else 2

    p.set_defaults(func=run)


def _crop_text(crop: dict) -> str:
    """``crop=whole``, or ``crop=BACKEND box=x0,y0,x1,y1 angle=A`` (the face crop's bounds in the photo's pixel-edge
    coordinates, the eye line's angle in degrees)."""
    if not crop["aligned"]:
        return "crop=whole"
    return f"crop={crop['backend']} box={','.join(f'{v:.1f}' for v in crop['box'])} angle={crop['angle']:.1f}"


def add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a run's best model: TorchScript model.pt, ONNX model.onnx, model.json")
    p.add_argument("run", help="run folder (best.pt inside)")
    p.add_argument("out_dir", help="output folder")
    p.add_argument("--format", nargs="+", default=["torchscript", "onnx"], choices=["torchscript", "onnx"],
                   help="formats to write (default: torchscript onnx)")
    p.add_argument("--data", help="the run's dataset folder, whose meta.json says how its images were cropped "
                                  "(model.json's input.crop; default: the run's config.json data, from the "
                                  "working folder)")

    def run(args: argparse.Namespace) -> int:
        from palbench.inference import export_model

        info = export_model(args.run, args.out_dir, args.format, args.data)
        print(f"palbench export: {', '.join(info['files'].values())} + model.json -> {args.out_dir}")
        return 0

    p.set_defaults(func=run)
