"""``palbench <command>``: the thin command line every DVC stage calls.

Logic lives in the library; each command only parses paths and options and calls one function.
A :class:`~palbench.errors.PalbenchError` is printed as one line without a traceback, exit status 2.

Adding a command: write ``_add_<name>(sub)`` that creates the sub-parser and sets ``func``, and list it in
``_COMMANDS``. Import heavy modules inside the command function so ``palbench --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from palbench.config.names import ARCHS, RENAMED_FLAGS
from palbench.errors import ConfigError, PalbenchError


def _add_layers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("layers", help="list the PAL layers of a backbone with channels and spatial size")
    p.add_argument("--arch", default="vgg16", choices=ARCHS, metavar="ARCH",
                   help="any torchvision classification model by its builder name: vgg16, resnet50, resnet18, "
                        "convnext_tiny, efficientnet_b0, mobilenet_v3_large, regnet_y_800mf, vit_b_16, swin_t, ... "
                        "(default: vgg16)")
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


def _add_landmarks(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "landmarks",
        help="compute 68 facial landmarks per image; writes landmarks.npy and landmarks.json into the dataset",
    )
    p.add_argument("dataset", help="canonical dataset folder (samples.csv, images/)")
    p.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "truth", "file", "dlib", "face_alignment"],
        help="auto (default): truth for a synth dataset, file where provided landmarks exist, else dlib",
    )
    p.add_argument("--aligned", action=argparse.BooleanOptionalAction, default=False, help="images are aligned face crops: full-image box, no detector")
    p.add_argument("--source", help="file backend: .npy [N,68,2] or .csv (136 columns x0,y0,...,x67,y67)")
    p.add_argument("--device", default="cpu", help="torch device for face_alignment (default: cpu)")
    p.add_argument("--fan-weights", help="face_alignment: FAN state dict (default: torch hub cache)")
    p.add_argument("--detector-weights", help="face_alignment: S3FD state dict (default: torch hub cache)")
    p.add_argument("--detector", default="sfd", choices=["sfd", "dlib"], help="face_alignment face detector")
    p.add_argument("--allow-download", action=argparse.BooleanOptionalAction, default=False, help="face_alignment: download missing weights")
    p.add_argument("--out", help="folder for landmarks.npy/landmarks.json and the checks sheet.png, misses.csv, qa.csv "
                                 "(default: the dataset folder)")

    def run(args: argparse.Namespace) -> int:
        from palbench.landmarks import compute_landmarks

        extra = {}
        if args.backend == "face_alignment":
            extra = {"allow_download": args.allow_download, "detector": args.detector}
        weights = {k: v for k, v in (("fan", args.fan_weights), ("detector", args.detector_weights)) if v}
        info = compute_landmarks(
            args.dataset,
            args.backend,
            aligned=args.aligned,
            weights=weights or None,
            source=args.source,
            device=args.device,
            out=args.out,
            **extra,
        )
        print(
            f"landmarks ({info['backend']}): {info['n_samples'] - info['n_missed']}/{info['n_samples']} faces, "
            f"{info['n_missed']} missed -> {args.out or args.dataset}/landmarks.npy"
        )
        for w in info["warnings"]:
            print(f"palbench: warning: {w}", file=sys.stderr)
        return 0

    p.set_defaults(func=run)


def _add_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import RAF-DB, AffectNet or a folder + CSV into the canonical dataset format")
    kinds = p.add_subparsers(dest="source", required=True, metavar="<source>")
    r = kinds.add_parser("rafdb", help="RAF-DB basic: EmoLabel/list_patition_label.txt + Image/aligned/")
    r.add_argument("src", help="the RAF-DB basic folder (or its parent)")
    a = kinds.add_parser("affectnet", help="AffectNet: training.csv, validation.csv, Manually_Annotated_Images/")
    a.add_argument("src", help="the AffectNet folder")
    a.add_argument("--size", type=int, default=224, help="side of the stored face crops in pixels (default: 224)")
    f = kinds.add_parser("folder", help="images listed in a CSV (path, label[, subject][, split])")
    f.add_argument("csv", help="the CSV file, with a header row")
    f.add_argument("--images-root", help="folder relative paths start from (default: the CSV's folder)")
    f.add_argument("--path-col", default="path", help="image path column (default: path)")
    f.add_argument("--label-col", default="label", help="label column: class name/synonym or index 0-6")
    f.add_argument("--subject-col", help="subject id column, for subject-disjoint splits (default: the column "
                                         "'subject' when the CSV has one)")
    f.add_argument("--split-col", help="split column, train/val/test (default: the column 'split' when the CSV has "
                                       "one); without one, splits are drawn")
    f.add_argument("--classes", help="source labels in code order: NAME or NAME=CLASS ('-' drops)")
    f.add_argument("--fractions", default="0.8,0.1,0.1", help="train,val,test shares without a split column")
    f.add_argument("--align", default="none", choices=["none", "dlib", "face_alignment"],
                   help="crop each photo to its face with this landmark detector (eye line levelled; the moved "
                        "landmarks are kept); default none: images copied unchanged")
    _add_crop_options(f)
    for q in (r, a, f):
        q.add_argument("out", help="output dataset folder (replaced only when the import succeeds)")
        q.add_argument("--val-fraction", type=float, default=0.1, help="val share of train (test's label mix)")
        q.add_argument("--seed", type=int, default=0, help="seed of the random draws (default: 0)")
        q.add_argument("--skip-bad", action=argparse.BooleanOptionalAction, default=False, help="skip unreadable images (counted in meta.json)")
        q.add_argument("--workers", type=int, default=1, help="processes that check/crop images (default: 1)")

    def run(args: argparse.Namespace) -> int:
        from palbench.data import importers
        from palbench.data.importers.common import summary
        from palbench.errors import ConfigError

        opts = dict(val_fraction=args.val_fraction, seed=args.seed, skip_bad=args.skip_bad, workers=args.workers)
        if args.source == "rafdb":
            meta = importers.import_rafdb(args.src, args.out, **opts)
        elif args.source == "affectnet":
            meta = importers.import_affectnet(args.src, args.out, size=args.size, **opts)
        else:
            try:
                fractions = tuple(float(x) for x in args.fractions.split(","))
            except ValueError:
                raise ConfigError(f"--fractions: {args.fractions!r} must be three numbers train,val,test") from None
            from palbench.face_crops import face_detector

            meta = importers.import_folder(
                args.csv, args.out, images_root=args.images_root, path_col=args.path_col, label_col=args.label_col,
                subject_col=args.subject_col, split_col=args.split_col, classes=args.classes, fractions=fractions,
                detector=None if args.align == "none" else face_detector(args.align), crop_size=args.crop_size,
                margin=args.margin, drop_no_face=args.drop_no_face, **opts,
            )  # fmt: skip
        line, warnings = summary(args.out, meta)
        for w in warnings:
            print(f"palbench: warning: {w}", file=sys.stderr)
        print(line)
        return 0

    p.set_defaults(func=run)


def _add_crop_options(p: argparse.ArgumentParser) -> None:
    from palbench.config.names import CROP_SIZE, MARGIN

    p.add_argument("--crop-size", type=int, default=CROP_SIZE, help=f"side of the face crops, px (default: {CROP_SIZE})")
    p.add_argument("--margin", type=float, default=MARGIN,
                   help=f"room around the face, share of the face scale on each side (default: {MARGIN})")
    p.add_argument("--drop-no-face", action=argparse.BooleanOptionalAction, default=False,
                   help="drop images without a face (default: kept whole, letterboxed, counted in meta.json)")


def _add_align(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("align", help="crop every image of a dataset to its face from 68 landmarks (eye line "
                                     "levelled, fixed scale and margin), moving the landmarks with it")
    p.add_argument("dataset", help="canonical dataset folder (whole photos)")
    p.add_argument("out", help="output dataset folder (replaced only when aligning succeeds)")
    p.add_argument("--backend", default="dlib", choices=["dlib", "face_alignment", "file", "truth"],
                   help="where the landmarks come from (default: dlib's detector on the whole photos)")
    p.add_argument("--source", help="file backend: .npy [N,68,2] or .csv (136 columns) of the photos' landmarks")
    _add_crop_options(p)

    def run(args: argparse.Namespace) -> int:
        from palbench.data.importers.common import summary
        from palbench.face_crops import align_faces

        options = {"source": args.source} if args.source else {}
        meta = align_faces(args.dataset, args.out, args.backend, args.crop_size, args.margin, args.drop_no_face,
                           **options)
        line, warnings = summary(args.out, meta)
        for w in warnings:
            print(f"palbench: warning: {w}", file=sys.stderr)
        print(f"{line}, {args.crop_size}px face crops")
        return 0

    p.set_defaults(func=run)


def _add_priors(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("priors", help="landmark sets per landmark-noise σ (noise study) and a preview for the notebooks")
    p.add_argument("dataset", help="canonical dataset folder with landmarks.npy")
    p.add_argument("out", help="output folder (replaced atomically)")
    p.add_argument("--landmark-noise", type=float, nargs="+", default=[0, 1, 2, 3, 4, 5], metavar="SIGMA",
                   help="landmark-noise σ to draw a set for, pixels of a 224 crop (default: 0 1 2 3 4 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preview", type=int, default=8, help="test samples in preview.npz (default: 8)")
    p.add_argument("--landmarks", help="landmark file .npy [N,68,2] (default: the dataset's landmarks.npy)")
    p.add_argument("--preview-out", help="folder for preview.npz/preview.json (default: OUT)")

    def run(args: argparse.Namespace) -> int:
        from palbench.prior_sets import build_prior_sets

        info = build_prior_sets(args.dataset, args.out, args.landmark_noise, args.seed, args.preview,
                                landmarks=args.landmarks, preview_out=args.preview_out)
        print(f"palbench priors: {len(info['landmark_noise'])} landmark sets ({info['n_samples']} samples, "
              f"{info['n_without_face']} without face) -> {args.out}")
        return 0

    p.set_defaults(func=run)


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="render the built-in benchmark: synthetic faces, exact landmarks, a decoy")
    p.add_argument("out", help="output dataset folder (replaced only when generation succeeds)")
    p.add_argument("--n-train", type=int, help="train images (default: 1400)")
    p.add_argument("--n-val", type=int, help="val images, identities disjoint from train (default: 350)")
    p.add_argument("--n-test", type=int, help="test images, identities disjoint from train/val (default: 700)")
    p.add_argument("--size", type=int, help="image side in pixels, >= 32 (default: 64)")
    p.add_argument("--seed", type=int, help="seed of every random draw (default: 0)")
    p.add_argument("--decoy-p", type=float, help="P(decoy) in train/val, colour = true class (default: 0.9)")
    p.add_argument("--decoy-strength", type=float, help="decoy opacity in (0, 1] (default: 1.0)")
    p.add_argument("--decoy-p-test", type=float, help="P(decoy) in test, colour = random class (default: 1.0)")
    p.add_argument("--decoy-size", type=float, help="decoy side / image side, (0, 0.15] (default: 0.125)")
    p.add_argument("--align", action=argparse.BooleanOptionalAction, default=False,
                   help="crop each face from its exact landmarks as `import folder --align` crops photos (the "
                        "framing of aligned photos; needs --decoy-p 0 --decoy-p-test 0)")
    _add_crop_options(p)

    def run(args: argparse.Namespace) -> int:
        from palbench.data.align import align_provided, check_crop
        from palbench.data.synth import generate

        if args.align and (args.decoy_p != 0 or args.decoy_p_test != 0):
            raise ConfigError("synth --align: the crop leaves out the decoy square beside the face; pass "
                              "--decoy-p 0 --decoy-p-test 0")
        if args.align:
            check_crop(args.crop_size, args.margin)  # before anything is written
        names = ("n_train", "n_val", "n_test", "size", "seed", "decoy_p", "decoy_strength", "decoy_p_test", "decoy_size")
        meta = generate(args.out, **{k: getattr(args, k) for k in names if getattr(args, k) is not None})
        if args.align:
            meta = align_provided(args.out, args.crop_size, args.margin)
        n = {s: sum(meta["counts"][s].values()) for s in ("train", "val", "test")}
        print(f"{args.out}: {meta['n_samples']} synthetic images {meta['image_size'][0]}px "
              f"(train {n['train']}, val {n['val']}, test {n['test']}), decoy p={meta['decoy']['p_train_val']}"
              + (", face crops" if args.align else ""))
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


def _add_pretrain(sub: argparse._SubParsersAction) -> None:
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


def _add_train(sub: argparse._SubParsersAction) -> None:
    from palbench.config import TrainConfig

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
    hints = _train_flags(p)

    def run(args: argparse.Namespace) -> int:
        from palbench.config import seed_folder
        from palbench.data.canonical import read_dataset

        if args.group is not None:
            runs = _group_runs(args, hints)
        else:
            values = _train_values(args, hints, "train")
            if args.seeds is not None and args.seed is not None:
                raise ConfigError("train: pass --seed (one run in OUT) or --seeds (one run per seed in OUT/s<seed>), "
                                  "not both")
            if args.seeds is None:
                _train_one(args, TrainConfig.from_dict(values, where=args.config or "command line"), Path(args.out))
                return 0
            if len(set(args.seeds)) != len(args.seeds):
                raise ConfigError(f"train: --seeds {args.seeds} repeats a seed")
            runs = [(TrainConfig.from_dict({**values, "seed": s}, where=args.config or "command line"),
                     Path(args.out) / seed_folder(s)) for s in args.seeds]
        data = read_dataset(runs[0][0].data)  # read (and its images decoded) once for all the runs
        for cfg, out in runs:
            _train_one(args, cfg, out, data)
        return 0

    p.set_defaults(func=run)


def _group_runs(args: argparse.Namespace, hints: dict) -> list:
    """``[(TrainConfig, run folder)]`` of ``train --group``: each configuration of the group × each seed."""
    from palbench.config import TrainConfig, read_params, run_name

    if args.seed is not None or args.seeds is not None:
        raise ConfigError("train: --group trains the params file's seeds; drop --seed/--seeds")
    params = read_params(args.params)
    if args.group not in params["runs"]:
        raise ConfigError(f"{args.params}: runs has no group {args.group!r}; expected one of "
                          f"{', '.join(params['runs'])}")
    values = {**params["train"], **_train_values(args, hints, "train")}
    where = f"{args.params}: runs.{args.group}"
    return [(TrainConfig.from_dict({**values, **overrides, "seed": seed}, where=f"{where}.{config}"),
             Path(args.out) / Path(run_name(config, seed)))
            for config, overrides in params["runs"][args.group].items() for seed in params["seeds"]]


def _train_one(args: argparse.Namespace, cfg, out: Path, data=None) -> None:
    """One run into ``out`` (``palbench train``), then its evaluation in the same process."""
    from palbench.train import train

    m = train(cfg, out, resume=args.resume, force=args.force, dataset=data)
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 writes and evaluates
        return
    print(f"palbench train: best val accuracy {m['best_val_accuracy']:.4f} at epoch {m['best_epoch']} "
          f"({m['steps']} steps, {m['seconds']:.1f} s) -> {out}")
    if args.discard_state:
        (out / "state.pt").unlink(missing_ok=True)
    if args.evaluate:
        # In the same process: the DVC grid runs dozens of runs, and a second interpreter start (importing
        # torch and torchvision) would cost ~5 s per run on 2 cores. With --seeds or --group, the dataset read
        # for training (its images already decoded) is the one evaluated.
        _evaluate(str(out), str(out / args.evaluate), args.evaluate, data, args.evaluate_landmarks)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
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

    m = evaluate_run(run, out, split, data, landmarks, batch_size, workers, device)

    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    if m.get("dropped_untrained"):
        print(f"palbench evaluate: dropped {sum(m['dropped_untrained'].values())} image(s) of classes the run never "
              f"trained on ({', '.join(f'{c}: {n}' for c, n in m['dropped_untrained'].items())})")
    print(f"palbench evaluate: {split} n={m['n']} accuracy {m['accuracy']:.4f} "
          f"balanced {m['balanced_accuracy']:.4f} alignment {fmt(m['alignment_constrained'])} "
          f"(free {fmt(m['alignment_free'])}) decoy share {fmt(m['decoy_share'])} (area {fmt(m['decoy_area_share'])}) -> {out}")


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="expression of image files with a trained run (no landmarks needed)")
    p.add_argument("run", help="run folder (best.pt inside)")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of one line per image")
    p.add_argument("--batch-size", type=int, default=32, help="images per batch (default: 32)")

    def run(args: argparse.Namespace) -> int:
        import json

        from palbench.evaluate import load_run
        from palbench.inference import predict_images

        model, cfg = load_run(args.run)
        rows = predict_images(model, cfg, args.images, args.batch_size)
        if args.json:
            print(json.dumps(rows, indent=2))
        for r in rows if not args.json else []:
            probs = " ".join(f"{c}={v:.4f}" for c, v in r["probabilities"].items())
            print(f"{r['path']}\t{r['class']}\t{probs}")
        return 0

    p.set_defaults(func=run)


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a run's best model: TorchScript model.pt, ONNX model.onnx, model.json")
    p.add_argument("run", help="run folder (best.pt inside)")
    p.add_argument("out_dir", help="output folder")
    p.add_argument("--format", nargs="+", default=["torchscript", "onnx"], choices=["torchscript", "onnx"],
                   help="formats to write (default: torchscript onnx)")

    def run(args: argparse.Namespace) -> int:
        from palbench.inference import export_model

        info = export_model(args.run, args.out_dir, args.format)
        print(f"palbench export: {', '.join(info['files'].values())} + model.json -> {args.out_dir}")
        return 0

    p.set_defaults(func=run)




def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="palbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for add in _COMMANDS:
        add(sub)
    return parser


def _add_protocol(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("protocol", help="write params.yaml from a protocol (benchmarks/protocols/NAME.yaml), runs "
                                        "expanded; `protocol new NAME --folder LABELS.csv` writes a protocol")
    p.add_argument("name", nargs="?", help="protocol name or .yaml path (see --list), or `new`")
    p.add_argument("new_name", nargs="?", metavar="NEW", help="with `new`: the new protocol's name")
    p.add_argument("--params", default="params.yaml", help="file to write (default: params.yaml)")
    p.add_argument("--refresh", action="store_true", help="re-expand the runs of the existing params file")
    p.add_argument("--list", action="store_true", help="list the protocols")
    n = p.add_argument_group("protocol new NAME (a folder of labelled photos)")
    n.add_argument("--folder", metavar="LABELS.csv", help="the CSV listing the photos: path,label[,subject][,split]")
    n.add_argument("--images-root", help="where the CSV's paths start (default: the CSV's folder)")
    n.add_argument("--backbone", default="vgg16_bn", help="vgg16_bn (default), vgg16 or resnet50")
    n.add_argument("--weights", help="state dict to start from (default: pretraining on synthetic faces)")
    n.add_argument("--studies", default="comparison",
                   help="comma-separated: comparison (default), ablation, channels, noise, layers")
    n.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: 0,1,2)")
    n.add_argument("--budget-minutes", type=float, default=15.0,
                   help="CPU minutes for the training stages; sets the epochs (default: 15)")
    n.add_argument("--epochs", type=int, help="fixed epochs instead of the budget's")
    n.add_argument("--align", action=argparse.BooleanOptionalAction, default=True,
                   help="crop the photos to their faces (default) or train them whole")
    n.add_argument("--transfer", action="append", default=[], metavar="OTHER.csv",
                   help="labels CSV of another photo folder to test the runs on (cross-dataset; repeatable)")
    n.add_argument("--force", action="store_true", help="replace an existing protocol file")

    def run(args: argparse.Namespace) -> int:
        from palbench import config as pr

        if args.list:
            for name in pr.available_protocols():
                print(name)
            return 0
        if args.name == "new":
            return _new_protocol(args)
        if args.new_name or args.folder:
            raise ConfigError("protocol: to write a protocol for your photos: palbench protocol new NAME --folder "
                              "LABELS.csv")
        if args.refresh == bool(args.name):
            raise ConfigError("protocol: give a protocol NAME, or --refresh to re-expand the current params file")
        if args.refresh:
            proto = pr.read_params(args.params, check=False)
            if isinstance(proto, dict):
                proto.pop("runs", None)
            pr.validate_protocol(proto, args.params)
        else:
            proto = pr.load_protocol(args.name)
        path = pr.write_params(proto, args.params, source=args.name or "--refresh")
        configs = sum(len(group) for group in pr.expand_runs(proto).values())
        print(f"palbench protocol {proto['protocol']}: {len(proto['studies'])} studies, {configs} configurations x "
              f"{len(proto['seeds'])} seeds = {configs * len(proto['seeds'])} runs -> {path}")
        return 0

    p.set_defaults(func=run)


def _new_protocol(args: argparse.Namespace) -> int:
    from palbench.config.new import new_protocol, write_new_protocol

    if not args.new_name or not args.folder:
        raise ConfigError("protocol new: expected `palbench protocol new NAME --folder LABELS.csv`")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        raise ConfigError(f"--seeds: {args.seeds!r}; expected comma-separated integers") from None
    proto, header = new_protocol(
        args.new_name, args.folder, images_root=args.images_root, backbone=args.backbone, weights=args.weights,
        studies=[s.strip() for s in args.studies.split(",") if s.strip()], seeds=seeds,
        budget_minutes=args.budget_minutes, epochs=args.epochs, align=args.align, transfer=args.transfer,
    )  # fmt: skip
    path = write_new_protocol(proto, header, force=args.force)
    print(header.rstrip().replace("# ", "  "))
    print(f"palbench protocol new: -> {path}; next: palbench protocol {args.new_name} && dvc repro")
    return 0


def _add_transfer(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("transfer", help="test the runs of a study on another dataset (the protocol's transfer "
                                        "entry NAME): transfer/NAME/runs.csv, summary.csv")
    p.add_argument("name", help="an entry of the params file's `transfer` section")
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    p.add_argument("--runs", default="runs", help="folder of the run folders (default: runs)")
    p.add_argument("--data", help="dataset B (default: data/NAME)")
    p.add_argument("--out", help="output folder (default: transfer/NAME)")

    def run(args: argparse.Namespace) -> int:
        from palbench.config import read_params
        from palbench.transfer import transfer_study

        summary = transfer_study(read_params(args.params), args.name, args.runs, args.data, args.out)
        out = args.out or f"transfer/{args.name}"
        for _, row in summary.iterrows():
            diff = "" if row["config"] == "baseline" else f", {row['diff'] * 100:+.1f} points vs baseline"
            print(f"palbench transfer {args.name}: {row['config']}: accuracy {row['mean'] * 100:.1f}% "
                  f"(n={int(row['n'])} seeds{diff}); on the training dataset {row['test_accuracy_mean'] * 100:.1f}%")
        print(f"palbench transfer: -> {out}/runs.csv, {out}/summary.csv")
        return 0

    p.set_defaults(func=run)


def _add_aggregate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("aggregate", help="results/<study>.csv (mean, std, 95%% CI, paired t-test) and metrics.json")
    p.add_argument("--params", default="params.yaml", help="params file with studies and runs (default: params.yaml)")
    p.add_argument("--runs", default="runs", help="folder of the run folders (default: runs)")
    p.add_argument("--out", default="results", help="folder for runs.csv and the study tables (default: results)")
    p.add_argument("--metrics", default="metrics.json", help="aggregated metrics file (default: metrics.json)")

    def run(args: argparse.Namespace) -> int:
        from palbench.results import aggregate

        m = aggregate(args.params, args.runs, args.out, args.metrics)
        studies = [k for k in m if isinstance(m[k], dict)]
        print(f"palbench aggregate: {m['n_runs']} runs, {len(studies)} study tables ({', '.join(studies)}) -> "
              f"{args.out}/, {args.metrics}")
        return 0

    p.set_defaults(func=run)


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="run the report notebooks (papermill): reports/<name>.ipynb, .html, index.html")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="claims, layers, ablation, channels, sensitivity, confusion, attributions, comparison "
                        "(default: every one whose study the protocol has)")
    p.add_argument("--params", default="params.yaml", help="params file; its folder is the project root")
    p.add_argument("--out", default="reports", help="output folder (default: reports)")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                   help="notebook parameter, value read as YAML (e.g. -p sigma 4 with NAME sensitivity: the landmark noise σ it highlights)")
    p.add_argument("--workers", type=int, help="notebooks run at the same time (default: CPU count, at most 4)")

    def run(args: argparse.Namespace) -> int:
        import yaml

        from palbench.reports.render import build_reports

        parameters = {k: yaml.safe_load(v) for k, v in args.parameter}
        entries = build_reports(args.params, args.out, args.names or None, parameters, args.workers)
        for name, (_, reason) in entries.items():
            print(f"palbench report: {name}: " + (reason or f"{args.out}/{name}.ipynb, {args.out}/{name}.html"))
        done = sum(r is None for _, r in entries.values())
        print(f"palbench report: {done} reports" + ("" if args.names else f" -> {args.out}/index.html"))
        return 0

    p.set_defaults(func=run)


_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_layers, _add_landmarks, _add_import, _add_align, _add_priors, _add_synth, _add_pretrain, _add_train,
    _add_evaluate, _add_predict, _add_export, _add_protocol, _add_transfer, _add_aggregate, _add_report,
]  # fmt: skip


def _dashed(argv: Sequence[str]) -> list[str]:
    """``--landmark_noise`` → ``--landmark-noise``: DVC's ``${group}`` interpolation writes params keys with
    underscores; every option is spelt with dashes. A flag palbench renamed is refused, naming the new one."""
    out = []
    for a in argv:
        if a.startswith("--") and len(a) > 2:
            name, eq, value = a.partition("=")
            flag = name.replace("_", "-")
            if flag in RENAMED_FLAGS:
                raise ConfigError(f"option {name} is now {RENAMED_FLAGS[flag]} (one name per parameter)")
            a = flag + eq + value
        out.append(a)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(_dashed(sys.argv[1:] if argv is None else argv))
    except ConfigError as e:
        print(f"palbench: error: {e}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except PalbenchError as e:
        print(f"palbench: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `palbench layers | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
