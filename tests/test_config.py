"""The configuration layer: torch-free commands, one name per parameter, landmark_noise in every run's config."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from palbench.cli import main
from palbench.config import (
    ARCHS,
    METHODS,
    STRATEGIES,
    PalConfig,
    TrainConfig,
    config_name,
    constrained_channels,
    landmark_set_path,
    noise_file,
    parse_run_name,
    run_name,
)
from palbench.errors import ConfigError

from conftest import write_tiny_dataset

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


def imported_torch(args: list[str], cwd: Path = ROOT) -> tuple[bool, subprocess.CompletedProcess]:
    """Run ``python -X importtime ARGS``; whether the process imported torch (importtime lists every module)."""
    res = subprocess.run([sys.executable, "-X", "importtime", *args], cwd=cwd, capture_output=True, text=True,
                         timeout=600)
    modules = {line.rsplit("|", 1)[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
    return "torch" in modules, res


def test_config_package_and_cli_help_import_no_torch():
    torch, res = imported_torch(["-c", "import palbench.config"])
    assert res.returncode == 0 and not torch
    torch, res = imported_torch(["-m", "palbench.cli", "--help"])
    assert res.returncode == 0 and "protocol" in res.stdout and not torch
    for command in ("protocol", "aggregate", "report", "train"):
        torch, res = imported_torch(["-m", "palbench.cli", command, "--help"])
        assert res.returncode == 0 and not torch, command


def test_protocol_command_imports_no_torch(tmp_path):
    torch, res = imported_torch(["-m", "palbench.cli", "protocol", "smoke", "--params", str(tmp_path / "p.yaml")])
    assert res.returncode == 0, res.stderr[-2000:]
    assert not torch and (tmp_path / "p.yaml").is_file()


def test_protocol_new_checks_any_backbone_and_width_without_torch(tmp_path):
    """`protocol new --backbone ARCH --width W`: written, or refused in one line (exit 2), before torch loads."""
    from palbench.data.synth.photos import make_photo_folder

    make_photo_folder(tmp_path / "external" / "p", subjects=6, classes=["happiness", "sadness"], seed=1)
    new = ["-m", "palbench.cli", "protocol", "new", "p", "--folder", "external/p/labels.csv"]
    torch, res = imported_torch([*new, "--backbone", "regnet_y_800mf", "--width", "0.5", "--layer", "trunk_output"],
                                cwd=tmp_path)
    err = [line for line in res.stderr.splitlines() if not line.startswith("import time:")]
    assert res.returncode == 2 and not torch and err == [
        "palbench: error: --width: regnet_y_800mf has no width knob (width 1 only); families with one: vgg, resnet, "
        "convnext, efficientnet, mobilenet_v2, mobilenet_v3, vit, swin"], err
    assert not (tmp_path / "benchmarks" / "protocols" / "p.yaml").exists()
    torch, res = imported_torch([*new, "--backbone", "efficientnet_b0", "--width", "0.5", "--layer", "features.5"],
                                cwd=tmp_path)
    assert res.returncode == 0 and not torch, res.stderr[-2000:]
    assert "arch: efficientnet_b0" in (tmp_path / "benchmarks" / "protocols" / "p.yaml").read_text()


def test_width_is_checked_in_the_configuration_layer():
    """One check of a width (check_width), before torch: TrainConfig's and build_model's."""
    from palbench.config import check_width

    check_width("resnet18", 0.25)
    check_width("regnet_y_800mf", 1)
    for arch, width, message in (("regnet_y_800mf", 0.5, "width: regnet_y_800mf has no width knob"),
                                 ("resnet18", 0, "width: expected a number in \\(0, 1\\], got 0"),
                                 ("resnet18", True, "width: expected a number"), ("resnet18", "0.5", "expected a number")):
        with pytest.raises(ConfigError, match=message):
            check_width(arch, width)
        with pytest.raises(ConfigError, match=message):
            TrainConfig(data="d", arch=arch, width=width)


def test_vit_size_is_a_multiple_of_its_patch_before_torch(tmp_path):
    """A ViT's size must be a multiple of its patch (vit_b_32: 32): TrainConfig and `protocol new` refuse 48 px in
    one line before torch loads, instead of failing at the first forward."""
    from palbench.config import check_size

    check_size("vit_b_16", 48)
    check_size("vit_h_14", 56)
    check_size("resnet18", 47)
    for arch, size, message in (("vit_b_32", 48, "size: vit_b_32 cuts the image into 32×32 patches; expected a "
                                                 "multiple of 32 \\(e.g. 32 or 64\\), got 48"),
                                ("vit_h_14", 48, "multiple of 14 \\(e.g. 42 or 56\\), got 48"),
                                ("resnet18", 0, "size: expected an integer >= 1, got 0")):
        with pytest.raises(ConfigError, match=message):
            check_size(arch, size)
        with pytest.raises(ConfigError, match=message):
            TrainConfig(data="d", arch=arch, size=size, width=0.25)
    from palbench.data.synth.photos import make_photo_folder

    make_photo_folder(tmp_path / "external" / "p", subjects=6, classes=["happiness", "sadness"], seed=1)
    torch, res = imported_torch(["-m", "palbench.cli", "protocol", "new", "p", "--folder", "external/p/labels.csv",
                                 "--backbone", "vit_b_32", "--layer", "encoder.layers.encoder_layer_6"], cwd=tmp_path)
    err = [line for line in res.stderr.splitlines() if not line.startswith("import time:")]
    assert res.returncode == 2 and not torch and err == [
        "palbench: error: --size: vit_b_32 cuts the image into 32×32 patches; expected a multiple of 32 "
        "(e.g. 32 or 64), got 48"], err
    assert not (tmp_path / "benchmarks" / "protocols" / "p.yaml").exists()


def test_aggregate_and_report_commands_import_no_torch(smoke_project):
    """On the smoke pipeline's runs: aggregating and running a report (notebooks run in their own kernels)."""
    root, _ = smoke_project
    torch, res = imported_torch(["-m", "palbench.cli", "aggregate", "--out", "results_again", "--metrics", "m.json"],
                                cwd=root)
    assert res.returncode == 0, res.stderr[-2000:]
    assert not torch
    torch, res = imported_torch(["-m", "palbench.cli", "report", "ablation", "--out", "reports_again", "--workers", "1"],
                                cwd=root)
    assert res.returncode == 0, res.stderr[-2000:]
    assert not torch and (root / "reports_again" / "ablation.html").is_file()


