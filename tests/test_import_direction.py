"""Data flows one way (dataset → landmarks → priors → ...): nothing in palbench.data imports palbench.landmarks.

Checked twice: statically (every import statement of every palbench/data module, inside functions too, so a
lazy import cannot hide a cycle), and by importing every palbench.data module in a fresh interpreter and
listing what it loaded.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "palbench" / "data"


def imported_modules(path: Path, source: str | None = None) -> set[str]:
    """Every absolute module name an ``import`` / ``from ... import`` of module ``path`` (its text, or
    ``source``) names (``from X import Y`` counts X and X.Y), wherever the statement stands; relative imports
    resolved against ``path``'s package."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names |= {base} | {f"{base}.{a.name}" for a in node.names}
    return names


def _landmarks(names: set[str]) -> list[str]:
    return sorted(n for n in names if n == "palbench.landmarks" or n.startswith("palbench.landmarks."))


def test_no_palbench_data_module_imports_palbench_landmarks():
    offenders = {str(p.relative_to(ROOT)): _landmarks(imported_modules(p)) for p in sorted(DATA.rglob("*.py"))}
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"palbench.data imports palbench.landmarks (data flows one way): {offenders}"


def test_the_static_check_sees_lazy_and_relative_imports():
    """The scan above can fail: an import inside a function, and a relative one, are both seen."""
    align = DATA / "align.py"
    lazy = "def f():\n    from palbench.landmarks import get_backend\n"
    assert _landmarks(imported_modules(align, lazy)) == ["palbench.landmarks", "palbench.landmarks.get_backend"]
    relative = "from ..landmarks import faces\n"
    assert _landmarks(imported_modules(align, relative)) == ["palbench.landmarks", "palbench.landmarks.faces"]
    assert _landmarks(imported_modules(DATA / "importers" / "folder.py", "from ...landmarks import x\n"))


def test_importing_every_palbench_data_module_loads_no_landmark_module():
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import palbench.data\n"
        "for m in pkgutil.walk_packages(palbench.data.__path__, 'palbench.data.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    loaded = json.loads(out.stdout)
    assert "palbench.data.align" in loaded and "palbench.data.importers.folder" in loaded
    assert not _landmarks(set(loaded)), _landmarks(set(loaded))
