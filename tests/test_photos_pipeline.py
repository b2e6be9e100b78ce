"""A user's own labelled photos, end to end: `palbench protocol new` + `dvc repro` from a folder the test makes
(synthetic faces rendered large, scaled, rotated and pasted on backgrounds; a subject column; no `fear`
photo), through import → align → landmarks → priors → train → aggregate → reports, with no hand edit."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from palbench.cli import main
from palbench.config.new import DEFAULT_BACKBONE, cpu_epochs, new_protocol, split_fractions
from palbench.data.canonical import CLASSES
from palbench.data.synth.photos import make_photo_folder
from pipeline_project import BIN, commit, make_project, run

REPORTS = ("claims", "layers", "ablation", "channels", "sensitivity", "confusion", "attributions", "comparison")


@pytest.fixture(scope="module")
def photo_project(tmp_path_factory):
    """The project after `protocol new mine` (every study, 1 epoch, 2 seeds) and `dvc repro`."""
    import torch

    from palbench.models import build_model

    root = make_project(tmp_path_factory.mktemp("photos") / "project")
    make_photo_folder(root / "external" / "mine", subjects=10, classes=[c for c in CLASSES if c != "fear"], seed=0)
    # Dataset B for the transfer study: other people, with fear (never trained on) and without disgust.
    make_photo_folder(root / "external" / "other", subjects=6, classes=[c for c in CLASSES if c != "disgust"],
                      seed=9)
    torch.manual_seed(0)
    torch.save(build_model("vgg16_bn", width=0.125, num_classes=7).state_dict(), root / "external" / "start.pt")
    commit(root, "photos")
    res = run([str(BIN / "palbench"), "protocol", "new", "mine", "--folder", "external/mine/labels.csv",
               "--backbone", "vgg16_bn", "--weights", "external/start.pt", "--epochs", "1", "--seeds", "0,1",
               "--studies", "comparison,ablation,channels,noise,layers", "--transfer", "external/other/labels.csv"],
              root)
    assert "next: palbench protocol mine && dvc repro" in res.stdout
    run([str(BIN / "palbench"), "protocol", "mine"], root)
    repro = run([str(BIN / "dvc"), "repro"], root, timeout=1200)
    return root, repro


def test_protocol_new_then_dvc_repro_renders_every_report(photo_project):
    root, repro = photo_project
    proto = yaml.safe_load((root / "benchmarks" / "protocols" / "mine.yaml").read_text())
    assert proto["data"]["input"] == "external/mine" and proto["data"]["args"]["align"] == "dlib"
    assert proto["landmarks"] == {"backend": "file"} and proto["train"]["weights"] == "external/start.pt"
    meta = json.loads((root / "data" / "mine" / "meta.json").read_text())
    assert meta["image_size"] == [112, 112] and meta["align"]["no_face"] <= 6  # 60 photos, dlib finds most faces
    assert "subject-disjoint" in meta["subjects"]
    assert sum(meta["counts"][s]["fear"] for s in ("train", "val", "test")) == 0
    samples = pd.read_csv(root / "data" / "mine" / "samples.csv")
    by_split = samples.groupby("split")["subject"].apply(set)
    assert not (by_split["train"] & by_split["test"]) and not (by_split["train"] & by_split["val"])
    for name in REPORTS:
        assert (root / "reports" / f"{name}.html").is_file(), name
    index = (root / "reports" / "index.html").read_text()
    assert "landmarks_sheet.png" in index and (root / "reports" / "figures" / "landmarks_sheet.png").is_file()
    confusion = (root / "reports" / "confusion.html").read_text()
    assert "absent" in confusion  # fear has no test image: shown as absent, not a crash or a 0 recall
    runs = pd.read_csv(root / "results" / "runs.csv")
    assert len(runs) == 2 * runs["config"].nunique() and runs["test_accuracy"].between(0, 1).all()


def test_transfer_tests_the_comparison_runs_on_the_other_photos(photo_project):
    """Train on A, test on B: B's fear photos (a class A lacks) are dropped and counted, disgust (a class B
    lacks) is absent; the comparison report shows the table."""
    root, _ = photo_project
    runs = pd.read_csv(root / "transfer" / "other" / "runs.csv")
    assert len(runs) == 2 * 2  # baseline and PAL x 2 seeds
    assert (runs["dropped_untrained"] > 0).all() and runs["absent_classes"].str.contains("disgust").all()
    assert runs["transfer_accuracy"].between(0, 1).all() and runs["test_accuracy"].notna().all()
    meta = json.loads((root / "data" / "other" / "meta.json").read_text())
    assert sum(meta["counts"]["test"].values()) == runs["n"].iloc[0] + runs["dropped_untrained"].iloc[0]
    summary = pd.read_csv(root / "transfer" / "other" / "summary.csv")
    assert list(summary["config"]) == ["baseline", "pal"] and summary["n"].tolist() == [2, 2]
    html = (root / "reports" / "comparison.html").read_text()
    assert "Tested on another dataset" in html and "Trained on mine, tested on other" in html
    assert (root / "reports" / "tables" / "transfer_other.csv").is_file()


def test_changing_one_photo_reimports(photo_project):
    """The images folder is the dataset stage's dependency (not only the CSV)."""
    root, _ = photo_project
    status = run([str(BIN / "dvc"), "status", "dataset"], root).stdout
    assert "up to date" in status or status.strip() == ""
    photo = next((root / "external" / "mine" / "photos").rglob("*.png"))
    data = photo.read_bytes()
    try:
        photo.write_bytes(data + b"\0")  # same image, different bytes
        assert "dataset" in run([str(BIN / "dvc"), "status", "dataset"], root).stdout
    finally:
        photo.write_bytes(data)


