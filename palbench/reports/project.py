"""Where a report's numbers come from: the project root, its params, provenance, and where figures go.

Every notebook starts with :func:`open_project` (the nearest folder above the working directory that holds
``dvc.yaml`` or ``params.yaml``, so ``papermill notebooks/x.ipynb ...`` from the repository root and a
DVC stage both find it) and :func:`show_header` (protocol, dataset, seeds, date, git revision), and ends
with :func:`show_headline` (the reading, computed from the data). Figures and tables are written under
``<root>/<out>/figures`` and ``<root>/<out>/tables`` (``out = "reports"`` by default).
"""

from __future__ import annotations

import datetime as _dt
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from palbench.claims.definitions import CLAIM_STUDIES
from palbench.errors import PalbenchError
from palbench.regimes import regime_of_study, regime_studies
from palbench.vocabulary import arch_name

#: What the regime map reads in :data:`NOTEBOOKS`: every study with a ``regime`` key, whatever its name
#: (:func:`palbench.regimes.regime_studies`).
REGIME_STUDIES = "<the studies with a regime>"
#: notebook -> (study it reads, or the studies it reads any of; what it reproduces). Order of the index.
NOTEBOOKS: dict[str, tuple[str | tuple[str, ...], str]] = {
    "claims": (CLAIM_STUDIES, "§IV-C–D — the paper's comparative claims as verdicts"),
    "regimes": (REGIME_STUDIES, "The regime map — PAL − baseline by start × shortcut"),
    "layers": ("layers", "Fig. 3 — accuracy of PAL at each layer"),
    "ablation": ("ablation", "Table I — attribution method × channel strategy"),
    "channels": ("channels", "Table II — constrained channels C1"),
    "sensitivity": ("noise", "Fig. 4–5 — sensitivity to landmark noise"),
    "confusion": ("comparison", "Fig. 6 — confusion matrices, baseline and PAL"),
    "attributions": ("comparison", "Fig. 2/7 — priors and attribution maps"),
    "comparison": ("comparison", "Table III — the paper's rows beside ours"),
}


#: The comparison study (Table III); ``comparison-<name>`` studies are the same comparison on other backbones (their
#: ``set`` gives ``arch``, ``width``, ``layer``, ``weights`` ...): the comparison report shows them side by side.
COMPARISON = "comparison"


def comparison_studies(project: Project) -> list[str]:
    """``comparison`` (when the protocol has it) then every ``comparison-<name>`` study, in protocol order."""
    studies = [s for s in project.params.get("studies") or {} if s.startswith(f"{COMPARISON}-")]
    return ([COMPARISON] if project.has_study(COMPARISON) else []) + studies


def notebook_studies(notebook: str, params: dict | None = None) -> tuple[str, ...]:
    """The studies a notebook reads (:data:`NOTEBOOKS`); it is worth running when the protocol has any of them.
    The regime map's are the studies of ``params`` with a ``regime`` (none without ``params``)."""
    studies = NOTEBOOKS[notebook][0]
    if studies == REGIME_STUDIES:
        return tuple(regime_studies(params or {}))
    return (studies,) if isinstance(studies, str) else tuple(studies)


class ReportError(PalbenchError):
    """A report cannot be drawn from what is on disk (missing study, σ without results, ...)."""


def find_root(start: str | Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the working directory) with ``dvc.yaml`` or
    ``params.yaml``."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "params.yaml").is_file() or (folder / "dvc.yaml").is_file():
            return folder
    raise ReportError(f"{here}: no params.yaml or dvc.yaml here or above; run the notebook inside the project "
                      "(or pass -p root PATH)")


@dataclass
class Project:
    """A project's root, its ``params.yaml`` (runs expanded) and the report output folder.

    Attributes:
        root: the project root.
        params: the content of ``params.yaml``.
        out: where figures (``out/figures``) and tables (``out/tables``) go.
    """

    root: Path
    params: dict
    out: Path

    @property
    def protocol(self) -> str:
        return str(self.params["protocol"])

    @property
    def data_name(self) -> str:
        return str(self.params["data"]["name"])

    @property
    def split(self) -> str:
        return str(self.params["evaluate"]["split"])

    @property
    def seeds(self) -> list[int]:
        return [int(s) for s in self.params["seeds"]]

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def setting(self, key: str) -> Any:
        """``reports.<key>`` of params.yaml, else :data:`palbench.config.REPORT_DEFAULTS`."""
        from palbench.config import REPORT_DEFAULTS

        section = self.params.get("reports") or {}
        return section.get(key, REPORT_DEFAULTS.get(key))

    def has_study(self, study: str) -> bool:
        return study in (self.params.get("studies") or {})

    def has_any_study(self, studies: tuple[str, ...]) -> bool:
        return any(self.has_study(s) for s in studies)

    def repro_hint(self) -> str:
        """The command that (re)produces this protocol's results."""
        return f"`palbench protocol {self.protocol} && dvc repro`"

    def protocol_file(self) -> str:
        return f"benchmarks/protocols/{self.protocol}.yaml"


