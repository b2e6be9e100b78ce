"""The DVC pipeline end to end: the smoke protocol runs every stage; every protocol's `dvc repro --dry` resolves.

The smoke project (conftest.smoke_project) is a throw-away copy of the repository's DVC project; `dvc repro`
ran there once for the session. The dry runs build small fake RAF-DB / AffectNet trees where the protocols
expect the licensed data, run the real import stage on them, and check every command DVC would run.
"""

import json
import os
import re
import shlex
import time

import numpy as np
import pandas as pd
import pytest
import yaml

import pipeline_project as pp
from palbench.config import protocol as pr
from palbench.cli import _dashed, build_parser


def test_smoke_pipeline_writes_one_row_per_configuration(smoke_project):
    root, out = smoke_project
    params = pr.read_params(root / "params.yaml")
    runs = pd.read_csv(root / "results" / "runs.csv")
    assert sorted(runs["run"]) == sorted(pr.run_names(params))
    assert np.isfinite(runs[["val_accuracy", "test_accuracy", "test_alignment_constrained"]]).all().all()
    # the decoy share where the run's data hold the decoy (the protocol's data), none on its variants
    on_variant = runs["data"].isin([f"data/{v}" for v in params["variants"]])
    assert on_variant.any() and np.isfinite(runs.loc[~on_variant, "test_decoy_share"]).all()
    assert runs.loc[on_variant, "test_decoy_share"].isna().all()
    stripes = runs["data"] == "data/smoke-stripes"
    assert np.isfinite(runs.loc[stripes, "test_shortcut_follow"]).all()  # the stripes encode another class
    for study in params["studies"]:
        table = pd.read_csv(root / "results" / f"{study}.csv")
        configs = [r["config"] for r in pr.grid(params) if r["study"] == study]
        assert table["config"].tolist() == configs
        assert (table["n"] == len(pr.study_seeds(params, study))).all()
        assert np.isfinite(table[["mean", "test_alignment_constrained_mean"]]).all().all()
        assert table["mean"].between(0, 1).all()
    metrics = json.loads((root / "metrics.json").read_text())
    assert metrics["n_runs"] == len(pr.run_names(params)) and set(params["studies"]) <= set(metrics)
    # every run was evaluated on the test split in its configuration's stage, and kept only best.pt
    for name in pr.run_names(params):
        assert (root / "runs" / name / "test" / "predictions.csv").is_file()
        assert (root / "runs" / name / "best.pt").is_file() and not (root / "runs" / name / "state.pt").exists()
    assert out.count("Running stage 'train@") == len(params["runs"])  # one stage per group of configurations
    assert {f"train@{group}" for group in params["runs"]} <= set(re.findall(r"Running stage '(train@[^']+)'", out))
    # the pretraining stage ran first, and every run started from its weights
    info = json.loads((root / "pretrain" / "smoke-faces" / "pretrain.json").read_text())
    assert info["pretext"] == "label" and info["head"] and (root / "pretrain" / "smoke-faces" / "weights.pt").is_file()
    assert "Running stage 'pretrain@smoke-faces'" in out
    cfg = json.loads((root / "runs" / pr.run_name("base", 0, "baseline") / "config.json").read_text())
    assert cfg["weights"] == "pretrain/smoke-faces/weights.pt"
    # the regime cells start from scratch (no weights) or from the pretraining's lower layers (partial)
    for config, group in pr.run_configs(params).items():
        cfg = json.loads((root / "runs" / pr.run_name(config, 0, group) / "config.json").read_text())
        if cfg.get("keep_up_to"):
            assert cfg["weights"] == "pretrain/smoke-faces/weights.pt" and cfg["data"] == "data/smoke-stripes"


def test_metrics_show_reads_the_one_aggregated_file(smoke_project):
    root, _ = smoke_project
    res = pp.run([str(pp.BIN / "dvc"), "metrics", "show", "--json"], root)
    shown = json.loads(res.stdout)
    files = [f for rev in shown.values() for f in rev.get("data", {})]
    assert files == ["metrics.json"]


