"""``palbench report``: run the report notebooks with papermill, render them with nbconvert, write the index.

For each notebook of :data:`~palbench.reports.project.NOTEBOOKS` whose study the protocol has (any of its
studies, for the claims report), ``notebooks/<name>.ipynb`` is executed (kernel working directory: the project
root) into ``<out>/<name>.ipynb`` and rendered to ``<out>/<name>.html``; the notebooks themselves write
``<out>/figures/*.png`` and ``<out>/tables/*.csv``. ``<out>/index.html`` links every report with its
reading — the text of the cell tagged ``headline`` — and says which reports the protocol has no study for.
Notebooks run in parallel, ``workers`` at a time, each from its own worker process (papermill changes the
process's working directory while it starts a kernel, so threads would race); one command starts them all,
which saves an interpreter, papermill and DVC stage start per notebook.
"""

from __future__ import annotations

import html
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from palbench.io import write_text
from palbench.reports.project import NOTEBOOKS, Project, ReportError, notebook_studies, open_project, provenance

HEADLINE_TAG = "headline"


def plan(project: Project, names: list[str] | None = None) -> dict[str, str | None]:
    """``{notebook: None}`` for the notebooks to run, ``{notebook: reason}`` for those the protocol has no
    study for (a notebook reading several studies runs when the protocol has any of them); ``names``
    restricts the plan (unknown names are an error)."""
    unknown = [n for n in names or [] if n not in NOTEBOOKS]
    if unknown:
        raise ReportError(f"unknown report(s) {', '.join(unknown)}; expected among {', '.join(NOTEBOOKS)}")
    out = {}
    for name in NOTEBOOKS:
        if names and name not in names:
            continue
        studies = notebook_studies(name)
        lacking = (f"no `{studies[0]}` study" if len(studies) == 1 else
                   f"none of the {', '.join(f'`{s}`' for s in studies)} studies")
        out[name] = None if project.has_any_study(studies) else f"not in protocol {project.protocol} ({lacking})"
    return out


def _out_parameter(project: Project) -> str:
    """``out`` as the notebooks get it: relative to the root when inside it."""
    try:
        return str(project.out.relative_to(project.root))
    except ValueError:
        return str(project.out)


def execute(project: Project, name: str, parameters: dict | None = None) -> Path:
    """Run ``notebooks/<name>.ipynb`` into ``<out>/<name>.ipynb``; a failing cell is a one-line ReportError
    naming the notebook, the error, and the executed notebook that holds the traceback."""
    import papermill as pm

    src = project.path("notebooks", f"{name}.ipynb")
    if not src.is_file():
        raise ReportError(f"{src}: notebook not found")
    dst = project.out / f"{name}.ipynb"
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        pm.execute_notebook(str(src), str(dst), parameters={"out": _out_parameter(project), **(parameters or {})},
                            cwd=str(project.root), progress_bar=False, log_output=False,
                            extra_arguments=["--IPKernelApp.log_level=ERROR"])  # no TCP warning per kernel
    except pm.PapermillExecutionError as e:
        raise ReportError(f"{src}: {e.ename}: {e.evalue} (cell {e.exec_count}; traceback in {dst})") from None
    return dst


def render_html(ipynb: Path) -> Path:
    """``<name>.ipynb`` → ``<name>.html`` beside it (nbconvert, lab template, figures embedded)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_filename(str(ipynb))
    path = ipynb.with_suffix(".html")
    write_text(path, body)
    return path


def headline(ipynb: Path) -> str:
    """The plain text output of the executed notebook's cell tagged ``headline``."""
    nb = json.loads(Path(ipynb).read_text())
    for cell in nb.get("cells", []):
        if HEADLINE_TAG in cell.get("metadata", {}).get("tags", []):
            for output in cell.get("outputs", []):
                text = output.get("data", {}).get("text/plain")
                if text:
                    return "".join(text) if isinstance(text, list) else str(text)
    raise ReportError(f"{ipynb}: no output in a cell tagged `{HEADLINE_TAG}`")


def index_html(project: Project, entries: dict[str, tuple[str | None, str | None]]) -> str:
    """The index page: provenance, then one line per report: its link and reading, or why it is absent.

    Args:
        entries: ``{notebook: (reading or None, reason it was not run or None)}``.
    """
    p = {k: html.escape(v).replace("`", "") for k, v in provenance(project).items()}
    items = []
    for name, (reading, reason) in entries.items():
        title = html.escape(NOTEBOOKS[name][1])
        if reason:
            items.append(f'<li class="absent"><b>{title}</b> — {html.escape(reason)}</li>')
        else:
            items.append(f'<li><a href="{name}.html"><b>{title}</b></a> (<a href="{name}.ipynb">notebook</a>)'
                         f'<br>{html.escape(reading or "")}</li>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>palbench reports — {p['protocol']}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.45;padding:0 1em}}
li{{margin-bottom:0.9em}} .absent{{color:#777}} .meta{{color:#444;font-size:0.92em}}</style></head>
<body><h1>palbench reports — protocol {p['protocol']}</h1>
<p class="meta">Measured results (not the paper's numbers) of protocol <b>{p['protocol']}</b>
({p['protocol_file']}); dataset {p['dataset']}, {p['split']} split; default backbone {p['backbone']};
seeds {p['seeds']}: mean ± std, 95% t-interval over seeds, paired t-test against the baseline.
Rendered {p['date']} from git revision {p['revision']}.</p>
<ul>
{chr(10).join(items)}
</ul></body></html>
"""


def _report(project: Project, name: str, parameters: dict | None) -> str:
    """Execute and render one notebook; its reading."""
    ipynb = execute(project, name, parameters)
    render_html(ipynb)
    return headline(ipynb)


def build_reports(
    params: str | Path = "params.yaml", out: str | Path = "reports", names: list[str] | None = None,
    parameters: dict | None = None, workers: int | None = None,
) -> dict[str, tuple[str | None, str | None]]:
    """Execute, render and index the reports of the protocol in ``params`` (root: its folder).

    Args:
        out: output folder (relative paths are taken from the working directory).
        names: only these notebooks, and no index (default: all, and ``index.html``).
        parameters: papermill parameters given to every notebook run (e.g. ``{"landmark_noise": 3}`` with ``names``).
        workers: notebooks run at the same time (default: the CPU count, at most 4).

    Returns:
        ``{notebook: (reading, None) or (None, reason it was not run)}``.
    """
    params = Path(params).resolve()
    if not params.is_file():
        raise ReportError(f"{params}: not found; write it with `palbench protocol NAME`")
    project = open_project(params.parent, Path(out).resolve())
    todo = plan(project, names)
    run = [n for n, reason in todo.items() if reason is None]

    workers = max(1, min(workers or min(4, os.cpu_count() or 1), len(run) or 1))
    jobs = [(project, name, parameters) for name in run]
    if workers == 1:
        readings = {name: _report(*job) for name, job in zip(run, jobs)}
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            readings = dict(zip(run, pool.map(_report, *zip(*jobs))))
    entries = {n: (readings.get(n), reason) for n, reason in todo.items()}
    if not names:
        write_text(project.out / "index.html", index_html(project, entries))
    return entries
