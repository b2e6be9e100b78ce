"""Protocols → the experiment grid (each configuration once), params.yaml, and the aggregated study tables."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from palbench.cli import main
from palbench.config import parse_run_name
from palbench.config import protocol as pr
from palbench.errors import ConfigError
from palbench.errors import ConfigError, DataError
from palbench.results import aggregate

PROTOCOLS = ["synthetic-cpu", "synthetic-scratch", "synthetic-backbones", "smoke", "rafdb-vgg16", "rafdb-resnet50", "affectnet-resnet50"]


def test_every_protocol_is_listed_and_valid():
    assert set(PROTOCOLS) <= set(pr.available_protocols())
    for name in PROTOCOLS:
        proto = pr.load_protocol(name)
        runs = pr.expand_runs(proto)
        assert all(re.fullmatch(r"[A-Za-z0-9_-]+", g) and g in {"baseline", *proto["studies"]} for g in runs), runs
        assert all(re.fullmatch(r"[A-Za-z0-9_-]+", c) for group in runs.values() for c in group), runs
        assert all(re.fullmatch(r"[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/s\d+", r) for r in pr.run_names({**proto, "runs": runs}))
        assert "comparison" in proto["studies"]  # Table III in every protocol


def test_repository_params_are_the_default_protocol_expanded():
    """params.yaml is `palbench protocol synthetic-cpu`'s output: it cannot drift from the protocol file."""
    params = yaml.safe_load((pr.PROTOCOLS_DIR.parent.parent / "params.yaml").read_text())
    assert params == pr.params_from_protocol(pr.load_protocol("synthetic-cpu"))


def test_shared_configurations_are_trained_once_with_every_seed():
    proto = pr.load_protocol("synthetic-cpu")
    rows = pr.grid(proto)
    configs = {r["config"] for r in rows}
    runs = pr.expand_runs(proto)
    params = {**proto, "runs": runs}
    assert len(pr.run_configs(params)) == len(configs) and len(proto["seeds"]) >= 5
    # every configuration is trained once, with the union of the seeds of the studies that use it
    names = pr.run_names(params)
    assert len(names) == len(set(names)) == sum(len(pr.config_seeds(params, c)) for c in configs)
    for config in configs:
        wanted = set().union(*(pr.study_seeds(proto, r["study"]) for r in rows if r["config"] == config))
        assert set(pr.config_seeds(params, config)) == wanted
    # the baseline's PAL settings are the defaults (they change nothing), whatever the study set
    assert runs["baseline"]["base"] == {"pal_weight": 0}
    # one DVC stage per group: the baselines, then each study's configurations not in an earlier group
    assert list(runs)[0] == "baseline" and "comparison" not in runs  # comparison: the pretrained x decoy cell
    # the whole grid of the paper: Fig. 3's 13 layers, Table I's 5 rows, Table II's 4 C1, Fig. 4's σ 0-5 and past
    sizes = {s: sum(r["study"] == s and not r["baseline"] for r in rows) for s in proto["studies"]}
    assert {s: sizes[s] for s in ("layers", "ablation", "channels", "noise", "comparison")} == \
        {"layers": 13, "ablation": 5, "channels": 4, "noise": 10, "comparison": 1}
    noise = [r["settings"]["landmark_noise"] for r in rows if r["study"] == "noise" and not r["baseline"]]
    assert noise[:6] == [0, 1, 2, 3, 4, 5] and max(noise) >= 640  # past the σ where the prior is uninformative


@pytest.mark.parametrize("protocol, starts, n_seeds", [("synthetic-cpu", ("partial", "pretrained"), 5),
                                                      ("synthetic-scratch", ("scratch",), 10)])
