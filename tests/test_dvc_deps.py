"""Every dvc.yaml stage depends on every palbench file its command executes (derived statically, with ``ast``).

A stage's files: what ``palbench <sub>`` runs — the command line's files (palbench/cli.py and the command modules
palbench/commands/*.py it builds its parser from), their module-level imports, the imports of every ``add_*`` /
``_add_*`` body outside its nested functions (``build_parser`` calls them all), and every import in
``[_]add_<sub>`` and the helpers it calls (``_evaluate`` for ``train --evaluate``) — closed transitively over palbench
modules, counting every import of a reached module (module level and inside functions: a conservative superset)
and every parent package's ``__init__.py``. The reports stage also runs the imports of the notebooks' code cells
(papermill kernels) and palbench/reports/render.py.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / "palbench" / "cli.py"
#: The command line: cli.py and the command modules it builds its parser from.
CLI_FILES = [CLI, *sorted((ROOT / "palbench" / "commands").glob("*.py"))]
CLI_MODULES = frozenset(".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                        for p in CLI_FILES)


def _module_path(name: str) -> Path | None:
    """``palbench.a.b`` → palbench/a/b.py or palbench/a/b/__init__.py (None when it is not a module)."""
    base = ROOT.joinpath(*name.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def _imports(node: ast.AST) -> set[str]:
    """palbench modules imported anywhere under ``node`` (``from X import Y`` counts X.Y where it is a module;
    ``import_module(f"palbench.x.{...}")`` counts every module of palbench/x)."""
    names: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Import):
            names |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
            names |= {n.module} | {f"{n.module}.{a.name}" for a in n.names}
        elif isinstance(n, ast.Call) and getattr(n.func, "attr", getattr(n.func, "id", None)) == "import_module":
            arg = n.args[0] if n.args else None
            prefix = arg.values[0] if isinstance(arg, ast.JoinedStr) and arg.values else arg
            if isinstance(prefix, ast.Constant) and isinstance(prefix.value, str):
                package = prefix.value.rstrip(".")
                folder = ROOT.joinpath(*package.split("."))
                names |= {package} | {f"{package}.{p.stem}" for p in folder.glob("*.py") if p.stem != "__init__"}
    return {m for m in names if m.split(".")[0] == "palbench" and _module_path(m)}


def executed_files(modules: set[str], opaque: frozenset[str] = frozenset()) -> set[str]:
    """Files (relative to the root) of ``modules``, everything they import, and their packages' __init__.py.
    ``opaque`` modules count as files but their imports are not followed (cli.py: the caller picks its part)."""
    todo, seen, files = set(modules) | {"palbench"}, set(), set()
    while todo:
        name = todo.pop()
        seen.add(name)
        parts = name.split(".")
        todo |= {".".join(parts[:i]) for i in range(1, len(parts))} - seen  # parent packages run first
        path = _module_path(name)
        files.add(path.relative_to(ROOT).as_posix())
        if name not in opaque:
            todo |= _imports(ast.parse(path.read_text())) - seen
    return files


def cli_modules(sub: str) -> set[str]:
    """palbench modules ``palbench <sub>`` imports directly from the command line's files."""
    functions, modules = {}, set()
    for path in CLI_FILES:
        tree = ast.parse(path.read_text())
        functions |= {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
        modules |= _imports(ast.Module([n for n in tree.body if not isinstance(n, ast.FunctionDef)], []))
    for name, f in functions.items():  # parser building: each [_]add_* body, not the nested run()
        if name.startswith(("_add_", "add_")):
            modules |= _imports(ast.Module([n for n in f.body if not isinstance(n, ast.FunctionDef)], []))
    todo, done = {f"_add_{sub}", f"add_{sub}"} & set(functions), set()
    assert len(todo) == 1, f"palbench/cli.py and palbench/commands/ have no (or two) [_]add_{sub}"
    while todo:
        f = functions[todo.pop()]
        done.add(f.name)
        modules |= _imports(f)
        calls = {n.func.id for n in ast.walk(f) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        todo |= (calls & set(functions)) - done
    return modules


def notebook_modules() -> set[str]:
    """palbench modules imported by the code cells of notebooks/*.ipynb (IPython magics and shell lines dropped)."""
    modules: set[str] = set()
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] == "code":
                lines = "".join(cell["source"]).splitlines()
                modules |= _imports(ast.parse("\n".join(ln for ln in lines if not ln.lstrip().startswith(("%", "!")))))
    return modules


def _stages() -> dict[str, tuple[str, list[str]]]:
    """stage → (command with ``${data.command}``/``${launcher}``-like scalar params filled in, deps)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())

    def scalar(m: re.Match, item: object) -> str:
        value = {**params, "item": item}
        for key in m.group(1).split("."):
            value = value.get(key) if isinstance(value, dict) else None
        return value if isinstance(value, str) else m.group(0)

    out = {}
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        # foreach stages: ${item.*} from the first item of the default params (every item runs the same command);
        # without one (the default protocol has no `transfer` entry), the `data` section: an entry that makes a
        # dataset is made like it (command, input, args)
        items = list((params.get(stage["foreach"][2:-1]) or {}).values()) if "foreach" in stage else []
        item = items[0] if items else params["data"]
        stage = stage.get("do", stage)
        cmd = re.sub(r"\$\{([\w.]+)\}", lambda m: scalar(m, item), stage["cmd"])
        out[name] = (cmd, [str(d) for d in stage.get("deps", [])])
    return out


def stage_files(name: str, cmd: str) -> set[str]:
    subs = re.findall(r"\bpalbench(?:\.cli)?\s+([a-z_]+)", cmd)
    assert len(subs) == 1, f"stage {name}: expected one `palbench <command>` in {cmd!r}"
    modules = cli_modules(subs[0]) | CLI_MODULES
    if name == "reports":
        modules |= notebook_modules() | {"palbench.reports.render"}
    return executed_files(modules, opaque=CLI_MODULES)


def _covered(file: str, deps: list[str]) -> bool:
    return any(file == d or file.startswith(d.rstrip("/") + "/") for d in deps)


def test_every_stage_depends_on_the_palbench_files_it_runs():
    missing = {}
    for name, (cmd, deps) in _stages().items():
        lacking = sorted(f for f in stage_files(name, cmd) if not _covered(f, deps))
        if lacking:
            missing[name] = lacking
    assert not missing, "dvc.yaml deps miss files the stage executes:\n" + "\n".join(
        f"  {stage}: {', '.join(files)}" for stage, files in missing.items()
    )


def test_palbench_deps_exist():
    stale = {name: [d for d in deps if d.startswith("palbench") and not (ROOT / d).exists()]
             for name, (_, deps) in _stages().items()}  # fmt: skip
    stale = {k: v for k, v in stale.items() if v}
    assert not stale, f"dvc.yaml deps that are not on disk (DVC would fail): {stale}"


def test_derivation_sees_the_known_chains():
    train = stage_files("train", "palbench train runs/x --evaluate test")
    assert {"palbench/__init__.py", "palbench/cli.py", "palbench/errors.py", "palbench/io.py",
            "palbench/train.py", "palbench/evaluate.py", "palbench/models/__init__.py"} <= train  # fmt: skip
    assert "palbench/reports/render.py" not in train
    landmarks = stage_files("landmarks", "palbench landmarks data/x")
    assert "palbench/landmarks/dlib_backend.py" in landmarks  # via importlib.import_module(f"palbench.landmarks.{m}")


def test_train_stage_depends_on_every_weights_file_a_run_may_load():
    """A run loads train.weights or, in a study that sets its own, a pretraining's weights.pt: the train stage
    depends on both `${train.weights}` and the whole `pretrain` folder (a committed placeholder keeps it in
    protocols without pretraining), so DVC reruns a group when any weights it loads change. Checked for every
    configuration of every protocol."""
    from palbench.config import protocol as pr

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    deps = [str(d) for d in stages["train"]["do"]["deps"]]
    assert "${train.weights}" in deps and pr.PRETRAIN_DIR in deps
    assert pr.PRETRAIN_DIR in [str(d) for d in stages["reports"]["deps"]]  # the pretraining accuracies it shows
    assert (ROOT / pr.PRETRAIN_DIR / ".gitignore").is_file() and (ROOT / "transfer" / ".gitignore").is_file()
    for name in pr.available_protocols():
        proto = pr.load_protocol(name)
        for row in pr.grid(proto):
            weights = row["settings"].get("weights")
            assert not weights or weights == proto["train"]["weights"] or weights.startswith(f"{pr.PRETRAIN_DIR}/"), (
                name, row["config"], weights)


def test_dataset_making_stages_depend_on_what_every_command_palbench_writes_for_them_runs(tmp_path):
    """dataset, pretrain_data and transfer_data run whatever command the protocol gives them: their deps cover
    the files of every command a shipped protocol or `palbench protocol new` (photos: `import folder --align
    dlib`, which runs a face detector of palbench/landmarks; its pretraining: `synth --align`) gives them."""
    from palbench.config import protocol as pr
    from palbench.config.new import new_protocol

    csv = tmp_path / "photos" / "labels.csv"
    csv.parent.mkdir()
    csv.write_text("path,label,subject\n" + "".join(f"{i}.png,{c},{i % 4}\n" for i, c in
                                                       enumerate(["happiness", "anger", "surprise"] * 4)))
    protos = [pr.load_protocol(name) for name in pr.available_protocols()]
    protos.append(new_protocol("mine", csv, transfer=[csv], root=tmp_path)[0])
    commands = {
        "dataset": {p["data"]["command"] for p in protos},
        "pretrain_data": {e["command"] for p in protos for e in (p.get("pretraining") or {}).values()},
        "transfer_data": {e["command"] for p in protos for e in (p.get("transfer") or {}).values()},
    }
    assert "import folder" in " ".join(commands["dataset"]) and "synth" in commands["pretrain_data"]
    assert commands["transfer_data"]
    stages = _stages()
    missing = {}
    for name, cmds in commands.items():
        for cmd in cmds:
            files = stage_files(name, f"palbench {cmd} data/x")
            lacking = sorted(f for f in files if not _covered(f, stages[name][1]))
            if lacking:
                missing[f"{name} ({cmd})"] = lacking
    assert not missing, f"dvc.yaml deps miss files a protocol's command runs: {missing}"