def test_plots_show_draws_every_runs_curves_and_confusion_matrix(smoke_project, tmp_path):
    """`dvc plots show` (runs/dvc.yaml, written by `palbench protocol`): per configuration, its seeds' DVCLive
    curves, one point per epoch, and the confusion matrix of the evaluated split by class name."""
    from palbench.config.plots import CURVES

    root, _ = smoke_project
    params = pr.read_params(root / "params.yaml")
    split = params["evaluate"]["split"]
    res = pp.run([str(pp.BIN / "dvc"), "plots", "show", "--json"], root)
    shown = json.loads(res.stdout)
    assert not shown.get("errors") and "failed" not in res.stderr, (shown.get("errors"), res.stderr)
    plots = shown["data"]
    configs = pr.run_configs(params)
    assert set(plots) == {f"{g}/{c}/{k}" for c, g in configs.items() for k in (*CURVES, "confusion")}
    for config, group in configs.items():
        runs = [f"{group}/{config}/s{seed}" for seed in pr.config_seeds(params, config, group)]
        epochs = [len(pd.read_csv(root / "runs" / run / "history.csv")) for run in runs]
        for curve in CURVES:
            (plot,) = plots[f"{group}/{config}/{curve}"]
            values = plot["content"]["data"]["values"]
            assert plot["type"] == "vega" and all(np.isfinite(float(v[curve])) for v in values)
            assert sorted(int(v["step"]) for v in values) == sorted(e for n in epochs for e in range(n))
        (plot,) = plots[f"{group}/{config}/confusion"]
        values = plot["content"]["data"]["values"]
        for run in runs:
            evaluated = json.loads((root / "runs" / run / split / "metrics.json").read_text())
            assert evaluated["n"] and {v["label"] for v in values} <= set(evaluated["classes"])
            assert {v["prediction"] for v in values} <= set(evaluated["classes"])
        assert len(values) == sum(json.loads((root / "runs" / r / split / "metrics.json").read_text())["n"]
                                  for r in runs)
        encoding = plot["content"]["spec"]["encoding"]  # DVC's confusion template: true x predicted class
        assert (encoding["x"]["field"], encoding["y"]["field"]) == ("label", "prediction")
    # the HTML page DVC writes holds every plot
    pp.run([str(pp.BIN / "dvc"), "plots", "show", "-o", str(tmp_path / "html")], root)
    page = (tmp_path / "html" / "index.html").read_text()
    assert all(f"{g}/{c}: confusion ({split})" in page for c, g in configs.items())


def test_second_repro_runs_nothing(smoke_project):
    root, _ = smoke_project
    res = pp.run([str(pp.BIN / "dvc"), "repro"], root)
    assert "Running stage" not in res.stdout, res.stdout


def test_changing_one_param_reruns_only_what_depends_on_it(smoke_project):
    """priors.preview changes the preview, not the landmark sets the runs read: no run is retrained."""
    root, _ = smoke_project
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["priors"]["preview"] = 3
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    res = pp.run([str(pp.BIN / "dvc"), "repro"], root)
    ran = re.findall(r"Running stage '([^']+)'", res.stdout)
    assert "priors" in ran and not any(s.startswith(("train@", "dataset", "landmarks", "aggregate")) for s in ran), ran


def test_queued_experiments_run_in_parallel_workers(smoke_project):
    """The documented sweep: `dvc exp run --queue -S ...` twice, then `dvc queue start -j 2` (DVC's workers,
    no scheduler of ours); both finish and `dvc exp show` lists them with their metrics."""
    root, _ = smoke_project
    pp.commit(root, "pipeline state")  # queued experiments start from a commit
    dvc = str(pp.BIN / "dvc")
    for n in (1, 2):
        pp.run([dvc, "exp", "run", "--queue", "-S", f"priors.preview={n}", "-n", f"preview{n}"], root)
    pp.run([dvc, "queue", "start", "-j", "2"], root)
    deadline = time.monotonic() + 600
    while True:
        status = pp.run([dvc, "queue", "status"], root).stdout
        if not re.search(r"\b(Queued|Running)\b", status) or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert status.count("Success") == 2, status
    shown = json.loads(pp.run([dvc, "exp", "show", "--json"], root).stdout)
    exps = {e["name"]: e for commit in shown for e in (commit.get("experiments") or [])
            for e in [e["revs"][0]] if e.get("name")}
    assert set(exps) >= {"preview1", "preview2"}, exps.keys()
    for n in (1, 2):
        data = exps[f"preview{n}"]["data"]
        assert data["params"]["params.yaml"]["data"]["priors"]["preview"] == n
        assert data["metrics"]["metrics.json"]["data"]["n_runs"] == len(pr.run_names(pr.read_params(root / "params.yaml")))