def test_regime_map_has_every_cell_with_its_pair_and_its_seeds(protocol, starts, n_seeds):
    """The default map's partial and pretrained rows; the scratch row is its own protocol, with 10 seeds."""
    proto = pr.load_protocol(protocol)
    cells = {s: spec["regime"] for s, spec in proto["studies"].items() if "regime" in spec}
    assert {(c["start"], c["shortcut"]) for c in cells.values()} == {
        (start, shortcut) for start in starts for shortcut in ("none", "decoy", "stripes")}
    data = {"none": "data/synth-none", "decoy": "data/synth", "stripes": "data/synth-stripes"}
    for study, cell in cells.items():
        base, pal = pr.study_configs(proto, study)
        assert len(pr.study_seeds(proto, study)) >= n_seeds
        assert base["pal_weight"] == 0 and pal["pal_weight"] == proto["train"]["pal_weight"]
        assert {k: v for k, v in base.items() if k not in pr.PAL_KEYS + ("pal_weight",)} == \
               {k: v for k, v in pal.items() if k not in pr.PAL_KEYS + ("pal_weight",)}  # a pair: only PAL differs
        assert pal.get("data", "data/synth") == data[cell["shortcut"]]
        start = "scratch" if pal["weights"] is None else "partial" if pal.get("keep_up_to") else "pretrained"
        assert start == cell["start"]
    # the comparison study (Table III) is the decoy cell of the latest start (the default: pretrained)
    pair = pr.study_configs(proto, "comparison")
    cell = next(s for s, c in cells.items() if c == {"start": starts[-1], "shortcut": "decoy"})
    assert pair == pr.study_configs(proto, cell)
    # the variants change the shortcuts only: the same faces, so the runs read the protocol's priors
    for name, args in pr.params_from_protocol(proto)["variants"].items():
        changed = {k for k, v in args.items() if proto["data"]["args"].get(k) != v}
        assert changed <= set(pr.SHORTCUT_OPTIONS), name


def test_grid_studies_run_in_the_regime_the_protocol_names():
    """Fig. 3, Tables I-II and Fig. 4 share the settings (data, start, epochs, lr) of one regime cell: their
    baseline is that cell's baseline."""
    proto = pr.load_protocol("synthetic-cpu")
    cells = {s for s, spec in proto["studies"].items() if "regime" in spec}
    bases = {s: pr.study_configs(proto, s)[0] for s in proto["studies"]}
    for study in ("layers", "ablation", "channels", "noise"):
        same = [c for c in cells if bases[c] == bases[study]]
        assert len(same) == 1, study


@pytest.mark.parametrize("change, msg", [
    ({"variants": {"synth-x": {"n_train": 10}}}, "variants.synth-x: n_train differ from data.args"),
    ({"variants": {"smoke": {"decoy_p": 0.0}}}, "variants.smoke: expected a dataset name"),
    ({"studies": {"comparison": {"vary": {"pal_weight": [1.0]}, "seeds": [1, 1]}}}, "seeds: repeated seed"),
    ({"studies": {"comparison": {"vary": {"pal_weight": [1.0]}, "regime": {"start": "scratch"}}}},
     "studies.comparison.regime: expected {start: NAME, shortcut: NAME}"),
    ({"studies": {"comparison": {"vary": {"pal_weight": [1.0]}, "set": {"data": "data/elsewhere"}}}},
     "data 'data/elsewhere': not a dataset of this protocol"),
    ({"jobs": 0}, "jobs: expected an integer >= 1"),
    ({"jobs": 2, "launcher": "torchrun --nproc_per_node 2 -m palbench.cli"}, "do not mix"),
])
def test_variants_seeds_regimes_and_jobs_are_checked(change, msg):
    proto = {**pr.load_protocol("smoke"), **change}
    with pytest.raises(ConfigError, match=re.escape(msg)):
        pr.validate_protocol(proto, "p.yaml")