def test_vocabulary():
    assert METHODS == ("grad", "grad_input", "gradcam") and STRATEGIES == ("all", "mean")
    assert {"vgg16", "vgg16_bn", "resnet50"} <= set(ARCHS)
    assert [constrained_channels(64, c) for c in (0.25, 0.5, 1.0, 0.001)] == [16, 32, 64, 1]
    with pytest.raises(ConfigError, match="c1 must be in"):
        constrained_channels(64, 0)
    defaults = {"layer": "conv10", "method": "grad_input", "c1": 0.5, "pal_weight": 1.0, "landmark_noise": 0}
    assert config_name({**defaults, "pal_weight": 0}, defaults) == "base"
    assert config_name({**defaults, "layer": "conv4", "method": "grad"}, defaults) == "pal-conv4-grad"
    assert config_name({**defaults, "landmark_noise": 4, "c1": 0.25}, defaults) == "pal-c1_0p25-landmark_noise_4"
    assert config_name({**defaults, "pal_weight": 0.3}, defaults) == "pal-pal_weight_0p3"
    assert parse_run_name(run_name("pal-c1_0p25", 12)) == ("pal-c1_0p25", 12)
    assert run_name("pal-c1_0p25", 12, "channels") == "channels/pal-c1_0p25/s12"
    assert parse_run_name("channels/pal-c1_0p25/s12") == ("pal-c1_0p25", 12)
    with pytest.raises(ConfigError, match=r"expected \[<group>/\]<configuration>/s<seed>"):
        parse_run_name("pal-c1_0p25")
    assert noise_file(2) == "landmarks_noise2.npy" and noise_file(2.5) == "landmarks_noise2.5.npy"


def test_pal_and_train_config_use_the_one_names():
    pal = TrainConfig(data="d", landmark_noise=2.0, pal_weight=0.3, prior_sigma=1.5).pal
    assert pal == PalConfig("conv10", "grad_input", "mean", 0.5, pal_weight=0.3, prior_sigma=1.5)
    for bad, needle in (({"pal_weight": -1}, "pal_weight"), ({"prior_sigma": 0}, "prior_sigma"),
                        ({"landmark_noise": -1}, "landmark_noise"), ({"arch": "vgg17"}, "arch")):
        with pytest.raises(ConfigError, match=needle):
            TrainConfig(data="d", **bad)
    for old, new in (("weight", "pal_weight"), ("sigma", "prior_sigma"), ("noise_sigma", "landmark_noise")):
        with pytest.raises(ConfigError, match=f"key '{old}' is now '{new}'"):
            TrainConfig.from_dict({"data": "d", old: 1.0}, where="cfg.yaml")


