"""The dataset commands of ``palbench``: ``synth``, ``import``, ``align``, ``landmarks``, ``priors``.

Each ``add_<command>(sub)`` creates its sub-parser (:mod:`palbench.cli` lists them) and sets ``func``: parse,
call the library, print one summary line. None imports torch.
"""

from __future__ import annotations

import argparse
import sys

from palbench.errors import ConfigError


def add_landmarks(sub: argparse._SubParsersAction) -> None:
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


def add_import(sub: argparse._SubParsersAction) -> None:
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


def add_align(sub: argparse._SubParsersAction) -> None:
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


def add_priors(sub: argparse._SubParsersAction) -> None:
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


def add_synth(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--stripes-p", type=float, help="P(background stripes) in train/val, angle = true class "
                   "(the second shortcut; default: 0)")
    p.add_argument("--stripes-p-test", type=float, help="P(stripes) in test (default: 1 with --stripes-p > 0)")
    p.add_argument("--stripes-strength", type=float, help="stripes opacity in (0, 1] (default: 0.5)")
    p.add_argument("--shortcut-test", choices=("random", "flipped"),
                   help="what a test image's decoy/stripes encode: a uniformly random class (default) or never "
                        "the label (flipped)")
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
        names = ("n_train", "n_val", "n_test", "size", "seed", "decoy_p", "decoy_strength", "decoy_p_test", "decoy_size",
                 "stripes_p", "stripes_p_test", "stripes_strength", "shortcut_test")
        meta = generate(args.out, **{k: getattr(args, k) for k in names if getattr(args, k) is not None})
        if args.align:
            meta = align_provided(args.out, args.crop_size, args.margin)
        n = {s: sum(meta["counts"][s].values()) for s in ("train", "val", "test")}
        print(f"{args.out}: {meta['n_samples']} synthetic images {meta['image_size'][0]}px "
              f"(train {n['train']}, val {n['val']}, test {n['test']}), decoy p={meta['decoy']['p_train_val']}"
              + (", face crops" if args.align else ""))
        return 0

    p.set_defaults(func=run)