def test_a_study_with_its_own_seeds_runs_the_union_once():
    proto = pr.load_protocol("smoke")
    proto = {**proto, "seeds": [0, 1], "studies": {
        "a": {"vary": {"c1": [0.25]}, "seeds": [2, 0]},
        "b": {"vary": {"c1": [0.25, 1.0]}}}}
    runs = pr.expand_runs(proto)
    params = {**proto, "runs": runs}
    assert pr.config_seeds(params, "pal-c1_0p25") == [2, 0, 1] and pr.config_seeds(params, "pal-c1_1") == [0, 1]
    assert pr.config_seeds(params, "base") == [2, 0, 1]
    assert "seeds" not in runs["b"]["pal-c1_1"] and runs["a"]["pal-c1_0p25"]["seeds"] == [2, 0, 1]


def test_paper_grid_on_rafdb():
    proto = pr.load_protocol("rafdb-vgg16")
    rows = pr.grid(proto)
    layers = [r["settings"]["layer"] for r in rows if r["study"] == "layers" and not r["baseline"]]
    assert layers == [f"conv{i}" for i in range(1, 14)]
    ablation = {(r["settings"]["method"], r["settings"]["strategy"], r["settings"]["c1"])
                for r in rows if r["study"] == "ablation" and not r["baseline"]}
    assert ablation == {("grad", "all", 1.0), ("grad", "mean", 1.0), ("grad_input", "mean", 1.0),
                        ("grad", "mean", 0.5), ("grad_input", "mean", 0.5)}  # the paper's Table I rows
    assert [r["settings"]["c1"] for r in rows if r["study"] == "channels" and not r["baseline"]] == [0.25, 0.5, 0.75, 1.0]
    assert [r["settings"]["landmark_noise"] for r in rows if r["study"] == "noise" and not r["baseline"]] == list(range(6))
    t = proto["train"]
    assert (t["lr"], t["batch_size"], t["epochs"], t["size"]) == (5e-5, 16, 75, 224)
    aff = pr.load_protocol("affectnet-resnet50")["train"]
    assert (aff["lr"], aff["max_steps"], aff["balanced"]) == (4e-5, 40000, True)


def test_backbones_protocol_compares_each_backbone_with_its_own_baseline():
    """synthetic-backbones: one comparison study per backbone, each fine-tuning its own pretraining; its
    baseline is the same backbone with pal_weight 0; every configuration has its own name (and run folders)."""
    proto = pr.load_protocol("synthetic-backbones")
    cpu = pr.load_protocol("synthetic-cpu")
    assert proto["data"] == cpu["data"] and proto["landmarks"] == cpu["landmarks"]
    assert proto["pretraining"]["synth-faces"] == cpu["pretraining"]["synth-faces"]
    studies = [s for s in proto["studies"] if s == "comparison" or s.startswith("comparison-")]
    assert studies == list(proto["studies"]) and len(studies) >= 4
    archs = set()
    for study in studies:
        base, pal = pr.study_configs(proto, study)
        assert base["pal_weight"] == 0 and pal["pal_weight"] == 1.0
        assert {k: v for k, v in base.items() if k not in pr.PAL_KEYS + ("pal_weight",)} == \
               {k: v for k, v in pal.items() if k not in pr.PAL_KEYS + ("pal_weight",)}  # same backbone, layer, start
        name = next(n for n in proto["pretraining"] if pal["weights"] == pr.pretrain_weights(n))
        assert {k: proto["pretraining"][name]["train"][k] for k in ("arch", "width")} == \
               {k: pal[k] for k in ("arch", "width")}
        assert study == "comparison" or study == f"comparison-{pal['arch']}"
        archs.add(pal["arch"])
    assert len(archs) == len(studies)  # one family per study
    rows = pr.grid(proto)
    names = {r["config"] for r in rows}
    assert len(names) == 2 * len(studies) and len({repr(r["settings"]) for r in rows}) == len(names)
    assert "base-resnet18-width_0p25-weights_synth-faces-resnet18-layer3" in names  # the pretraining by its name
    runs = pr.expand_runs(proto)
    assert len(runs["baseline"]) == len(studies) and set(runs) == {"baseline", *studies}


