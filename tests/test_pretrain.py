"""Pretraining (palbench.pretrain): both pretexts, the weights it leaves, and fine-tuning from them."""

import json

import pytest
import torch

from palbench.cli import main
from palbench.config import TrainConfig
from palbench.data.canonical import read_dataset
from palbench.data.synth import generate
from palbench.errors import ConfigError, DataError
from palbench.models import build_model, load_weights
from palbench.models.weights import detect_format
from palbench.pretrain import VAL_EVERY, identity_dataset, pretrain

TINY = dict(arch="vgg16_bn", width=0.0625, size=32, epochs=1, max_steps=2, batch_size=4, lr=5e-4, augment=False,
            progress=False)


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """A tiny decoy-free synthetic population (subjects of 7 images each)."""
    root = tmp_path_factory.mktemp("faces") / "faces"
    generate(root, n_train=21, n_val=7, n_test=7, size=32, seed=1, decoy_p=0.0, decoy_p_test=0.0, progress=False)
    return root


def test_identity_dataset_relabels_the_train_subjects(faces):
    data = read_dataset(faces)
    ids = identity_dataset(data)
    train = data.samples[data.samples["split"] == "train"]
    assert len(ids.samples) == len(train)  # only the train split's people
    assert sorted(ids.samples["label"].unique()) == list(range(train["subject"].nunique()))
    assert len(ids.meta["classes"]) == train["subject"].nunique()
    # every subject has images in both halves; every VAL_EVERY-th image of a subject is held out
    per = ids.samples.groupby("label")["split"].agg(lambda s: set(s))
    assert all(v == {"train", "val"} for v in per)
    assert (ids.samples["split"] == "val").sum() == sum(n // VAL_EVERY for n in train["subject"].value_counts())
    assert ids.landmarks is None and data.landmarks is None  # synth writes no landmarks.npy (its stage does)


def test_identity_dataset_needs_subjects(tiny_dataset):
    root, _ = tiny_dataset
    with pytest.raises(DataError, match=r"samples.csv: pretext 'subject' needs a subject column"):
        identity_dataset(read_dataset(root))


def test_label_pretext_keeps_the_head_and_the_grid_loads_it_strictly(faces, tmp_path):
    out = tmp_path / "pre"
    info = pretrain(TrainConfig.from_dict({**TINY, "data": str(faces), "pal_weight": 0.0}), out)
    assert info["pretext"] == "label" and info["head"] and info["classes"] == 7
    assert json.loads((out / "pretrain.json").read_text())["images"]["train"] == 21
    assert not (out / "state.pt").exists() and (out / "best.pt").is_file()
    model = build_model("vgg16_bn", width=0.0625)
    sd = torch.load(out / "weights.pt", weights_only=True)
    assert detect_format(sd, model) == "palbench" and load_weights(model, out / "weights.pt") == "palbench"
    assert torch.equal(model.classifier[6].weight, sd["classifier.6.weight"])  # the head came along


def test_subject_pretext_leaves_a_headless_backbone(faces, tmp_path):
    out = tmp_path / "pre"
    info = pretrain(TrainConfig.from_dict({**TINY, "data": str(faces), "pal_weight": 0.0}), out, labels="subject")
    assert info["pretext"] == "subject" and not info["head"] and info["classes"] == 3  # 21 images / 7 per subject
    sd = torch.load(out / "weights.pt", weights_only=True)
    assert not any(k.startswith("classifier.6.") for k in sd)
    torch.manual_seed(0)
    model = build_model("vgg16_bn", width=0.0625)
    fresh = model.classifier[6].weight.clone()
    assert load_weights(model, out / "weights.pt") == "backbone"
    assert torch.equal(model.classifier[6].weight, fresh)  # a new 7-class head, as the paper replaces fc8
    assert torch.equal(model.features[0].weight, sd["features.0.weight"])


def test_pretrain_refuses_pal_and_a_second_start(faces, tmp_path):
    with pytest.raises(ConfigError, match="cross-entropy only"):
        pretrain(TrainConfig.from_dict({**TINY, "data": str(faces), "pal_weight": 1.0}), tmp_path / "a")
    cfg = TrainConfig.from_dict({**TINY, "data": str(faces), "pal_weight": 0.0})
    pretrain(cfg, tmp_path / "b")
    with pytest.raises(ConfigError, match="already holds a pretraining run"):
        pretrain(cfg, tmp_path / "b")


def test_train_seeds_in_one_process_from_pretrained_weights(faces, tmp_path, capsys):
    pre = tmp_path / "pre"
    assert main(["pretrain", str(pre), "--data", str(faces), "--arch", "vgg16_bn", "--width", "0.0625",
                 "--size", "32", "--epochs", "1", "--max-steps", "1", "--batch-size", "4", "--no-augment",
                 "--no-progress"]) == 0
    assert "label pretext, 7 classes" in capsys.readouterr().out
    out = tmp_path / "runs" / "pal"
    assert main(["train", str(out), "--data", str(faces), "--weights", str(pre / "weights.pt"), "--arch", "vgg16_bn",
                 "--width", "0.0625", "--size", "32", "--epochs", "1", "--max-steps", "1", "--batch-size", "4",
                 "--pal-weight", "0", "--seeds", "3", "5", "--no-progress", "--evaluate", "test"]) == 0
    for seed in (3, 5):
        cfg = json.loads((out / f"s{seed}" / "config.json").read_text())
        assert cfg["seed"] == seed and cfg["weights"] == str(pre / "weights.pt")
        assert (out / f"s{seed}" / "test" / "metrics.json").is_file()
    assert main(["train", str(out), "--data", str(faces), "--seed", "1", "--seeds", "2"]) == 2
    assert "not both" in capsys.readouterr().err


def test_protocol_pretraining_section_is_checked():
    from palbench.config import protocol as pr

    proto = pr.load_protocol("synthetic-cpu")
    entry = proto["pretraining"]["synth-faces"]
    assert entry["args"]["seed"] != proto["data"]["args"]["seed"] and entry["args"]["decoy_p"] == 0
    bad = {**proto, "pretraining": {proto["data"]["name"]: entry}}
    with pytest.raises(ConfigError, match="the expression set itself"):
        pr.validate_protocol(bad, "p.yaml")
    bad = {**proto, "pretraining": {"synth-faces": {**entry, "train": {**entry["train"], "width": 0.25}}}}
    with pytest.raises(ConfigError, match=r"train: weights 'pretrain/synth-faces/weights.pt' are pretraining.synth-faces's "
                                          r"\(width 0.25\), but train.width is 0.125"):
        pr.validate_protocol(bad, "p.yaml")
    with pytest.raises(ConfigError, match=r"train.weights 'pretrain/other/weights.pt': no pretraining writes it"):
        pr.validate_protocol({**proto, "train": {**proto["train"], "weights": "pretrain/other/weights.pt"}}, "p.yaml")
    with pytest.raises(ConfigError, match=r"train.weights: not set"):
        pr.validate_protocol({**proto, "train": {**proto["train"], "weights": None}}, "p.yaml")