# ---------------------------------------------------------------- protocol new: sizing and bad input


def test_split_shares_give_val_and_test_subjects():
    assert split_fractions(1000, 100) == (0.8, 0.1, 0.1)
    assert split_fractions(60, 10) == (0.6, 0.2, 0.2)  # 2 subjects each for val and test
    assert split_fractions(500, None) == (0.8, 0.1, 0.1)
    with pytest.raises(Exception, match="3 subjects: too few"):
        split_fractions(30, 3)


def test_epochs_follow_the_cpu_budget():
    small = cpu_epochs(200, "vgg16_bn", 0.125, 64, runs=6, budget_minutes=15)
    large = cpu_epochs(20000, "vgg16_bn", 0.125, 64, runs=6, budget_minutes=15)
    assert small > large >= 1 and small <= 60
    assert cpu_epochs(5000, "vgg16_bn", 0.125, 64, 6, 30) >= 2 * cpu_epochs(5000, "vgg16_bn", 0.125, 64, 6, 15) - 1
    # dlib's face network, measured at its own width 1: 560 crops, 6 runs, 15 minutes -> 20 epochs (0.013 s a crop)
    assert cpu_epochs(560, "dlib_face_resnet", 1.0, 112, runs=6, budget_minutes=15) == 20


def test_protocol_new_defaults_to_the_best_start_of_the_calibration_record():
    """The default backbone is the start with the highest test accuracy (baseline and PAL alike) in
    benchmarks/calibration/photos_start.csv, among those protocol new can start from by itself."""
    record = pd.read_csv(Path(__file__).resolve().parents[1] / "benchmarks" / "calibration" / "photos_start.csv")
    starts = {"dlib face network": "dlib_face_resnet", "synth-faces aligned (default)": "vgg16_bn"}
    record = record[record["start"].isin(starts)]
    for loss in ("baseline", "PAL"):
        rows = record[record["loss"] == loss]
        assert starts[rows.loc[rows["mean"].idxmax(), "start"]] == DEFAULT_BACKBONE, loss
    assert set(record["n"]) == {3} and record["seconds_per_epoch"].gt(0).all()