def _backbones(study: str = "comparison-resnet18", **set_changes) -> dict:
    proto = pr.load_protocol("synthetic-backbones")
    proto["studies"][study]["set"] = {**proto["studies"][study].get("set", {}), **set_changes}
    return proto


@pytest.mark.parametrize(
    "proto, needle",
    [
        (_backbones(weights="pretrain/synth-faces/weights.pt"),
         "studies.comparison-resnet18: weights 'pretrain/synth-faces/weights.pt' are pretraining.synth-faces's "
         "(arch 'vgg16_bn'), but the study's arch is 'resnet18'"),
        (_backbones(width=0.5),
         "studies.comparison-resnet18: weights 'pretrain/synth-faces-resnet18/weights.pt' are "
         "pretraining.synth-faces-resnet18's (width 0.25), but the study's width is 0.5"),
        (_backbones("comparison", arch="resnet18", width=0.25, layer="layer3"),
         "studies.comparison: weights 'pretrain/synth-faces/weights.pt' are pretraining.synth-faces's (arch "
         "'vgg16_bn'), but the study's arch is 'resnet18'"),
        (_backbones(weights="pretrain/nope/weights.pt"),
         "studies.comparison-resnet18.weights 'pretrain/nope/weights.pt': no pretraining writes it; expected one of "
         "pretrain/synth-faces-convnext_tiny/weights.pt"),
        (_backbones(weights="external/weights/resnet18.pth"),
         "studies.comparison-resnet18.weights 'external/weights/resnet18.pth': the train stage depends only on "
         "train.weights and pretrain/"),
    ],
)
def test_a_study_loads_only_weights_of_its_own_backbone(proto, needle):
    """Weights under pretrain/ must come from a pretraining entry with the configuration's arch and width; any
    other file must be train.weights (what dvc.yaml's train stage depends on). One line, naming the study."""
    with pytest.raises(ConfigError) as e:
        pr.validate_protocol(proto, "p.yaml")
    assert str(e.value).startswith(f"p.yaml: {needle}") and "\n" not in str(e.value)


def test_a_pretraining_of_another_backbone_is_accepted_where_a_study_uses_it():
    """The smoke protocol with a second pretraining (another width) and a study that fine-tunes it: valid, and
    the baseline of that study is its own backbone; train.weights stays with train's backbone."""
    proto = pr.load_protocol("smoke")
    entry = proto["pretraining"]["smoke-faces"]
    proto["pretraining"]["smoke-faces-narrow"] = {**entry, "train": {**entry["train"], "width": 0.03125}}
    proto["studies"]["comparison-narrow"] = {"set": {"width": 0.03125,
                                                     "weights": "pretrain/smoke-faces-narrow/weights.pt"},
                                             "vary": {"pal_weight": [1.0]}}
    pr.validate_protocol(proto, "p.yaml")
    base, pal = pr.study_configs(proto, "comparison-narrow")
    assert base["width"] == pal["width"] == 0.03125 and base["weights"] == "pretrain/smoke-faces-narrow/weights.pt"
    proto["train"]["width"] = 0.03125  # the default backbone now disagrees with train.weights' pretraining
    with pytest.raises(ConfigError, match=r"^p.yaml: train: weights 'pretrain/smoke-faces/weights.pt' are "
                                          r"pretraining.smoke-faces's \(width 0.0625\), but train.width is 0.03125"):
        pr.validate_protocol(proto, "p.yaml")


