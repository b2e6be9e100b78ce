"""The notebook reports (palbench.reports, notebooks/*.ipynb, the DVC reports stage).

The executed notebooks come from the session's smoke pipeline (``smoke_project``: the whole ``dvc repro``
of the ``smoke`` protocol, whose reports stage runs every notebook with papermill); the papermill command
lines run in a copy of its results, so the pipeline project stays as DVC left it. The plotting and formatting
functions are also checked on a three-seed table built here, where intervals exist.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

matplotlib.use("Agg")  # the test process only; the notebooks use papermill's inline backend

import matplotlib.pyplot as plt  # noqa: E402

from palbench import reports as r  # noqa: E402
from palbench.reports import render  # noqa: E402
from palbench.results import study_table  # noqa: E402

BIN = Path(sys.executable).parent
FIGURES = {"claims": ["claims"], "layers": ["layers"],
           "sensitivity": ["sensitivity_landmark_noise4", "noisy_priors_landmark_noise4"],
           "confusion": ["confusion"], "attributions": ["attributions"], "regimes": ["regimes"]}
#: Reports the smoke protocol has no study for (listed as absent in its index).
SMOKE_ABSENT: tuple[str, ...] = ()  # smoke has every study, two regime cells among them
SMOKE_REPORTS = [n for n in r.NOTEBOOKS if n not in SMOKE_ABSENT]
TABLES = {"claims": "claims", "layers": "layers", "ablation": "ablation", "channels": "channels",
          "sensitivity": "sensitivity_landmark_noise4", "confusion": "confusion", "attributions": "attributions",
          "comparison": "comparison", "regimes": "regimes"}


def outputs(nb: dict) -> list[dict]:
    return [o for cell in nb["cells"] for o in cell.get("outputs", [])]


def text_overlaps(fig) -> list[tuple[str, str]]:
    """Pairs of visible, non-empty texts of a figure whose bounding boxes intersect."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]
    boxes = [(t.get_text(), t.get_window_extent(renderer).shrunk(0.98, 0.98)) for t in texts]
    return [(a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1:] if ba.overlaps(bb)]


@pytest.fixture(scope="module")
def project(smoke_project):
    root, _ = smoke_project
    return r.open_project(root)


@pytest.fixture(scope="module")
def copy(smoke_project, tmp_path_factory):
    """What the notebooks read, copied out of the pipeline project (its reports/ is a DVC output)."""
    root, _ = smoke_project
    dst = tmp_path_factory.mktemp("reports") / "project"
    dst.mkdir()
    for d in ("notebooks", "results", "priors", "previews", "data"):
        shutil.copytree(root / d, dst / d)
    for f in ("params.yaml", "dvc.yaml"):
        shutil.copy(root / f, dst / f)
    return dst