def test_defaults_are_declared_once():
    """PalConfig declares the PAL settings' defaults; TrainConfig, canonical() and the core read them. A protocol's
    effective training settings come from one function (train_settings); width is checked in one place."""
    import dataclasses
    import inspect

    from palbench.config import check_width, train_settings
    from palbench.config.protocol import canonical

    train = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    pal = {f.name: f.default for f in dataclasses.fields(PalConfig)}
    assert pal == {k: train[k] for k in pal} and TrainConfig(data="d").pal == PalConfig()
    source = inspect.getsource(TrainConfig)
    assert all(f"{k}: " in source and f"= PalConfig.{k}" in source for k in pal)
    # canonical(): a configuration without pal_weight has PalConfig's (PAL on), whatever the protocol omits
    assert canonical({"c1": 0.25}, {}) == {"c1": 0.25}
    assert canonical({"c1": 0.25, "pal_weight": 0}, {"c1": 0.5}) == {"c1": 0.5, "pal_weight": 0}
    proto = {"train": {"c1": 0.5, "arch": "vgg16"}}
    assert train_settings(proto) == {"landmark_noise": 0, "c1": 0.5, "arch": "vgg16"}
    assert train_settings({"train": {"landmark_noise": 2}})["landmark_noise"] == 2
    from palbench.priors import render_priors

    assert inspect.signature(render_priors).parameters["prior_sigma"].default == PalConfig.prior_sigma
    for arch, width, needle in (("vgg16", 0, r"width: expected a number in \(0, 1\], got 0"),
                                ("vgg16", True, "got True"), ("regnet_y_800mf", 0.5, "regnet_y_800mf has no width knob")):
        with pytest.raises(ConfigError, match=needle):
            check_width(arch, width)
        with pytest.raises(ConfigError, match=needle):
            TrainConfig(data="d", arch=arch, width=width)
    check_width("resnet18", 0.25)


def test_landmark_set_path(tmp_path):
    (tmp_path / noise_file(0)).write_bytes(b"")
    (tmp_path / noise_file(4)).write_bytes(b"")
    (tmp_path / "priors.json").write_text(json.dumps({"files": {"0": noise_file(0), "4": noise_file(4)}}))
    assert landmark_set_path(tmp_path) == tmp_path / "landmarks_noise0.npy"
    assert landmark_set_path(tmp_path, 4) == tmp_path / "landmarks_noise4.npy"
    assert landmark_set_path(None) is None and landmark_set_path(tmp_path / "x.npy") == tmp_path / "x.npy"
    with pytest.raises(ConfigError, match=r"no landmark set for landmark_noise 3 \(the priors stage drew 0, 4\)"):
        landmark_set_path(tmp_path, 3)
    with pytest.raises(ConfigError, match="selects a landmark set of the priors stage"):
        landmark_set_path(tmp_path / "x.npy", 4)
    with pytest.raises(ConfigError, match="selects a landmark set of the priors stage"):
        landmark_set_path(None, 4)


def test_run_config_records_landmark_noise_and_reads_its_set(tmp_path, capsys):
    """`palbench train --landmarks PRIORS --landmark-noise 2`: config.json says 2, and the run read the σ = 2 set."""
    from palbench.data.canonical import load_landmark_set, read_dataset
    from palbench.prior_sets import build_prior_sets

    data = tmp_path / "data"
    write_tiny_dataset(data, n=24, size=(32, 32))
    build_prior_sets(data, tmp_path / "priors", [0, 2], preview=0)
    common = ["train", "--data", str(data), "--landmarks", str(tmp_path / "priors"), "--arch", "vgg16",
              "--width", "0.0625", "--size", "32", "--layer", "conv10", "--epochs", "1", "--max-steps", "1",
              "--batch-size", "4", "--no-progress"]
    assert main([*common[:1], str(tmp_path / "run"), *common[1:], "--landmark-noise", "2"]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["landmark_noise"] == 2.0 and config["landmarks"] == str(tmp_path / "priors")
    ds = read_dataset(data)
    noisy, clean = (load_landmark_set(ds, tmp_path / "priors", s) for s in (2, 0))
    assert np.array_equal(noisy, np.load(tmp_path / "priors" / "landmarks_noise2.npy"), equal_nan=True)
    assert not np.array_equal(noisy, clean, equal_nan=True)
    capsys.readouterr()
    assert main([*common[:1], str(tmp_path / "run3"), *common[1:], "--landmark-noise", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no landmark set for landmark_noise 3" in err
    assert not (tmp_path / "run3").exists()


def test_package_has_no_import_cycle():
    """No palbench module imports, even lazily inside a function, a module that (transitively) imports it."""
    import ast

    from test_dvc_deps import _imports

    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
               for p in (ROOT / "palbench").rglob("*.py")}
    graph = {m: _imports(ast.parse(p.read_text())) - {m} for m, p in modules.items()}

    def reaches(start: str, goal: str) -> bool:
        todo, seen = [start], set()
        while todo:
            m = todo.pop()
            if m == goal:
                return True
            if m not in seen:
                seen.add(m)
                todo += graph.get(m, ())
        return False

    cycles = sorted(f"{m} -> {d}" for m, deps in graph.items() for d in deps if d != m and reaches(d, m)
                    and not m.startswith(d + "."))  # a module may import its own package's __init__ names
    assert not cycles, cycles