def open_project(root: str | Path | None = None, out: str | Path = "reports") -> Project:
    """Read ``<root>/params.yaml`` with :func:`palbench.config.read_params` (the pipeline's own reader and
    checks: every section, ``reports`` included, and ``runs`` against ``studies``); root found by
    :func:`find_root` when ``None``; ``out`` is relative to it."""
    from palbench.config import read_params

    root = find_root(root) if root is None else Path(root).resolve()
    params = read_params(root / "params.yaml")
    out = Path(out)
    return Project(root=root, params=params, out=out if out.is_absolute() else root / out)


def sigma_parameter(project: Project, namespace: dict[str, Any]) -> float:
    """The landmark-noise σ the sensitivity notebook highlights (pixels of a 224×224 crop, Fig. 4).

    The notebook's parameter is ``sigma``, the paper's word and what users type
    (``papermill notebooks/sensitivity.ipynb -p sigma 4``); the protocol, run configs and tables call the same
    quantity ``landmark_noise``. A ``landmark_noise`` papermill injected (``-p landmark_noise 4``, the spelling
    of an earlier release) is read as the same parameter; both given with different values is a
    :class:`ReportError`. Neither given: ``reports.landmark_noise`` of the protocol.
    """
    sigma, alias = namespace.get("sigma"), namespace.get("landmark_noise")
    if sigma is not None and alias is not None and float(sigma) != float(alias):
        raise ReportError(f"-p sigma {sigma!r} and -p landmark_noise {alias!r} name the same landmark noise σ; "
                          "pass one of them")
    chosen = next((v for v in (sigma, alias) if v is not None), None)
    return project.setting("landmark_noise") if chosen is None else chosen


def require_study(project: Project, notebook: str) -> str:
    """The study ``notebook`` reads (the first the protocol has, for a notebook reading several); a clear error
    when the protocol has none or it has no results yet."""
    studies, what = notebook_studies(notebook), NOTEBOOKS[notebook][1]
    study = next((s for s in studies if project.has_study(s)), studies[0])
    if not project.has_study(study):
        raise ReportError(
            f"protocol {project.protocol} has no `{study}` study, which {what.split(' — ')[0]} needs: add "
            f"studies.{study} to {project.protocol_file()}, then run {project.repro_hint()}")
    path = project.path("results", f"{study}.csv")
    if not path.is_file():
        raise ReportError(f"{path}: not found; produce the results with {project.repro_hint()}")
    return study