def _proto(**changes):
    proto = pr.load_protocol("smoke")
    for key, value in changes.items():
        section, _, sub = key.partition(".")
        if sub:
            proto[section][sub] = value
        else:
            proto[section] = value
    return proto


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"studies": {"noise": {"vary": {"landmark_noise": [0, 3]}}}}, "landmark_noise 3 is not among priors.landmark_noise"),
        ({"studies": {"bad": {"vary": {"c1": [0.0]}}}}, "studies.bad"),
        ({"studies": {"bad": {"vary": {"colour": ["red"]}}}}, "unknown key(s) colour"),
        ({"studies": {"bad": {"vary": {"layer": []}}}}, "vary.layer: expected a non-empty list"),
        ({"studies": {"bad": {"grid": {}}}}, "expected keys among title, set, vary"),
        ({"studies": {"bad": {"vary": [{}]}}}, "vary: expected a mapping of lists or a non-empty list of mappings"),
        ({"studies": {"bad": {"vary": "layer"}}}, "vary: expected a mapping of lists or a non-empty list of mappings"),
        ({"seeds": [0, 0]}, "repeated seed"),
        ({"seeds": []}, "seeds: expected a non-empty list"),
        ({"data": {"name": "a/b", "command": "synth", "input": ".", "args": {}}}, "data.name"),
        ({"transfer": {"b": {"command": "synth", "input": ".", "args": {}, "study": "decoys"}}},
         "transfer.b.study: 'decoys' is not a study"),
        ({"transfer": {"b": {"command": "synth", "args": {}}}}, "transfer.b: expected the keys command, input, args"),
        ({"transfer": {"b": {"command": "synth", "input": ".", "args": {}, "split": "dev"}}}, "transfer.b.split"),
        ({"transfer": {"smoke": {"command": "synth", "input": ".", "args": {}}}}, "transfer.smoke: expected a dataset"),
    ],
)
def test_bad_protocols_name_the_key(change, needle):
    with pytest.raises(ConfigError) as e:
        pr.validate_protocol(_proto(**change), "p.yaml")
    assert needle in str(e.value) and str(e.value).startswith("p.yaml")


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"priors": {"noise_sigmas": [0, 4]}}, "p.yaml: priors: key 'noise_sigmas' is now 'landmark_noise'"),
        ({"reports": {"sigma": 4}}, "p.yaml: reports: key 'sigma' is now 'landmark_noise'"),
        ({"train": {**pr.load_protocol("smoke")["train"], "weight": 1.0}}, "train: key 'weight' is now 'pal_weight'"),
        ({"studies": {"noise": {"vary": {"noise": [0, 4]}}}}, "key 'noise' is now 'landmark_noise'"),
        ({"studies": {"w": {"set": {"sigma": 2.0}}}}, "key 'sigma' is now 'prior_sigma'"),
        ({"studies": {"w": {"vary": {"lambda": [0.3]}}}}, "key 'lambda' is now 'pal_weight'"),
        ({"reports": {"landmark_noise": 3}}, "reports.landmark_noise 3 is not among priors.landmark_noise"),
        ({"reports": {"n_images": 0}}, "reports.n_images: expected an integer >= 1"),
    ],
)
def test_old_names_and_bad_reports_fail_before_anything_trains(change, needle):
    """A renamed key (one name per parameter) or a bad `reports` value fails at `palbench protocol`, naming
    the new key, not after the grid has trained."""
    with pytest.raises(ConfigError) as e:
        pr.validate_protocol(_proto(**change), "p.yaml")
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_renamed_cli_flag_names_the_new_one(tmp_path, capsys):
    assert main(["priors", str(tmp_path), str(tmp_path / "o"), "--noise-sigmas", "0", "4"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "palbench: error: option --noise-sigmas is now --landmark-noise (one name per parameter)"
    # a train key DVC writes as a flag (${train}, `dvc exp run -S train.weight=1`), with DVC's underscores
    assert main(["train", str(tmp_path / "run"), "--data", str(tmp_path), "--prior_sigma", "1", "--weight", "1"]) == 2
    assert capsys.readouterr().err.strip() == "palbench: error: option --weight is now --pal-weight (one name per parameter)"
    assert not (tmp_path / "run").exists()


def test_missing_section_and_unknown_protocol(tmp_path, capsys):
    proto = pr.load_protocol("smoke")
    del proto["seeds"]
    with pytest.raises(ConfigError, match="missing key"):
        pr.validate_protocol(proto, "x")
    assert main(["protocol", "nope", "--params", str(tmp_path / "p.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "protocol not found; available: " in err and "synthetic-cpu" in err
    assert not (tmp_path / "p.yaml").exists()


def test_protocol_names_resolve_in_the_current_project_first(tmp_path, monkeypatch, capsys):
    """A user's protocol in <project>/benchmarks/protocols is found by its name, and shadows none of
    palbench's unless it has the same name (then the project's wins)."""
    mine = tmp_path / "benchmarks" / "protocols"
    mine.mkdir(parents=True)
    proto = pr.load_protocol("smoke")
    (mine / "my-photos.yaml").write_text(yaml.safe_dump({**proto, "protocol": "my-photos"}))
    (mine / "smoke.yaml").write_text(yaml.safe_dump({**proto, "seeds": [4, 5]}))
    monkeypatch.chdir(tmp_path)
    assert {"my-photos", "smoke", "synthetic-cpu"} <= set(pr.available_protocols())
    assert main(["protocol", "my-photos"]) == 0 and "my-photos" in capsys.readouterr().out
    assert pr.read_params(tmp_path / "params.yaml")["protocol"] == "my-photos"
    assert pr.load_protocol("smoke")["seeds"] == [4, 5] and pr.load_protocol("synthetic-cpu")["seeds"] == [0, 1, 2, 3, 4]
    assert main(["protocol", "nope"]) == 2 and "my-photos" in capsys.readouterr().err


def test_protocol_cli_writes_and_refreshes_params(tmp_path, capsys):
    p = tmp_path / "params.yaml"
    assert main(["protocol", "smoke", "--params", str(p)]) == 0
    assert "12 configurations, 14 runs (seeds [0] unless a study sets its own)" in capsys.readouterr().out
    params = pr.read_params(p)
    assert params["protocol"] == "smoke" and len(pr.run_configs(params)) == 12
    # a study edited in params.yaml: runs are stale until --refresh
    params["studies"]["channels"]["vary"]["c1"] = [0.25, 0.5, 0.75]
    p.write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match="runs do not match studies .*palbench protocol --refresh"):
        pr.read_params(p)
    assert main(["protocol", "--refresh", "--params", str(p)]) == 0
    assert "pal-c1_0p75" in pr.read_params(p)["runs"]["channels"]
    assert main(["protocol", "--list"]) == 0 and "rafdb-vgg16" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------- aggregate


def _fake_runs(root, params, acc):
    """Run folders as `palbench train --evaluate test` writes them; acc(config, seed) -> test accuracy."""
    for name in pr.run_names(params):
        config, seed = parse_run_name(name)
        run = root / "runs" / name
        (run / "test").mkdir(parents=True)
        settings = params["runs"][pr.run_configs(params)[config]][config]
        cfg = pr.TrainConfig.from_dict({**params["train"], "data": "data/smoke",
                                        **{k: v for k, v in settings.items() if k != "seeds"}, "seed": seed})
        (run / "config.json").write_text(json.dumps(cfg.to_dict()))
        (run / "metrics.json").write_text(json.dumps({"best_val_accuracy": 0.5, "seconds": 3.0}))
        (run / "test" / "metrics.json").write_text(json.dumps({
            "accuracy": acc(config, int(seed)), "alignment_constrained": 0.9 if config != "base" else 0.2,
            "decoy_share": 0.01}))


def test_aggregate_tables_statistics_and_metrics(tmp_path):
    proto = pr.load_protocol("smoke")
    proto["seeds"] = [0, 1, 2, 3]
    p = pr.write_params(proto, tmp_path / "params.yaml")
    params = pr.read_params(p)
    rng = np.random.default_rng(0)
    noise = {(c, s): rng.normal(0, 0.01) for c in {r["config"] for r in pr.grid(params)} for s in range(4)}

    def acc(config, seed):
        return 0.5 + 0.02 * seed + (0.05 if config == "pal" else 0) + noise[config, seed]

    _fake_runs(tmp_path, params, acc)
    m = aggregate(p, tmp_path / "runs", tmp_path / "results", tmp_path / "metrics.json")
    runs = pd.read_csv(tmp_path / "results" / "runs.csv")
    assert len(runs) == len(pr.run_names(params)) and m["n_runs"] == len(runs)
    for study in params["studies"]:
        table = pd.read_csv(tmp_path / "results" / f"{study}.csv")
        configs = [r["config"] for r in pr.grid(params) if r["study"] == study]
        assert table["config"].tolist() == configs  # baseline first, the protocol's order
        assert table["baseline"].tolist() == [True] + [False] * (len(configs) - 1)
        assert (table["n"] == len(pr.study_seeds(params, study))).all() and np.isfinite(table[["mean", "std", "ci_low", "ci_high"]]).all().all()
    layers = pd.read_csv(tmp_path / "results" / "layers.csv")
    assert layers["layer"].tolist()[1:] == ["conv4", "conv7"] and pd.isna(layers["layer"][0])
    ch = pd.read_csv(tmp_path / "results" / "channels.csv").set_index("config")
    pal = [acc("pal", s) for s in range(4)]
    base = [acc("base", s) for s in range(4)]
    ref = stats.ttest_rel(pal, base)
    assert ch.loc["pal", "mean"] == pytest.approx(np.mean(pal))
    assert (ch.loc["pal", "diff"], ch.loc["pal", "p"]) == pytest.approx((np.mean(pal) - np.mean(base), ref.pvalue))
    assert ch.loc["pal", "test_alignment_constrained_mean"] == pytest.approx(0.9)
    assert m["channels"]["pal"]["p"] == pytest.approx(ref.pvalue, rel=1e-4)
    assert json.loads((tmp_path / "metrics.json").read_text())["protocol"] == "smoke"
    # settings come from each run's config.json: landmark_noise is a column like the others
    noise_runs = runs[runs["config"] == "pal-landmark_noise_4"]
    assert len(noise_runs) == 4 and (noise_runs["landmark_noise"] == 4).all()


def test_aggregate_reads_settings_from_config_json_not_the_folder_name(tmp_path, capsys):
    proto = pr.load_protocol("smoke")
    p = pr.write_params(proto, tmp_path / "params.yaml")
    params = pr.read_params(p)
    _fake_runs(tmp_path, params, lambda config, seed: 0.5)
    config = tmp_path / "runs" / "noise" / "pal-landmark_noise_4" / "s0" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "landmark_noise": 0}))  # folder says 4
    assert main(["aggregate", "--params", str(p), "--runs", str(tmp_path / "runs"), "--out",
                 str(tmp_path / "results"), "--metrics", str(tmp_path / "m.json")]) == 2
    err = capsys.readouterr().err
    assert (f"{config}: not the run of configuration pal-landmark_noise_4 with seed 0: landmark_noise 0 (expected 4)"
            in err and err.count("\n") == 1)
    assert not (tmp_path / "results").exists()


def test_aggregate_names_a_missing_run_and_writes_nothing(tmp_path, capsys):
    p = pr.write_params(pr.load_protocol("smoke"), tmp_path / "params.yaml")
    params = pr.read_params(p)
    _fake_runs(tmp_path, params, lambda c, s: 0.5)
    (tmp_path / "runs" / "ablation" / "pal" / "s0" / "test" / "metrics.json").unlink()
    code = main(["aggregate", "--params", str(p), "--runs", str(tmp_path / "runs"),
                 "--out", str(tmp_path / "results"), "--metrics", str(tmp_path / "m.json")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "ablation/pal/s0/test/metrics.json: not found" in err
    assert not (tmp_path / "results").exists() and not (tmp_path / "m.json").exists()
    with pytest.raises(DataError):
        aggregate(p, tmp_path / "nowhere", tmp_path / "results", tmp_path / "m.json")