def test_protocol_new_vgg_starts_from_the_synthetic_faces_pretraining(tmp_path):
    make_photo_folder(tmp_path / "external" / "p", subjects=6, classes=["happiness", "sadness"], seed=1)
    proto, header = new_protocol("p", tmp_path / "external" / "p" / "labels.csv", backbone="vgg16_bn", root=tmp_path)
    assert proto["train"]["weights"] == "pretrain/synth-faces/weights.pt"
    assert proto["pretraining"]["synth-faces"]["train"]["arch"] == proto["train"]["arch"]
    assert proto["pretraining"]["synth-faces"]["args"]["align"] is True  # framed like the photos
    assert proto["data"]["input"] == "external/p" and "6 subjects" in header
    assert list(proto["studies"]) == ["comparison"] and proto["priors"]["landmark_noise"] == [0]


def test_protocol_new_starts_dlib_face_resnet_from_dlibs_own_file(tmp_path, capsys, monkeypatch):
    """`--backbone dlib_face_resnet`: the installed dlib file is the start (no synthetic pretraining entry), at the
    crops' 112 px; `palbench protocol NAME` validates it."""
    from palbench.config.names import dlib_model_file

    monkeypatch.chdir(tmp_path)
    make_photo_folder(tmp_path / "external" / "p", subjects=6, classes=["happiness", "sadness"], seed=1)
    csv = tmp_path / "external" / "p" / "labels.csv"
    proto, header = new_protocol("p", csv, root=tmp_path)  # the default backbone
    train = proto["train"]
    assert train["weights"] == str(dlib_model_file()) and "pretraining" not in proto
    assert (train["arch"], train["size"], train["layer"], train["lr"]) == ("dlib_face_resnet", 112, "layer2.3", 2e-5)
    assert f"Starting point: dlib's face network, trained on ~3M real faces ({dlib_model_file()})." in header
    assert main(["protocol", "new", "p", "--folder", "external/p/labels.csv"]) == 0
    assert main(["protocol", "p", "--params", str(tmp_path / "params.yaml")]) == 0, capsys.readouterr().err


#: A bad --backbone / --width / --size / --layer and the words its one line must hold.
BAD_BACKBONES = {
    "unknown backbone": (["--backbone", "vgg17"], "--backbone 'vgg17': expected a torchvision classification model"),
    "width without a knob": (["--backbone", "regnet_y_800mf", "--width", "0.5", "--layer", "trunk_output"],
                             "--width: regnet_y_800mf has no width knob"),
    "width out of range": (["--backbone", "resnet18", "--width", "1.5", "--layer", "layer3"],
                           "--width: expected a number in (0, 1], got 1.5"),
    "size too small": (["--backbone", "resnet18", "--size", "16", "--layer", "layer3"], "--size: expected an integer"),
    "no layer": (["--backbone", "convnext_tiny"], "--backbone convnext_tiny: no default PAL layer; give --layer NAME "
                                                  "(`palbench layers --arch convnext_tiny --width 0.25 --size 48`"),
    "layers study on vgg11": (["--backbone", "vgg11", "--layer", "conv8", "--studies", "layers"],
                              "--studies layers: lists VGG layers (conv1..conv13); not for vgg11"),
}


