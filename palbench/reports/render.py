"""``palbench report``: run the report notebooks with papermill, render them with nbconvert, write the index.

For each notebook of :data:`~palbench.reports.project.NOTEBOOKS` whose study the protocol has (any of its
studies, for the claims report; any study with a ``regime``, for the regime map), ``notebooks/<name>.ipynb`` is
executed (kernel working directory: the project root) into ``<out>/<name>.ipynb`` and rendered to
``<out>/<name>.html``; the notebooks themselves write
``<out>/figures/*.png`` and ``<out>/tables/*.csv``. ``<out>/index.html`` links every report with its
reading — the text of the cell tagged ``headline`` — and says which reports the protocol has no study for; its
"Landmarks" section shows the landmarks stage's contact sheet (copied to ``<out>/figures/landmarks_sheet.png``),
miss rates, backend, options and plausibility warnings (``landmarks/<data.name>/``, see
:mod:`palbench.landmarks.qa`), or says plainly what is absent.
Notebooks run in parallel, ``workers`` at a time, each from its own worker process (papermill changes the
process's working directory while it starts a kernel, so threads would race); one command starts them all,
which saves an interpreter, papermill and DVC stage start per notebook.
"""

from __future__ import annotations

import html
import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from palbench.io import atomic_path, write_text
from palbench.reports.project import (NOTEBOOKS, REGIME_STUDIES, Project, ReportError, notebook_studies, open_project,
                                      provenance)

