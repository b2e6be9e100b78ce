"""``palbench <command>``: the thin command line every DVC stage calls.

Logic lives in the library; each command only parses paths and options and calls one function.
A :class:`~palbench.errors.PalbenchError` is printed as one line without a traceback, exit status 2.

This module holds the entry point (:func:`main`, :func:`build_parser`) and the project's commands
(``protocol``, ``transfer``, ``aggregate``, ``report``); :mod:`palbench.commands.data` the dataset commands and
:mod:`palbench.commands.models` the model commands. Adding a command: write ``add_<name>(sub)`` (``_add_<name>``
here) that creates the sub-parser and sets ``func``, and list it in ``_COMMANDS``. Import heavy modules inside
the command function so ``palbench --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from palbench.commands import data, models
from palbench.config.names import RENAMED_FLAGS
from palbench.errors import ConfigError, PalbenchError


def _add_protocol(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("protocol", help="write params.yaml from a protocol (benchmarks/protocols/NAME.yaml), runs "
                                        "expanded, and runs/dvc.yaml (their plots); `protocol new NAME --folder "
                                        "LABELS.csv` writes a protocol")
    p.add_argument("name", nargs="?", help="protocol name or .yaml path (see --list), or `new`")
    p.add_argument("new_name", nargs="?", metavar="NEW", help="with `new`: the new protocol's name")
    p.add_argument("--params", default="params.yaml", help="file to write (default: params.yaml)")
    p.add_argument("--refresh", action="store_true", help="re-expand the runs of the existing params file")
    p.add_argument("--list", action="store_true", help="list the protocols")
    n = p.add_argument_group("protocol new NAME (a folder of labelled photos)")
    n.add_argument("--folder", metavar="LABELS.csv", help="the CSV listing the photos: path,label[,subject][,split]")
    n.add_argument("--images-root", help="where the CSV's paths start (default: the CSV's folder)")
    n.add_argument("--backbone", default=None, metavar="ARCH",
                   help="any --arch of `palbench train`: dlib_face_resnet (default: dlib's face network, the best start "
                        "in benchmarks/calibration/photos_start.md), vgg16_bn, vgg16 and resnet50 come sized (width, "
                        "size, layer); others train at --width 0.25 (1 without a width knob), 48 px, and need --layer")
    n.add_argument("--width", type=float, help="the backbone's channel width multiplier in (0, 1] (default: 0.125 "
                                              "VGG16, 0.25 others with a width knob, else 1)")
    n.add_argument("--size", type=int, help="input size in pixels (default: 48)")
    n.add_argument("--layer", help="the PAL layer (`palbench layers --arch ARCH --width W --size S` lists them)")
    n.add_argument("--weights", help="state dict to start from (default: dlib's installed file for dlib_face_resnet, "
                                     "else pretraining on synthetic faces)")
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
        from palbench.config.plots import write_run_plots
        from palbench.config.protocol import params_from_protocol

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
        plots = write_run_plots(params_from_protocol(proto), path.parent / "runs" / "dvc.yaml")
        params = params_from_protocol(proto)
        configs = sum(len(group) for group in params["runs"].values())
        print(f"palbench protocol {proto['protocol']}: {len(proto['studies'])} studies, {configs} configurations, "
              f"{len(pr.run_names(params))} runs (seeds {proto['seeds']} unless a study sets its own) -> {path} "
              f"(plots: {plots})")
        return 0

    p.set_defaults(func=run)


def _new_protocol(args: argparse.Namespace) -> int:
    from palbench.config.new import DEFAULT_BACKBONE, new_protocol, write_new_protocol

    if not args.new_name or not args.folder:
        raise ConfigError("protocol new: expected `palbench protocol new NAME --folder LABELS.csv`")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        raise ConfigError(f"--seeds: {args.seeds!r}; expected comma-separated integers") from None
    proto, header = new_protocol(
        args.new_name, args.folder, images_root=args.images_root, backbone=args.backbone or DEFAULT_BACKBONE,
        width=args.width,
        size=args.size, layer=args.layer, weights=args.weights,
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
    models.add_layers, data.add_landmarks, data.add_import, data.add_align, data.add_priors, data.add_synth,
    models.add_pretrain, models.add_train, models.add_evaluate, models.add_predict, models.add_export,
    _add_protocol, _add_transfer, _add_aggregate, _add_report,
]  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="palbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for add in _COMMANDS:
        add(sub)
    return parser


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
