"""A throw-away copy of the DVC project (dvc.yaml, .dvc/config, protocols, the code DVC hashes) for pipeline tests.

The tests run `palbench protocol` and `dvc repro` inside it, so the repository's own params.yaml, dvc.lock and
outputs are never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def env() -> dict:
    """The environment of a stage: the venv's bin first on PATH (DVC stages call `palbench`), 1 torch thread."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1",
            "DVC_NO_ANALYTICS": "1", "PYTHONWARNINGS": "ignore"}


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}")
    return res


def make_project(root: Path) -> Path:
    """Copy what the pipeline needs into ``root`` (a new git + DVC repository) and return it."""
    root.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for d in ("palbench", "benchmarks/protocols", "notebooks"):
        if (REPO / d).is_dir():
            shutil.copytree(REPO / d, root / d, ignore=ignore)
    for f in ("dvc.yaml", ".dvcignore", "transfer/.gitignore", "pretrain/.gitignore"):
        if (REPO / f).is_file():
            (root / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / f, root / f)
    run(["git", "init", "-q"], root)
    run([str(BIN / "dvc"), "init", "-q"], root)
    shutil.copy(REPO / ".dvc" / "config", root / ".dvc" / "config")
    commit(root, "project")  # dvclive needs a commit to start from
    return root


def commit(root: Path, message: str) -> None:
    run(["git", "add", "-A"], root)
    run(["git", "-c", "user.name=palbench", "-c", "user.email=tests@palbench", "commit", "-q", "-m", message], root)


def protocol(root: Path, name: str) -> None:
    run([str(BIN / "palbench"), "protocol", name], root)
