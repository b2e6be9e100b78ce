"""Speed (start-up): wall time of commands that touch no model, each a fresh subprocess, against `python -c pass`.

    .venv/bin/python benchmarks/speed/startup.py [--rev REV] [--rounds 7]

Median of interleaved rounds per command, in seconds and as a ratio to the interpreter's own start, and whether
the command imports torch (one extra run under ``PYTHONPROFILEIMPORTTIME``, i.e. ``-X importtime``).
``import torch, torchvision`` is the contrast: what a command that builds a model pays before it starts.
Goal (issue 10): at most 0.5 s for a command that touches no model.

With ``--rev REV`` the same commands run for REV too, side by side in this process: REV is checked out in a
temporary ``git worktree`` and both trees run as ``PYTHONPATH=<tree> python -m palbench.cli`` (the same
launcher for both; without ``--rev`` the working tree runs through the ``palbench`` entry point). A command that
fails at a revision is reported as failed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_medians, markdown_table, publish  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
GOAL = 0.5
MODEL = "python -c 'import torch, torchvision'"


def commands(params: Path, module: bool) -> dict[str, list[str]]:
    """Label → argv; ``palbench`` is ``python -m palbench.cli`` when ``module``, else the entry point."""
    py = sys.executable
    palbench = [py, "-m", "palbench.cli"] if module else [str(Path(py).with_name("palbench"))]
    return {
        "python -c pass": [py, "-c", "pass"],
        "python -c 'import palbench.config'": [py, "-c", "import palbench.config"],
        "palbench --help": [*palbench, "--help"],
        "palbench protocol smoke --params <tmp>": [*palbench, "protocol", "smoke", "--params", str(params)],
        "palbench aggregate --help": [*palbench, "aggregate", "--help"],
        "palbench report --help": [*palbench, "report", "--help"],
        # what `palbench aggregate` and `palbench report` load before they read any file (pandas, scipy, papermill)
        "python -c 'import palbench.results'": [py, "-c", "import palbench.results"],
        "python -c 'import palbench.reports.render'": [py, "-c", "import palbench.reports.render"],
        MODEL: [py, "-c", "import torch, torchvision"],
    }


def runner(argv: list[str], tree: Path, profile: bool = False) -> Callable[[], subprocess.CompletedProcess]:
    """A call running ``argv`` in ``tree`` with ``PYTHONPATH=tree`` (output captured only when profiling)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    if profile:
        env["PYTHONPROFILEIMPORTTIME"] = "1"
    out = subprocess.PIPE if profile else subprocess.DEVNULL
    return lambda: subprocess.run(argv, cwd=tree, env=env, stdout=out, stderr=out, text=True, check=False)


def probe(argv: list[str], tree: Path) -> tuple[bool, str]:
    """(torch imported, '' or why the command failed), from one run under -X importtime."""
    r = runner(argv, tree, profile=True)()
    lines = r.stderr.splitlines()
    torch = any(re.search(r"\|\s*torch$", line) for line in lines if line.startswith("import time:"))
    other = [line for line in lines if not line.startswith("import time:")]
    return torch, "" if r.returncode == 0 else f"failed (exit {r.returncode}: {other[-1] if other else '-'})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", help="also measure this git revision (temporary worktree), side by side")
    ap.add_argument("--rounds", type=int, default=7, help="timed runs per command (default 7)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="palbench-startup-") as tmp:
        trees = {"working tree": ROOT}
        if args.rev:
            worktree = Path(tmp) / "rev"
            subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.rev], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
            trees = {args.rev: worktree, **trees}
        try:
            cmds = {name: commands(Path(tmp) / f"params-{i}.yaml", bool(args.rev)) for i, name in enumerate(trees)}
            probes = {(t, c): probe(argv, trees[t]) for t in trees for c, argv in cmds[t].items()}
            fns = {(t, c): runner(argv, trees[t]) for t in trees for c, argv in cmds[t].items() if not probes[t, c][1]}
            times = interleaved_medians(fns, args.rounds)
        finally:
            if args.rev:
                subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False)
    rows = []
    for c in cmds["working tree"]:
        row: list[object] = [c]
        for t in trees:
            torch, failed = probes[t, c]
            ref = times[t, "python -c pass"]
            row += [failed, "", ""] if failed else [f"{times[t, c]:.3f}", f"{times[t, c] / ref:.1f}×",
                                                    "yes" if torch else "no"]  # fmt: skip
        rows.append(row)
    header = ["command"] + [f"{h} ({t})" for t in trees for h in ("s", "× pass", "torch")]
    slow = [c for c in cmds["working tree"] if c != MODEL and times.get(("working tree", c), 0) > GOAL]
    launcher = "`PYTHONPATH=<tree> python -m palbench.cli`" if args.rev else "the `palbench` entry point"
    body = (
        f"Median of {args.rounds} interleaved runs per command (fresh subprocess each), seconds and ratio to "
        f"`python -c pass` of the same tree; torch = the command imports torch (`-X importtime`). `palbench` = "
        f"{launcher}. Goal: ≤ {GOAL} s for commands that touch no model; over it in the working tree: "
        f"{', '.join(slow) or 'none'}.\n\n" + markdown_table(header, rows)
    )
    publish("startup", "Start-up time of model-free commands (CPU)", body)


if __name__ == "__main__":
    main()