def git_revision(root: Path) -> str:
    """``abc1234`` (``+ uncommitted changes`` when tracked files differ from HEAD), or ``unknown``."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)

    try:
        rev = git("rev-parse", "--short", "HEAD")
        if rev.returncode != 0:
            return "unknown (not a git repository with a commit)"
        dirty = git("diff", "--quiet", "HEAD", "--").returncode != 0
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (git not available)"
    return rev.stdout.strip() + (" + uncommitted changes" if dirty else "")


def split_size(project: Project) -> int | None:
    """The number of images of the evaluated split (the dataset's meta.json), ``None`` when unknown."""
    meta = project.path("data", project.data_name, "meta.json")
    if not meta.is_file():
        return None
    n = json.loads(meta.read_text()).get("counts", {}).get(project.split, {})
    return int(sum(n.values())) if n else None


def chance_levels(project: Project) -> dict | None:
    """What guessing scores on the evaluated split (the dataset's meta.json counts): ``chance`` = 1/K over
    the K classes, ``majority`` = the share of its largest class (``majority_class``), ``level`` = the larger
    of the two, ``n`` images; ``None`` when the counts are unknown."""
    return dataset_levels(project.path("data", project.data_name, "meta.json"), project.split,
                          len(class_names(project)))


def dataset_levels(meta: Path, split: str, n_classes: int) -> dict | None:
    """:func:`chance_levels` of ``split`` of the dataset whose ``meta.json`` is ``meta`` (``None`` without it)."""
    counts = json.loads(meta.read_text()).get("counts", {}).get(split, {}) if meta.is_file() else {}
    n = sum(counts.values())
    if not n:
        return None
    top = max(counts, key=counts.get)
    levels = {"chance": 1 / n_classes, "majority": counts[top] / n, "majority_class": top, "n": n}
    return {**levels, "level": max(levels["chance"], levels["majority"])}


def dataset_line(project: Project) -> str:
    """``synth (`palbench synth`, 700 test images)`` from params and the dataset's meta.json."""
    data = project.params["data"]
    n = split_size(project)
    counts = f", {n} {project.split} images" if n else ""
    return f"`{project.data_name}` (`palbench {data['command']}`{counts})"


def provenance(project: Project) -> dict[str, str]:
    """Where a report's numbers come from: ``protocol, protocol_file, dataset, split, backbone, seeds, date,
    revision`` (strings, Markdown code spans allowed)."""
    train = project.params["train"]
    seeds = ", ".join(str(s) for s in project.seeds)
    return {
        "protocol": project.protocol,
        "protocol_file": project.protocol_file(),
        "dataset": dataset_line(project),
        "split": project.split,
        "backbone": f"{arch_name(train['arch'], train.get('width', 1.0))} at {train['size']} px",
        "seeds": f"{seeds} (n = {len(project.seeds)})",
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "revision": git_revision(project.root),
    }


def header_markdown(project: Project, notebook: str) -> str:
    """Provenance of a report: what it reproduces, protocol, dataset, backbone, seeds, split, date, revision, and
    (for a report of one study) the regime it was tested in."""
    from palbench.config import study_seeds

    p = provenance(project)
    studies = NOTEBOOKS[notebook][0]
    regime, seeds = "", p["seeds"]
    if isinstance(studies, str) and studies != REGIME_STUDIES and project.has_study(studies):
        regime = f"* the `{studies}` study is {regime_of_study(project.params, studies)}\n"
        own = study_seeds(project.params, studies)
        seeds = f"{', '.join(str(s) for s in own)} (n = {len(own)})"
    return (
        f"**{NOTEBOOKS[notebook][1]}** — measured here, not the paper's numbers.\n\n"
        f"* protocol **{p['protocol']}** (`params.yaml`, from `{p['protocol_file']}`)\n"
        + regime +
        f"* dataset {p['dataset']}; metrics on the **{p['split']}** split\n"
        f"* default backbone {p['backbone']}; seeds {seeds}: mean ± std, 95% t-interval over seeds, "
        "paired t-test against the baseline over the same seeds\n"
        f"* rendered {p['date']} from git revision `{p['revision']}`"
        + _chance_bullet(project)
    )


def _chance_bullet(project: Project) -> str:
    c = chance_levels(project)
    if c is None:
        return ""
    majority = ("its classes are balanced, so always answering one class scores the same"
                if c["majority"] - c["chance"] < 0.5 / c["n"] else
                f"always answering its largest class ({c['majority_class']}) scores {100 * c['majority']:.1f}%")
    return (f"\n* chance level on the {project.split} split: {100 * c['chance']:.1f}% (1/{round(1 / c['chance'])} "
            f"classes); {majority}. "
            f"A configuration whose 95% CI reaches {100 * c['level']:.1f}% is flagged *at chance*: its differences and "
            "its alignment with the prior are not interpretable")


def class_names(project: Project) -> list[str]:
    """The dataset's class names (meta.json), else palbench's class order."""
    from palbench.data.canonical import CLASSES

    meta = project.path("data", project.data_name, "meta.json")
    classes = json.loads(meta.read_text()).get("classes") if meta.is_file() else None
    return list(classes or CLASSES)


def show_header(project: Project, notebook: str) -> None:
    """Display :func:`header_markdown` (Markdown output of the cell)."""
    from IPython.display import Markdown, display

    display(Markdown(header_markdown(project, notebook)))


def show_headline(text: str) -> None:
    """Display the reading as Markdown, with the plain text as ``text/plain`` (the index reads it)."""
    from IPython.display import display

    display({"text/markdown": f"**Reading.** {text}", "text/plain": text}, raw=True)


def save_figure(fig, project: Project, name: str, dpi: int = 150) -> Path:
    """Write ``fig`` to ``<out>/figures/<name>.png`` (atomically; same data, same bytes) and return the path."""
    from palbench.io import atomic_path

    path = project.out / "figures" / f"{name}.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return path


def save_table(table, project: Project, name: str) -> Path:
    """Write a (formatted) table to ``<out>/tables/<name>.csv`` (atomically) and return the path."""
    from palbench.io import atomic_path

    path = project.out / "tables" / f"{name}.csv"
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=True)
    return path
