"""``palbench <command>``: the thin command line every DVC stage calls.

Logic lives in the library; each command only parses paths and options and calls one function.
A :class:`~palbench.errors.PalbenchError` is printed as one line without a traceback, exit status 2.

Adding a command: write ``_add_<name>(sub)`` that creates the sub-parser and sets ``func``, and list it in
``_COMMANDS``. Import heavy modules inside the command function so ``palbench --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from palbench.errors import PalbenchError


def _add_layers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("layers", help="list the PAL layers of a backbone with channels and spatial size")
    p.add_argument("--arch", default="vgg16", help="vgg16 | vgg16_bn | resnet50 (default: vgg16)")
    p.add_argument("--width", type=float, default=1.0, help="channel width multiplier (default: 1.0)")
    p.add_argument("--size", type=int, default=224, help="input size in pixels (default: 224)")

    def run(args: argparse.Namespace) -> int:
        from palbench.models import build_model, describe_layers

        model = build_model(args.arch, width=args.width)
        for row in describe_layers(model, args.size):
            print(f"{row['name']:<12} channels={row['channels']:<5} size={row['height']}x{row['width']}")
        return 0

    p.set_defaults(func=run)


_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_layers]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="palbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PalbenchError as e:
        print(f"palbench: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