def test_a_second_machine_gets_the_runs_from_a_shared_remote(smoke_project, tmp_path):
    """Machine A pushes its outputs to a DVC remote and commits dvc.lock; machine B (a clone of the repository)
    pulls them: `dvc repro` there runs nothing and the tables are A's."""
    root, _ = smoke_project
    dvc = str(pp.BIN / "dvc")
    pp.run([dvc, "remote", "add", "-f", "-d", "shared", str(tmp_path / "remote")], root)
    pp.run([dvc, "push"], root)
    pp.commit(root, "machine A's runs")
    other = tmp_path / "machine_b"
    pp.run(["git", "clone", "-q", str(root), str(other)], tmp_path)
    pp.run([dvc, "pull"], other)
    res = pp.run([dvc, "repro"], other)
    assert "Running stage" not in res.stdout, res.stdout
    pd.testing.assert_frame_equal(pd.read_csv(root / "results" / "runs.csv"), pd.read_csv(other / "results" / "runs.csv"))


# ------------------------------------------------------------------------------------------- dry runs


def _fake_licensed_data(root, protocol):
    from test_importers import make_affectnet, make_rafdb

    if protocol.startswith("rafdb"):
        make_rafdb(root / "external" / "RAF-DB")
    elif protocol.startswith("affectnet"):
        make_affectnet(root / "external" / "AffectNet", [0, 1, 2, 3, 4, 5, 6] * 4, [0, 1, 2, 3, 4, 5, 6] * 2)


def _placeholders(root):
    """Empty stand-ins for every stage output another stage reads, so `--dry` can hash the dependencies
    (DVC's dry run needs upstream outputs to exist: treeverse/dvc#9021)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        stages = list(repo.index.stages)
        rel = lambda p: os.path.relpath(p, root)  # noqa: E731
        produced = {rel(o.fs_path) for s in stages for o in s.outs}
        for stage in stages:
            for dep in stage.deps:
                path = rel(dep.fs_path)
                related = [p for p in produced if p == path or p.startswith(path + "/") or path.startswith(p + "/")]
                if not related or (root / path).exists():
                    continue
                target = root / path
                if target.suffix:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(b"")
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    (target / ".placeholder").write_text("")


@pytest.mark.parametrize("protocol", ["synthetic-cpu", "synthetic-backbones", "rafdb-vgg16", "rafdb-resnet50",
                                      "affectnet-resnet50"])
def test_dry_run_resolves_every_protocol(tmp_path, protocol):
    root = pp.make_project(tmp_path / "project")
    _fake_licensed_data(root, protocol)
    pp.protocol(root, protocol)
    if protocol == "rafdb-vgg16":  # DDP on a multi-GPU box: the documented launcher
        text = (root / "params.yaml").read_text().replace("launcher: palbench", "launcher: torchrun --nproc_per_node 8 -m palbench.cli")
        (root / "params.yaml").write_text(text)
    params = pr.read_params(root / "params.yaml")
    pp.run([str(pp.BIN / "dvc"), "repro", "dataset"], root)  # the real import of the fake tree (or synth)
    name = params["data"]["name"]
    assert (root / "data" / name / "samples.csv").is_file()
    _placeholders(root)
    weights = root / params["train"]["weights"]  # a licensed weights file (VGG-Face ...): a dependency of train
    if not weights.exists():
        weights.parent.mkdir(parents=True, exist_ok=True)
        weights.write_bytes(b"")
    res = pp.run([str(pp.BIN / "dvc"), "repro", "--dry"], root)
    commands = [line[2:] for line in res.stdout.splitlines() if line.startswith("> ")]
    parser = build_parser()
    trains = 0
    for cmd in commands:
        argv = shlex.split(cmd)
        if argv[:4] == ["torchrun", "--nproc_per_node", "8", "-m"] and argv[4] == "palbench.cli":
            argv = ["palbench", *argv[5:]]
        if argv[0] != "palbench":
            continue
        args = parser.parse_args(_dashed(argv[1:]))  # argparse exits on any option the CLI does not know
        if argv[1] == "train":
            trains += 1
            assert args.data == f"data/{name}" and args.evaluate == params["evaluate"]["split"]
            assert args.group in params["runs"] and args.params == "params.yaml"  # train settings read there
    assert trains == len(params["runs"])
    assert any(c.startswith("palbench aggregate") for c in commands)