def papermill(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``papermill ARGS`` as typed at the project root (stdout captured, so not a terminal)."""
    import pipeline_project as pp

    return subprocess.run([str(BIN / "papermill"), *args], cwd=cwd, env=pp.env(), capture_output=True, text=True,
                          timeout=300)


# ---------------------------------------------------------------- the reports stage of the smoke pipeline
def test_reports_stage_writes_every_report_and_the_index(smoke_project):
    root, stdout = smoke_project
    assert f"palbench report: {len(SMOKE_REPORTS)} reports -> reports/index.html" in stdout
    index = (root / "reports" / "index.html").read_text()
    for name in SMOKE_ABSENT:
        assert f'href="{name}.html"' not in index and "not in protocol smoke (no study with a `regime`)" in index
    for name in SMOKE_REPORTS:
        assert f'href="{name}.html"' in index
        html = (root / "reports" / f"{name}.html").read_text()
        assert "Reading." in html and "protocol <strong>smoke</strong>" in html
        assert html.count('src="data:image/png;base64') == len(FIGURES.get(name, [])), name
        assert "<table" in html
    assert "git revision" in index and "protocol <b>smoke</b>" in index
    # the landmarks section: the stage's contact sheet (copied beside the figures), misses, no warning for synth
    assert '<img class="sheet" src="figures/landmarks_sheet.png"' in index
    sheet = root / "landmarks" / "smoke" / "sheet.png"
    assert (root / "reports" / "figures" / "landmarks_sheet.png").read_bytes() == sheet.read_bytes()
    assert "Backend <b>truth</b>" in index and "Images without a face: <b>0 of " in index
    assert "No plausibility warnings." in index


@pytest.mark.parametrize("name", SMOKE_REPORTS)
def test_executed_notebook_has_no_error_and_its_figures_and_table(smoke_project, name):
    root, _ = smoke_project
    nb = json.loads((root / "reports" / f"{name}.ipynb").read_text())
    outs = outputs(nb)
    assert not [o for o in outs if o["output_type"] == "error"]
    assert not [o for o in outs if o["output_type"] == "stream" and o["name"] == "stderr"], "warnings in a report"
    assert nb["metadata"]["kernelspec"]["name"] == "python3" and nb["metadata"]["language_info"]["name"] == "python"
    assert nb["metadata"]["papermill"]["parameters"]["out"] == "reports"
    images = [o for o in outs if "image/png" in o.get("data", {})]
    assert len(images) == len(FIGURES.get(name, []))
    assert any("<table" in "".join(o.get("data", {}).get("text/html", "")) for o in outs)
    header = "".join(outs[0]["data"]["text/markdown"])
    assert "protocol **smoke**" in header and "git revision" in header and "seeds 0 (n = 1)" in header
    reading = render.headline(root / "reports" / f"{name}.ipynb")
    assert reading and "nan" not in reading.lower()
    for fig in FIGURES.get(name, []):
        with Image.open(root / "reports" / "figures" / f"{fig}.png") as im:
            assert im.format == "PNG" and min(im.size) > 300
    table = pd.read_csv(root / "reports" / "tables" / f"{TABLES[name]}.csv")
    assert len(table) >= 2


def test_source_notebooks_are_clean_and_parameterised():
    import nbformat

    for name in r.NOTEBOOKS:
        nb = nbformat.read(Path(__file__).resolve().parent.parent / "notebooks" / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.kernelspec.name == "python3" and nb.metadata.language_info.name == "python"
        tags = [t for c in nb.cells for t in c.metadata.get("tags", [])]
        assert tags.count("parameters") == 1 and tags.count("headline") == 1, name
        assert nb.cells[-1].metadata.get("tags") == ["headline"], "the reading comes last"
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
        assert "matplotlib.use" not in code and "Agg" not in code
        assert "palbench.train" not in code and "fit(" not in code, "reports read results, never train"


# ---------------------------------------------------------------- papermill by hand
def test_users_papermill_command_without_output_path(copy):
    """`papermill notebooks/sensitivity.ipynb -p sigma 4`, exactly as users type it (σ: the paper's word for the
    landmark noise): the notebook to stdout, figure and table on disk, σ = 4 highlighted."""
    res = papermill(["notebooks/sensitivity.ipynb", "-p", "sigma", "4"], copy)
    assert res.returncode == 0, res.stderr[-2000:]
    nb = json.loads(res.stdout)
    assert nb["metadata"]["papermill"]["parameters"] == {"sigma": 4}
    assert not [o for o in outputs(nb) if o["output_type"] == "error"]
    for f in ("figures/sensitivity_landmark_noise4.png", "figures/noisy_priors_landmark_noise4.png",
              "tables/sensitivity_landmark_noise4.csv"):
        assert (copy / "reports" / f).is_file(), f
    table = pd.read_csv(copy / "reports" / "tables" / "sensitivity_landmark_noise4.csv")
    assert table.loc[table["shown"] == "◀", "landmark noise σ"].tolist() == ["4"]


def test_users_papermill_command_with_output_path_highlights_sigma(copy, smoke_project):
    """`papermill notebooks/sensitivity.ipynb out.ipynb -p sigma 4`: σ = 4 highlighted, the same figure as the
    pipeline's; `-p sigma 0` highlights another σ (the parameter is read, not ignored)."""
    res = papermill(["notebooks/sensitivity.ipynb", "out.ipynb", "-p", "sigma", "4"], copy)
    assert res.returncode == 0, res.stderr[-2000:]
    nb = json.loads((copy / "out.ipynb").read_text())
    assert len([o for o in outputs(nb) if "image/png" in o.get("data", {})]) == 2
    assert "σ = 4" in render.headline(copy / "out.ipynb")
    # same data, same figure as the pipeline's: running it by hand leaves the DVC output unchanged
    root, _ = smoke_project
    name = "figures/sensitivity_landmark_noise4.png"
    assert (copy / "reports" / name).read_bytes() == (root / "reports" / name).read_bytes()
    res = papermill(["notebooks/sensitivity.ipynb", "out0.ipynb", "-p", "sigma", "0"], copy)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "σ = 0" in render.headline(copy / "out0.ipynb")
    table = pd.read_csv(copy / "reports" / "tables" / "sensitivity_landmark_noise0.csv")
    assert table.loc[table["shown"] == "◀", "landmark noise σ"].tolist() == ["0"]


def test_sigma_without_results_names_the_command(copy):
    res = papermill(["notebooks/sensitivity.ipynb", "out3.ipynb", "-p", "sigma", "3"], copy)
    assert res.returncode != 0
    assert "σ = 3 has no results in results/noise.csv (studied: 0, 4)" in res.stderr
    assert "`palbench protocol smoke && dvc repro`" in res.stderr
    assert not (copy / "reports" / "figures" / "sensitivity_landmark_noise3.png").exists()


def test_report_cli_takes_the_users_sigma(copy, tmp_path):
    """`palbench report sensitivity -p sigma 0 --out DIR`: one report (no index) with σ = 0 highlighted."""
    import pipeline_project as pp

    res = pp.run([str(BIN / "palbench"), "report", "sensitivity", "-p", "sigma", "0", "--params",
                  str(copy / "params.yaml"), "--out", str(tmp_path / "r")], copy, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "σ = 0" in render.headline(tmp_path / "r" / "sensitivity.ipynb")
    assert (tmp_path / "r" / "figures" / "sensitivity_landmark_noise0.png").is_file()
    assert not (tmp_path / "r" / "index.html").exists()


def test_table_name_of_sigma_is_read_as_the_same_parameter(copy):
    """`-p landmark_noise 4` (the tables' name, an earlier release's parameter) highlights σ = 4 as `-p sigma 4`
    does; both with different values stop at once, naming both."""
    res = papermill(["notebooks/sensitivity.ipynb", "out4.ipynb", "-p", "landmark_noise", "4"], copy)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "σ = 4" in render.headline(copy / "out4.ipynb")
    res = papermill(["notebooks/sensitivity.ipynb", "out5.ipynb", "-p", "sigma", "4", "-p", "landmark_noise", "0"], copy)
    assert res.returncode != 0
    assert "-p sigma 4 and -p landmark_noise 0 name the same landmark noise σ; pass one of them" in res.stderr
    nb = json.loads((copy / "out5.ipynb").read_text())
    assert not [o for o in outputs(nb) if "image/png" in o.get("data", {})]  # stopped before any figure


def _project_without_layers(smoke_project, tmp_path) -> None:
    """The smoke project's notebooks and results in ``tmp_path``, with a params.yaml that has no `layers` study."""
    from palbench.config import read_params, write_params

    root, _ = smoke_project
    for d in ("notebooks", "results"):
        shutil.copytree(root / d, tmp_path / d)
    params = read_params(root / "params.yaml")
    del params["studies"]["layers"]
    write_params({k: v for k, v in params.items() if k != "runs"}, tmp_path / "params.yaml")


def test_absent_study_is_said_not_failed_obscurely(smoke_project, tmp_path):
    _project_without_layers(smoke_project, tmp_path)
    entries = render.build_reports(tmp_path / "params.yaml", tmp_path / "reports", ["layers"])
    assert entries == {"layers": (None, "not in protocol smoke (no `layers` study)")}
    project = r.open_project(tmp_path)
    plan = render.plan(project)
    assert plan["layers"] == "not in protocol smoke (no `layers` study)" and plan["comparison"] is None
    index = render.index_html(project, {n: ("reading", why) for n, why in plan.items()})
    assert '<li class="absent"><b>Fig. 3 — accuracy of PAL at each layer</b> — not in protocol smoke' in index
    assert index.count('<a href="') == 2 * (len(SMOKE_REPORTS) - 1)  # claims still runs: it reads any of several studies
    res = papermill(["notebooks/layers.ipynb", "layers.ipynb"], tmp_path)
    assert res.returncode != 0
    assert ("ReportError: protocol smoke has no `layers` study, which Fig. 3 needs: add studies.layers to "
            "benchmarks/protocols/smoke.yaml, then run `palbench protocol smoke && dvc repro`") in res.stderr


def _index_project(root: Path) -> r.Project:
    """A project with the smoke protocol's params.yaml and a tiny synth dataset in data/smoke (no landmarks)."""
    from palbench.cli import main
    from palbench.config import load_protocol, write_params

    write_params(load_protocol("smoke"), root / "params.yaml")
    assert main(["synth", str(root / "data" / "smoke"), "--n-train", "14", "--n-val", "7", "--n-test", "7",
                 "--size", "32"]) == 0
    return r.open_project(root)


def test_index_shows_the_landmarks_sheet_misses_and_warnings(tmp_path):
    from palbench.landmarks import compute_landmarks

    project = _index_project(tmp_path)
    data = tmp_path / "data" / "smoke"
    lm = np.load(data / "provided_landmarks.npy")
    splits = pd.read_csv(data / "samples.csv")["split"]
    missed = [int(np.flatnonzero(splits == "train")[1]), int(np.flatnonzero(splits == "test")[0])]
    lm[missed] = np.nan
    lm[np.flatnonzero(splits == "val")[0], 0] = (5.0, -2.0)  # one point above the frame: 1 of 26 faces > 2%
    np.save(tmp_path / "placed.npy", lm)
    info = compute_landmarks(data, "file", source=tmp_path / "placed.npy", out=tmp_path / "landmarks" / "smoke")
    assert len(info["warnings"]) == 1
    index = render.index_html(project, {n: ("reading", why) for n, why in render.plan(project).items()})
    assert "<h2>Landmarks</h2>" in index and "From landmarks/smoke/landmarks.json." in index
    assert '<img class="sheet" src="figures/landmarks_sheet.png"' in index
    copied = tmp_path / "reports" / "figures" / "landmarks_sheet.png"
    assert copied.read_bytes() == (tmp_path / "landmarks" / "smoke" / "sheet.png").read_bytes()
    assert f"Backend <b>file</b> (source: {tmp_path / 'placed.npy'})." in index
    assert ("Images without a face: <b>2 of 28 (7.1%)</b>; train 1 of 14 (7.1%), val 0 of 7 (0.0%), "
            "test 1 of 7 (14.3%).") in index
    assert "faces with points outside the image: 1 of 26 (3.8%)" in index
    assert '<li class="warning">1 of 26 faces (3.8%) have landmarks outside the image frame' in index
    assert index.count('<a href="') == 2 * len(SMOKE_REPORTS)  # the section adds no link to the report list

    # a landmarks.json from before the checks, without a sheet: said, and the stale copy is gone
    old = {k: v for k, v in info.items() if k not in ("qa", "warnings")}
    (tmp_path / "landmarks" / "smoke" / "landmarks.json").write_text(json.dumps(old))
    (tmp_path / "landmarks" / "smoke" / "sheet.png").unlink()
    index = render.index_html(project, {})
    assert "No quality checks recorded" in index
    assert "No contact sheet: landmarks/smoke/sheet.png does not exist" in index
    assert "<img" not in index and not copied.exists()
    assert "Images without a face: <b>2 of 28 (7.1%)</b>" in index


def test_index_renders_without_landmarks_or_with_a_broken_landmarks_json(tmp_path):
    project = _index_project(tmp_path)
    entries = {n: ("reading", why) for n, why in render.plan(project).items()}
    index = render.index_html(project, entries)
    assert "<h2>Landmarks</h2>" in index and "<img" not in index
    assert "No landmarks: landmarks/smoke/landmarks.json does not exist" in index
    folder = tmp_path / "landmarks" / "smoke"
    folder.mkdir(parents=True)
    (folder / "landmarks.json").write_text("{not json")
    index = render.index_html(project, entries)
    assert "landmarks/smoke/landmarks.json is unreadable (" in index and "</body></html>" in index
    (folder / "landmarks.json").write_text(json.dumps({"backend": "dlib", "n_samples": "many"}))
    assert "landmarks/smoke/landmarks.json is unreadable (" in render.index_html(project, entries)
    # palbench landmarks run without --out: the dataset folder holds them
    from palbench.landmarks import compute_landmarks

    (folder / "landmarks.json").unlink()
    compute_landmarks(tmp_path / "data" / "smoke", "truth")
    index = render.index_html(project, entries)
    assert "From data/smoke/landmarks.json." in index and "Backend <b>truth</b>" in index
    assert '<img class="sheet" src="figures/landmarks_sheet.png"' in index


def test_claims_report_renders_without_a_study_and_says_why(smoke_project, tmp_path):
    """The claims report of a protocol without `layers` (one seed, as smoke has): (d) and (e) not tested, the
    others undecided, and the reading says why in plain words."""
    _project_without_layers(smoke_project, tmp_path)
    res = papermill(["notebooks/claims.ipynb", "claims.ipynb"], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    reading = render.headline(tmp_path / "claims.ipynb")
    assert "2 not tested (d, e) of 7 claims" in reading and "no `layers` study" in reading
    assert "Only 1 seed was run: no interval exists" in reading and "supported (" not in reading
    table = pd.read_csv(tmp_path / "reports" / "tables" / "claims_summary.csv").set_index("claim")
    assert table.loc["d", "verdict"] == "not tested" and table.loc["a", "verdict"] == "undecided at 95%"


def _project_with_backbones(smoke_project, tmp_path) -> Path:
    """The smoke project's notebooks, data and results in ``tmp_path`` with a params.yaml whose studies are the
    comparison on three backbones (as synthetic-backbones): `comparison` (smoke's VGG16-BN, 1 seed, its own
    results), `comparison-resnet18` (3 seeds: results/comparison-resnet18.csv written here, its pretraining at
    chance) and `comparison-convnext_tiny` (no results)."""
    from palbench.config import read_params, write_params

    root, _ = smoke_project
    for d in ("notebooks", "results", "data"):
        shutil.copytree(root / d, tmp_path / d)
    params = read_params(root / "params.yaml")
    entry = params["pretraining"]["smoke-faces"]
    studies = {"comparison": params["studies"]["comparison"]}
    for arch, layer in (("resnet18", "layer3"), ("convnext_tiny", "features.5")):
        name = f"smoke-faces-{arch}"
        params["pretraining"][name] = {**entry,
                                       "train": {**entry["train"], "arch": arch, "width": 0.25, "layer": layer}}
        studies[f"comparison-{arch}"] = {"title": f"Baseline vs PAL, {arch}", "vary": {"pal_weight": [1.0]},
                                         "set": {"arch": arch, "width": 0.25, "layer": layer, "prior_sigma": 0.5,
                                                 "weights": f"pretrain/{name}/weights.pt"}}
    params["studies"] = studies
    write_params({k: v for k, v in params.items() if k != "runs"}, tmp_path / "params.yaml")
    table, _ = three_seed_table("pal_weight", [1.0])
    table["test_alignment_constrained_mean"] = [0.3, 0.8]
    table.to_csv(tmp_path / "results" / "comparison-resnet18.csv", index=False)
    pre = tmp_path / "pretrain" / "smoke-faces-resnet18"
    pre.mkdir(parents=True)
    (pre / "pretrain.json").write_text(json.dumps({"pretext": "label", "classes": 7,
                                                   "images": {"train": 4000, "val": 400},
                                                   "metrics": {"best_val_accuracy": 0.15}}))
    return tmp_path


def test_comparison_report_shows_the_backbones_side_by_side(smoke_project, tmp_path):
    """A protocol with several comparison studies: the comparison report's table has one row per backbone
    (layer and its map, pretraining accuracy, baseline and PAL, the paired difference), the forest plot one
    row per backbone, and the reading names each difference, the pretraining at chance and the study without
    results. The claims report still renders (every other study absent: not tested)."""
    root = _project_with_backbones(smoke_project, tmp_path)
    project = r.open_project(root)
    assert r.comparison_studies(project) == ["comparison", "comparison-resnet18", "comparison-convnext_tiny"]
    plan = render.plan(project)
    assert {n for n, why in plan.items() if why is None} == {"claims", "confusion", "attributions", "comparison"}

    res = papermill(["notebooks/comparison.ipynb", "comparison.ipynb"], root)
    assert res.returncode == 0, res.stderr[-2000:]
    nb = json.loads((root / "comparison.ipynb").read_text())
    assert not [o for o in outputs(nb) if o["output_type"] == "error"]
    assert len([o for o in outputs(nb) if "image/png" in o.get("data", {})]) == 1  # the forest plot
    table = pd.read_csv(root / "reports" / "tables" / "backbones.csv").set_index("backbone")
    assert table.index.tolist() == ["VGG16-BN ×0.0625", "ResNet18 ×0.25", "ConvNeXt-T ×0.25"]
    assert table["study"].tolist() == r.comparison_studies(project)
    assert table.loc["VGG16-BN ×0.0625", "layer (C×H×W)"] == "conv7 (16×8×8)"  # 256 × 0.0625 channels at 32 px
    assert table.loc["ResNet18 ×0.25", "layer (C×H×W)"] == "layer3 (64×2×2)"
    assert table.loc["ResNet18 ×0.25", "pretraining val (%)"] == "15.0 (at chance)"
    resnet = pd.read_csv(root / "results" / "comparison-resnet18.csv").iloc[1]
    assert table.loc["ResNet18 ×0.25", "PAL − baseline (points) [95% CI]"] == (
        f"{100 * resnet['diff']:+.1f} [{100 * resnet['diff_ci_low']:+.1f}, {100 * resnet['diff_ci_high']:+.1f}]")
    assert table.loc["ResNet18 ×0.25", "alignment r PAL / baseline"] == "0.80 / 0.30"
    assert table.loc["ConvNeXt-T ×0.25", "vs chance"] == "no results"
    assert table.loc["ConvNeXt-T ×0.25", "baseline (%) mean ± std"] == "–"
    assert (root / "reports" / "figures" / "backbones.png").is_file()
    reading = render.headline(root / "comparison.ipynb")
    assert "PAL at a late layer against each backbone's own baseline (3 backbones)" in reading
    assert f"ResNet18 ×0.25 at layer3: {r.comparison_text(resnet)}" in reading
    assert "Still at chance after pretraining: ResNet18 ×0.25." in reading
    assert "No results for comparison-convnext_tiny (" in reading and "nan" not in reading.lower()

    res = papermill(["notebooks/claims.ipynb", "claims.ipynb"], root)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "not tested" in render.headline(root / "claims.ipynb")


def test_backbone_summary_flags_chance_and_plots_every_backbone(smoke_project, tmp_path):
    root = _project_with_backbones(smoke_project, tmp_path)
    project = r.open_project(root)
    table = pd.read_csv(root / "results" / "comparison-resnet18.csv")
    table.loc[:, ["mean", "ci_low"]] = [[0.15, 0.10], [0.16, 0.11]]  # both at chance (7 classes)
    table.to_csv(root / "results" / "comparison-resnet18.csv", index=False)
    summary = r.backbone_summary(project)
    row = summary.set_index("study").loc["comparison-resnet18"]
    assert row["base_at_chance"] and row["pal_at_chance"] and row["pretrain_chance"] and row["map"] == ""
    shown = r.backbone_table(summary).set_index("study")
    assert shown.loc["comparison-resnet18", "vs chance"] == "baseline and PAL at chance"
    assert shown.loc["comparison-resnet18", "alignment r PAL / baseline"].endswith("(not interpretable: at chance)")
    text = r.backbones_headline(summary)
    assert "At chance on the test split, so their differences and alignment are not interpretable: " in text
    assert "ResNet18 ×0.25 (baseline and PAL at chance)" in text
    fig = r.plot_backbones(summary, "PAL − baseline per backbone — smoke")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == 3 and labels[1].endswith("at chance")
    assert "no results" in [t.get_text().strip() for t in fig.axes[0].texts]
    assert not text_overlaps(fig)
    plt.close(fig)


def test_report_cli_errors_in_one_line(copy, tmp_path):
    import pipeline_project as pp

    res = pp.run([str(BIN / "palbench"), "report", "nosuch", "--params", str(copy / "params.yaml"),
                  "--out", str(tmp_path / "x")], copy, check=False)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "palbench: error: unknown report(s) nosuch; expected among claims, regimes, layers, ablation, channels, "
        "sensitivity, confusion, attributions, comparison"]


# ---------------------------------------------------------------- library functions, three seeds
def three_seed_table(by: str, values: list, rng_seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """A study table as `palbench aggregate` writes it: baseline + one configuration per value, 3 seeds."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for i, v in enumerate([None, *values]):
        config = "base" if v is None else f"pal-{v}"
        for seed in range(3):
            rows.append({"config": config, "seed": seed, "test_accuracy": 0.2 + 0.03 * i + 0.02 * rng.random()})
    runs = pd.DataFrame(rows)
    table = study_table(runs, ["config"], {"config": "base"})
    table.loc[0, "config"] = "base"
    table.insert(1, "baseline", [True] + [False] * len(values))
    table.insert(2, by, [None, *values])
    return table, {c: dict(zip(g["seed"], g["test_accuracy"])) for c, g in runs.groupby("config")}


def test_configurations_at_chance_are_flagged_and_their_alignment_not_read():
    """Accuracies ~0.20-0.29 over 3 seeds: with 7 classes (chance 14.3%) every row is above chance; with a
    largest class holding 25% of the split, the rows whose CI reaches 25% are flagged at chance."""
    table, _ = three_seed_table("layer", ["conv4", "conv10", "conv13"])
    table["test_alignment_constrained_mean"] = 0.9
    seven = {"chance": 1 / 7, "majority": 1 / 7, "majority_class": "anger", "n": 700, "level": 1 / 7}
    assert not r.at_chance(table, seven).any() and not r.at_chance(table, None).any()
    cols = r.stats_columns(table, seven)
    assert (cols["vs chance"] == "above").all() and (cols["alignment r (constrained)"] == "0.90").all()
    skewed = {**seven, "majority": 0.25, "level": 0.25}
    flagged = r.at_chance(table, skewed)
    assert flagged.tolist() == (table["ci_low"] <= 0.25).tolist() and flagged.any() and not flagged.all()
    cols = r.stats_columns(table, skewed)
    assert cols["vs chance"].tolist() == ["at chance" if f else "above" for f in flagged]
    assert cols["alignment r (constrained)"][flagged].str.endswith("(not interpretable: at chance)").all()
    one = table.assign(ci_low=np.nan, ci_high=np.nan, mean=[0.145, 0.16, 0.20, 0.5])  # one seed: 2 binomial SE
    assert r.at_chance(one, seven).tolist() == [True, True, False, False]


def test_report_headers_state_chance_level(project):
    text = r.header_markdown(project, "comparison")
    levels = r.chance_levels(project)
    assert levels["chance"] == pytest.approx(1 / 7) and 0 < levels["majority"] <= 1
    assert f"chance level on the {project.split} split: 14.3% (1/7 classes)" in text
    assert "*at chance*" in text
    balanced = levels["majority"] - levels["chance"] < 0.5 / levels["n"]
    assert ("its classes are balanced" in text) if balanced else (f"scores {100 * levels['majority']:.1f}%" in text)


def test_comparison_text_and_formats():
    table, _ = three_seed_table("layer", ["conv4"])
    row = table.iloc[1]
    text = r.comparison_text(row)
    assert text.startswith(f"PAL − baseline = {100 * row['diff']:+.1f} points, 95% CI [")
    assert "paired p = " in text and "(n = 3 seeds)" in text
    one = row.copy()
    one[["diff_ci_low", "diff_ci_high", "p"]] = np.nan
    one["n_pairs"] = 1
    assert r.comparison_text(one).endswith("(1 paired seed: no CI or p-value)")
    from palbench.reports.tables import c1_name, channels_name, p_value

    assert [c1_name(c) for c in (0.25, 0.5, 0.75, 1.0)] == ["C/4", "C/2", "3C/4", "C"]
    assert [channels_name(s, c) for s, c in (("all", 1.0), ("mean", 1.0), ("mean", 0.5))] == [
        "All Channels", "Mean", "Mean of half"]
    assert p_value(0.0004) == "< 0.001" and p_value(float("nan")) == "–"


def test_select_images_takes_classes_in_turn():
    labels = np.array([3, 0, 0, 1, 3, 1, 0])
    valid = np.array([True, True, False, True, True, True, True])
    assert r.select_images(labels, valid, 5).tolist() == [1, 3, 0, 6, 5]
    assert r.select_images(labels, np.zeros(7, bool), 3).tolist() == []


def test_row_normalise_leaves_absent_classes_undefined():
    m = r.row_normalise(np.array([[2, 2], [0, 0]]))
    assert m[0].tolist() == [0.5, 0.5] and np.isnan(m[1]).all()


def test_confusion_figure_shows_a_class_absent_from_the_test_split():
    """A class with no test image (its row NaN in both models) is drawn as absent, not a NaN crash."""
    base = r.row_normalise(np.array([[3, 1, 0], [0, 0, 0], [1, 0, 4]]))
    pal = r.row_normalise(np.array([[4, 0, 0], [0, 0, 0], [0, 0, 5]]))
    fig = r.plot_confusions(base, pal, ["fear", "anger", "neutral"], ("baseline", "PAL"))
    for ax in fig.axes[:3]:
        assert [t.get_text() for t in ax.get_yticklabels()][1] == "anger (absent)"
        assert [t.get_text() for t in ax.texts][3:6] == ["–", "–", "–"]
    assert [t.get_text() for t in fig.axes[2].texts][:3] == ["+25", "-25", "0"]
    plt.close(fig)
    table, _ = three_seed_table("pal_weight", [1.0])
    counts = np.array([[3, 1, 0], [0, 0, 0], [1, 0, 4]])
    text = r.confusion_headline(table, counts, counts, ["fear", "anger", "neutral"], 3)
    assert text.endswith("anger has no image in the evaluated split (absent: no recall).") and "nan" not in text


def test_paper_rows_are_the_papers():
    """The published Table III rows (typed from the paper, cited in palbench/reports/comparison.py): the gains computed
    from its baseline and PAL rows (its text rounds the RAF-DB one to +0.96)."""
    assert r.paper_improvement() == {"RAF-DB": 0.94, "AffectNet": 3.69}


def test_layer_and_noise_plots_with_intervals():
    table, seeds = three_seed_table("layer", ["conv4", "conv10", "conv13"])
    positions = r.layer_positions("vgg16_bn", 64)
    assert [p["name"] for p in positions if p["before_pool"]] == ["conv2", "conv4", "conv7", "conv10", "conv13"]
    fig = r.plot_layers(table, positions, seeds, "PAL at each layer — test")
    ax = fig.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel() == "test accuracy (%)"
    assert len([line for line in ax.lines if line.get_linestyle() == "--"]) == 5  # max-pool lines
    assert not text_overlaps(fig)
    plt.close(fig)
    table, seeds = three_seed_table("landmark_noise", [0.0, 2.0, 4.0])
    fig = r.plot_noise(table, 4, seeds, "noise — test")
    assert not text_overlaps(fig) and "σ = 4" in " ".join(t.get_text() for t in fig.legends[0].get_texts())
    assert fig.axes[0].get_xscale() == "linear"
    plt.close(fig)
    # the paper's σ 0-5 and far past them (the default protocol): logarithmic past σ = 1, each σ labelled
    table, seeds = three_seed_table("landmark_noise", [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 40.0, 160.0, 640.0])
    fig = r.plot_noise(table, 4, seeds, "noise — test")
    ax = fig.axes[0]
    assert ax.get_xscale() == "symlog" and [t.get_text() for t in ax.get_xticklabels()][-2:] == ["160", "640"]
    assert not text_overlaps(fig)
    plt.close(fig)


def test_pipeline_figures_have_no_overlapping_text(project):
    """The smoke results' figures, redrawn in this process: no label runs into another."""
    table = r.read_study(project, "comparison")
    base_config, pal_config = r.comparison_pair(project, table)
    base, classes, n = r.confusion_counts(project, base_config)
    pal, _, _ = r.confusion_counts(project, pal_config)
    titles = r.confusion_titles(project, table, n)
    figs = [r.plot_confusions(r.row_normalise(base), r.row_normalise(pal), classes, titles),
            r.plot_attributions(r.attribution_maps(project, base_config, pal_config, 0, 4), r.class_names(project)),
            r.plot_noisy_priors(r.read_preview(project, 4), 4)]
    for fig in figs:
        overlaps = [(a, b) for a, b in text_overlaps(fig)
                    if not (a.lstrip("+-–").isdigit() and b.lstrip("+-–").isdigit())]
        assert not overlaps
        plt.close(fig)


def test_confusion_reading_names_the_largest_gain_and_loss():
    table, _ = three_seed_table("pal_weight", [1.0])
    base = np.array([[8, 2], [5, 5]])
    text = r.confusion_headline(table, base, np.array([[6, 4], [1, 9]]), ["fear", "anger"], 3)
    assert text.startswith(r.comparison_text(table.iloc[1]))
    assert text.endswith("3 seeds pooled: largest gain anger +40.0 points, largest loss fear -20.0 points.")
    assert r.confusion_headline(table, base, base, ["fear", "anger"], 3).endswith("pooled: no class changes.")