HEADLINE_TAG = "headline"
#: The landmarks stage's contact sheet as copied into ``<out>/figures`` for the index.
LANDMARK_SHEET = "landmarks_sheet.png"
#: The order the index lists the splits in (``landmarks.json`` sorts its keys).
SPLIT_ORDER = ("train", "val", "test")


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
        studies = notebook_studies(name, project.params)
        lacking = ("no study with a `regime`" if NOTEBOOKS[name][0] == REGIME_STUDIES else
                   f"no `{studies[0]}` study" if len(studies) == 1 else
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
    """The index page: provenance, then one line per report: its link and reading, or why it is absent, then
    the landmarks section (:func:`landmarks_section`, which copies the contact sheet into ``<out>/figures``).

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
li{{margin-bottom:0.9em}} .absent{{color:#777}} .meta{{color:#444;font-size:0.92em}}
.warning{{color:#a40000}} img.sheet{{max-width:100%}}</style></head>
<body><h1>palbench reports — protocol {p['protocol']}</h1>
<p class="meta">Measured results (not the paper's numbers) of protocol <b>{p['protocol']}</b>
({p['protocol_file']}); dataset {p['dataset']}, {p['split']} split; default backbone {p['backbone']};
seeds {p['seeds']}: mean ± std, 95% t-interval over seeds, paired t-test against the baseline.
Rendered {p['date']} from git revision {p['revision']}.</p>
<ul>
{chr(10).join(items)}
</ul>
{landmarks_section(project)}
</body></html>
"""


def landmarks_folder(project: Project) -> Path:
    """Where the landmarks stage wrote: ``landmarks/<data.name>`` (the DVC pipeline's folder), else the dataset
    folder when it holds a ``landmarks.json`` (``palbench landmarks`` run without ``--out``)."""
    folder = project.path("landmarks", project.data_name)
    dataset = project.path("data", project.data_name)
    if not (folder / "landmarks.json").is_file() and (dataset / "landmarks.json").is_file():
        return dataset
    return folder


def landmarks_section(project: Project) -> str:
    """The index's "Landmarks" section (HTML): the contact sheet, copied to ``<out>/figures/landmarks_sheet.png``
    and shown from there, the miss rate overall and per split, backend and options, and the stage's warnings
    (``landmarks.json``). A missing folder, ``landmarks.json`` or sheet, or an unreadable ``landmarks.json``,
    is said in the section; nothing here raises for what is on disk."""
    folder = landmarks_folder(project)
    shown = _relative(project, folder)
    head = "<h2>Landmarks</h2>\n"
    sheet = _copy_sheet(project, folder / "sheet.png")
    img = (f'<p><img class="sheet" src="figures/{LANDMARK_SHEET}" alt="landmarks of a sample of the images"><br>'
           f'<span class="meta">A sample of the images with their 68 points (green: inside the image, orange: '
           f'outside it; a red frame: no face found); from {html.escape(shown)}/sheet.png.</span></p>'
           if sheet else
           f'<p class="absent">No contact sheet: {html.escape(shown)}/sheet.png does not exist (the landmarks stage '
           "writes it; rerun it with <code>dvc repro landmarks</code>).</p>")
    path = folder / "landmarks.json"
    if not path.is_file():
        return head + (f'<p class="absent">No landmarks: {html.escape(shown)}/landmarks.json does not exist '
                       "(run the landmarks stage, <code>dvc repro landmarks</code>).</p>\n") + (img if sheet else "")
    try:
        info = json.loads(path.read_text())
        body = _landmarks_summary(info)
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        body = f'<p class="warning">{html.escape(shown)}/landmarks.json is unreadable ({html.escape(why)}).</p>\n'
    return head + f'<p class="meta">From {html.escape(shown)}/landmarks.json.</p>\n' + body + img


def _landmarks_summary(info: dict) -> str:
    """Backend, options, miss rates and warnings of a ``landmarks.json`` as HTML paragraphs."""
    if not isinstance(info, dict):
        raise ValueError("not a JSON object")
    options = {k: v for k, v in (info.get("options") or {}).items() if k != "requested"}
    opts = ", ".join(f"{k}: {v if isinstance(v, str) else json.dumps(v)}" for k, v in options.items()) or "no options"
    lines = [f"<p>Backend <b>{html.escape(str(info['backend']))}</b> ({html.escape(opts)}).</p>"]
    counts = info.get("counts") or {}
    order = sorted(counts, key=lambda s: (SPLIT_ORDER.index(s) if s in SPLIT_ORDER else len(SPLIT_ORDER), s))
    splits = [f"{html.escape(str(s))} {_share(counts[s]['missed'], counts[s]['n'])}"
              for s in order if counts[s].get("n")]
    lines.append(f"<p>Images without a face: <b>{_share(info['n_missed'], info['n_samples'])}</b>"
                 + (f"; {', '.join(splits)}" if splits else "") + ".</p>")
    qa = info.get("qa")
    if isinstance(qa, dict) and qa.get("n_found"):
        spread = qa.get("median_spread")
        lines.append(f"<p>Median spread of the points (their box's diagonal / the image's): "
                     f"{'–' if spread is None else f'{float(spread):.2f}'}; faces with points outside the image: "
                     f"{_share(qa['n_outside'], qa['n_found'])}.</p>")
    warnings = info.get("warnings")
    if warnings is None:
        lines.append('<p class="absent">No quality checks recorded (this landmarks.json predates them; rerun the '
                     "landmarks stage).</p>")
    elif warnings:
        lines.append("<p>Warnings of the landmarks stage:</p>\n<ul>\n"
                     + "\n".join(f'<li class="warning">{html.escape(str(w))}</li>' for w in warnings) + "\n</ul>")
    else:
        lines.append("<p>No plausibility warnings.</p>")
    return "\n".join(lines) + "\n"


def _share(k, n) -> str:
    """``3 of 700 (0.4%)``."""
    k, n = int(k), int(n)
    return f"{k} of {n} ({100 * k / n:.1f}%)" if n else f"{k} of {n}"


def _relative(project: Project, path: Path) -> str:
    """``path`` relative to the project root when inside it."""
    try:
        return path.relative_to(project.root).as_posix()
    except ValueError:
        return str(path)


def _copy_sheet(project: Project, sheet: Path) -> bool:
    """Copy ``sheet`` to ``<out>/figures/landmarks_sheet.png`` (atomically); without it, remove a stale copy.
    Whether the copy is there."""
    dst = project.out / "figures" / LANDMARK_SHEET
    if not sheet.is_file():
        dst.unlink(missing_ok=True)
        return False
    try:
        with atomic_path(dst) as tmp:
            shutil.copyfile(sheet, tmp)
    except OSError:  # unreadable sheet: the index says there is none rather than show an old one
        dst.unlink(missing_ok=True)
        return False
    return True


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
        parameters: papermill parameters given to every notebook run (e.g. ``{"sigma": 3}`` with ``names`` = ``["sensitivity"]``).
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