@pytest.mark.parametrize("problem", ["missing csv", "unknown study", "exists", "project folder", *BAD_BACKBONES])
def test_protocol_new_bad_input_is_one_line_exit_2(problem, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_photo_folder(tmp_path / "external" / "p", subjects=6, classes=["happiness", "sadness"], seed=1)
    args = ["protocol", "new", "p", "--folder", "external/p/labels.csv"]
    if problem == "missing csv":
        args[-1] = "external/p/nope.csv"
    elif problem == "unknown study":
        args += ["--studies", "comparison,decoys"]
    elif problem == "exists":
        assert main(args) == 0
        capsys.readouterr()
    elif problem in BAD_BACKBONES:
        args += BAD_BACKBONES[problem][0]
    else:
        args += ["--images-root", "."]
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("palbench: error:"), err
    if problem != "exists":
        assert not (tmp_path / "benchmarks" / "protocols" / "p.yaml").exists()
    if problem in BAD_BACKBONES:
        assert BAD_BACKBONES[problem][1] in err[0], err


def test_protocol_new_takes_any_arch_with_its_width(tmp_path, capsys, monkeypatch):
    """`--backbone` takes every --arch name of `palbench train`, with its --width (and --size, --layer): the
    protocol's training and its pretraining use them; the three sized backbones keep their settings."""
    monkeypatch.chdir(tmp_path)
    make_photo_folder(tmp_path / "external" / "p", subjects=6, classes=["happiness", "sadness"], seed=1)
    csv = tmp_path / "external" / "p" / "labels.csv"
    cases = {  # (backbone, width, size, layer) → the train settings written
        ("convnext_tiny", 0.125, None, "features.5"): (0.125, 48, "features.5"),
        ("resnet18", None, None, "layer3"): (0.25, 48, "layer3"),  # a family with a width knob: x0.25
        ("regnet_y_800mf", None, None, "trunk_output.block3"): (1.0, 48, "trunk_output.block3"),  # no knob: x1
        ("vit_b_32", 0.25, 64, "encoder.layers.encoder_layer_6"): (0.25, 64, "encoder.layers.encoder_layer_6"),
        ("resnet50", None, None, None): (0.25, 48, "layer2.3"),
        ("vgg16_bn", 0.25, None, None): (0.25, 48, "conv10"),
    }
    for (backbone, width, size, layer), (w, s, lay) in cases.items():
        proto, _ = new_protocol("p", csv, backbone=backbone, width=width, size=size, layer=layer, root=tmp_path)
        train = proto["train"]
        assert (train["arch"], train["width"], train["size"], train["layer"]) == (backbone, w, s, lay)
        pre = proto["pretraining"]["synth-faces"]["train"]
        assert (pre["arch"], pre["width"], pre["size"]) == (backbone, w, s)
    # The command line, and `protocol NAME` reads the protocol back (validated) without a hand edit.
    args = ["protocol", "new", "p", "--folder", "external/p/labels.csv", "--backbone", "swin_t", "--width", "0.125",
            "--layer", "features.5"]
    assert main(args) == 0, capsys.readouterr().err
    written = yaml.safe_load((tmp_path / "benchmarks" / "protocols" / "p.yaml").read_text())
    assert {k: written["train"][k] for k in ("arch", "width", "size", "layer")} == {
        "arch": "swin_t", "width": 0.125, "size": 48, "layer": "features.5"}
    assert main(["protocol", "p", "--params", str(tmp_path / "params.yaml")]) == 0


def test_chip_geometry_builds_dlibs_face_chips_of_the_same_samples(tmp_path):
    """benchmarks/chip_geometry.py's twin dataset: the aligned dataset's samples and splits, each photo as dlib's
    150-px face chip (or palbench's image where dlib finds no face), no `align` record left in meta.json."""
    import sys

    from PIL import Image

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        from chip_geometry import chip_dataset
    finally:
        sys.path.pop(0)
    work = tmp_path / "work"
    make_photo_folder(work / "photos", subjects=6, classes=["happiness", "surprise"], seed=3)
    assert main(["import", "folder", str(work / "photos" / "labels.csv"), str(work / "data"), "--align", "dlib",
                 "--fractions", "0.34,0.33,0.33"]) == 0
    found = chip_dataset(work, tmp_path / "chips")
    samples = pd.read_csv(tmp_path / "chips" / "samples.csv")
    assert samples.equals(pd.read_csv(work / "data" / "samples.csv")) and 0 < found <= len(samples)
    for path in samples["path"]:
        with Image.open(tmp_path / "chips" / "images" / path) as im:
            assert im.size == (150, 150) and im.mode == "RGB"
    meta = json.loads((tmp_path / "chips" / "meta.json").read_text())
    assert "align" not in meta and meta["image_size"] == [150, 150]
