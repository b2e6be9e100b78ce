"""Many runs: planned_runs (a configuration's seeds, a group of the grid × its seeds) and train_runs (each
dataset read once per process, each run as train() alone would make it, state.pt dropped on request, in one
process or in single-threaded workers side by side with the same results); `palbench train --seeds/--group`
only parses and calls them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

import palbench.workers as workers
from palbench.checkpoint import load_checkpoint
from palbench.cli import main
from palbench.config import TrainConfig, planned_runs
from palbench.errors import ConfigError
from palbench.train import train
from palbench.workers import train_runs

from conftest import write_tiny_dataset

TINY = {"arch": "vgg16", "width": 0.125, "size": 32, "layer": "conv10", "epochs": 1, "max_steps": 2,
        "batch_size": 4, "progress": False}
PARAMS = {
    "train": {"arch": "vgg16", "width": 0.125, "size": 32, "lr": 0.001, "c1": 0.5, "max_steps": 2},
    "seeds": [3, 1],
    "runs": {"baseline": {"base": {"pal_weight": 0}},
             "channels": {"pal-c1_0p25": {"c1": 0.25}, "pal-c1_1": {"c1": 1.0, "lr": 0.01}}},
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("many") / "data"
    write_tiny_dataset(root, n=24, size=(32, 32))
    return root


def test_planned_runs_one_run_seeds_and_groups(tmp_path):
    values = {"data": "d", "lr": 0.002, "c1": 0.75}
    [(cfg, out)] = planned_runs(values, tmp_path / "one")
    assert out == tmp_path / "one" and cfg == TrainConfig(data="d", lr=0.002, c1=0.75)

    runs = planned_runs(values, tmp_path / "cfg", seeds=[4, 0])
    assert [out for _, out in runs] == [tmp_path / "cfg" / "s4", tmp_path / "cfg" / "s0"]
    assert [cfg.seed for cfg, _ in runs] == [4, 0] and {cfg.lr for cfg, _ in runs} == {0.002}
    with pytest.raises(ConfigError, match=r"^train: --seeds \[1, 1\] repeats a seed$"):
        planned_runs(values, tmp_path, seeds=[1, 1])

    runs = planned_runs({"data": "d", "lr": 0.002}, tmp_path / "g", group="channels", params=PARAMS, where="p.yaml")
    # every configuration of the group x every seed, in that order; params' train < the flags < the overrides
    assert [out.relative_to(tmp_path / "g").as_posix() for _, out in runs] == [
        "pal-c1_0p25/s3", "pal-c1_0p25/s1", "pal-c1_1/s3", "pal-c1_1/s1"]
    assert [(cfg.c1, cfg.lr, cfg.seed) for cfg, _ in runs] == [(0.25, 0.002, 3), (0.25, 0.002, 1), (1.0, 0.01, 3),
                                                               (1.0, 0.01, 1)]
    assert all(cfg.arch == "vgg16" and cfg.width == 0.125 and cfg.max_steps == 2 for cfg, _ in runs)
    with pytest.raises(ConfigError, match=r"^p.yaml: runs has no group 'nope'; expected one of baseline, channels$"):
        planned_runs({"data": "d"}, tmp_path, group="nope", params=PARAMS, where="p.yaml")
    seeded = {**PARAMS, "runs": {"channels": {"pal-x": {"c1": 0.25, "seeds": [0, 1, 2, 3]}}}}  # a study's own seeds
    runs = planned_runs({"data": "d"}, tmp_path, group="channels", params=seeded, where="p.yaml")
    assert [cfg.seed for cfg, _ in runs] == [0, 1, 2, 3] and [o.name for _, o in runs] == ["s0", "s1", "s2", "s3"]
    bad = {**PARAMS, "runs": {"channels": {"pal-x": {"bogus": 2.0}}}}
    with pytest.raises(ConfigError, match=r"^p.yaml: runs.channels.pal-x: unknown key\(s\) bogus"):
        planned_runs({"data": "d"}, tmp_path, group="channels", params=bad, where="p.yaml")


def _weights(path: Path) -> dict:
    return load_checkpoint(path / "best.pt")["model"]


def _same(a: dict, b: dict) -> bool:
    """Two state dicts equal bit for bit (tensors) and value for value (extra state)."""
    return a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a)


def test_train_runs_reads_each_dataset_once_trains_each_run_as_alone_and_drops_state(data, tmp_path, monkeypatch):
    base = {**TINY, "data": str(data)}
    other = tmp_path / "other"
    write_tiny_dataset(other, n=24, size=(32, 32))
    runs = planned_runs(base, tmp_path / "many", seeds=[0, 1]) + planned_runs({**base, "data": str(other)},
                                                                              tmp_path / "other-runs", seeds=[0])
    reads = []
    real_read = workers._dataset.__globals__["_DATASETS"]
    real_read.clear()
    import palbench.data.canonical as canonical

    original = canonical.read_dataset
    monkeypatch.setattr(canonical, "read_dataset", lambda *a, **k: reads.append(a) or original(*a, **k))
    done = list(train_runs(runs, discard_state=True))
    assert sorted(str(a[0]) for a in reads) == sorted([str(data), str(other)])  # each dataset once
    assert [(cfg.seed, out) for cfg, out, _, _ in done] == [
        (0, tmp_path / "many" / "s0"), (1, tmp_path / "many" / "s1"), (0, tmp_path / "other-runs" / "s0")]
    for cfg, out, metrics, evaluation in done[:2]:
        assert evaluation is None
        assert metrics == json.loads((out / "metrics.json").read_text()) and metrics["steps"] == 2
        assert not (out / "state.pt").exists() and (out / "best.pt").is_file()
        alone = tmp_path / "alone" / out.name
        train(TrainConfig(**{**base, "seed": cfg.seed}), alone)  # the run trained by itself, in a fresh state
        assert (alone / "state.pt").is_file()
        assert _same(_weights(out), _weights(alone))
    # seeds differ, so the runs do
    assert not _same(_weights(tmp_path / "many" / "s0"), _weights(tmp_path / "many" / "s1"))
    assert json.loads((tmp_path / "other-runs" / "s0" / "config.json").read_text())["data"] == str(other)

    kept = list(train_runs(planned_runs(base, tmp_path / "kept", seeds=[2])))
    assert (kept[0][1] / "state.pt").is_file()  # without discard_state the resume point stays
    with pytest.raises(ConfigError, match="already holds a run"):
        list(train_runs(planned_runs(base, tmp_path / "kept", seeds=[2])))
    assert list(train_runs(planned_runs(base, tmp_path / "kept", seeds=[2]), force=True))
    with pytest.raises(ConfigError, match="jobs: expected an integer >= 1"):
        list(train_runs(runs, jobs=0))


def test_side_by_side_workers_give_the_runs_of_one_single_threaded_process(data, tmp_path):
    """jobs changes the time, not the numbers: two single-threaded workers train and evaluate every run as a
    single-threaded process alone does, bit for bit, whichever worker takes which run."""
    base = {**TINY, "data": str(data), "pal_weight": 1.0}
    runs = planned_runs(base, tmp_path / "two", seeds=[0, 1, 2])
    side = {out.name: (m, ev) for _, out, m, ev in train_runs(runs, jobs=2, evaluate="test")}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = {out.name: (m, ev) for _, out, m, ev in
               train_runs(planned_runs(base, tmp_path / "one", seeds=[0, 1, 2]), jobs=1, evaluate="test")}
    finally:
        torch.set_num_threads(threads)
    assert sorted(side) == sorted(one) == ["s0", "s1", "s2"]
    for name in one:
        assert _same(_weights(tmp_path / "two" / name), _weights(tmp_path / "one" / name))
        assert side[name][1]["accuracy"] == one[name][1]["accuracy"]
        assert (tmp_path / "two" / name / "test" / "metrics.json").is_file()


def test_train_group_command_trains_the_group_and_discards_state(data, tmp_path, capsys):
    """`palbench train --group`: each configuration of the group x the params file's seeds, each evaluated in
    the same process, the flags over the params file's train settings, the configurations' overrides over both."""
    from palbench.models import build_model

    params = tmp_path / "params.yaml"
    assert main(["protocol", "smoke", "--params", str(params)]) == 0
    p = yaml.safe_load(params.read_text())
    torch.manual_seed(0)
    weights = tmp_path / "w.pt"
    torch.save(build_model(p["train"]["arch"], 7, p["train"]["width"], 32).state_dict(), weights)
    group = "channels"
    out = tmp_path / "runs" / group
    capsys.readouterr()
    assert main(["train", str(out), "--group", group, "--params", str(params), "--data", str(data),
                 "--weights", str(weights), "--size", "32", "--no-progress", "--discard-state", "--evaluate", "test"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert p["seeds"] == [0] and len(p["runs"][group]) >= 1  # smoke: one seed
    folders = [out / config / "s0" for config in p["runs"][group]]
    assert len(lines) == 2 * len(folders)
    for i, (folder, (config, overrides)) in enumerate(zip(folders, p["runs"][group].items())):
        assert lines[2 * i].startswith("palbench train: best val accuracy") and lines[2 * i].endswith(f"-> {folder}")
        assert lines[2 * i + 1].startswith("palbench evaluate: test")
        assert lines[2 * i + 1].endswith(f"-> {folder / 'test'}")
        cfg = json.loads((folder / "config.json").read_text())
        assert cfg["weights"] == str(weights) and cfg["size"] == 32 and cfg["max_steps"] == p["train"]["max_steps"]
        assert {k: cfg[k] for k in overrides} == overrides
        assert not (folder / "state.pt").exists() and (folder / "best.pt").is_file()
        assert (folder / "test" / "metrics.json").is_file()
    assert main(["train", str(out), "--group", group, "--params", str(params), "--data", str(data), "--seed", "1"]) == 2
    assert capsys.readouterr().err.strip() == ("palbench: error: train: --group trains the params file's seeds; "
                                               "drop --seed/--seeds")
