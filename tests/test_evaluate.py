"""``palbench evaluate``: metrics against scikit-learn on the written predictions, probabilities against the
model's logits recomputed here, alignment against autograd + eq. 8 + numpy Pearson done here, decoy share
against tiny models whose answer is known and a supersampled box mapping, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
)
from torch import nn
from torchvision.transforms.v2 import functional as TF

from palbench.alignment import alignment_scores, box_coverage, decoy_shares, input_grad_input
from palbench.checkpoint import load_trained_model, save_checkpoint
from palbench.cli import main
from palbench.config import TrainConfig
from palbench.data.canonical import CLASSES, dataset_writer, save_npy, write_tables
from palbench.data.synth.decoy import box_of, decoy_masks
from palbench.evaluate import evaluate_run
from palbench.io import write_json
from palbench.models import build_model

SIZE = 48  # model input; stored images are 40 x 52 (H x W), so every resize is non-trivial
HW = (40, 52)
SPLITS = ("train", "val", "test")


def write_noise_dataset(root, n=36, hw=HW, splits=SPLITS, decoys=True):
    """Random-noise RGB images, labels i % 7, split ``splits[i % len(splits)]``; the first test image has
    no landmarks; decoy squares (side 6) on every test image but the second, NaN elsewhere."""
    rng = np.random.default_rng(0)
    rows, boxes = [], np.full((n, 4), np.nan, np.float32)
    lm = rng.uniform(4, min(hw) - 4, (n, 68, 2)).astype(np.float32)
    with dataset_writer(root) as tmp:
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (*hw, 3), dtype=np.uint8)).save(tmp / "images" / f"{i}.png")
            rows.append({"path": f"{i}.png", "label": i % 7, "split": splits[i % len(splits)]})
        test = [i for i, r in enumerate(rows) if r["split"] == "test"]
        if test:
            lm[test[0]] = np.nan
        for k, i in enumerate(test):
            if k != 1:
                col, row = int(rng.integers(0, hw[1] - 6)), int(rng.integers(0, hw[0] - 6))
                boxes[i] = box_of(col, row, 6)
        write_tables(tmp, pd.DataFrame(rows), {"source": "test", "image_size": list(hw)})
        save_npy(tmp / "landmarks.npy", lm)
        if decoys:
            save_npy(tmp / "decoy_boxes.npy", boxes)
    return lm, boxes


def make_run(run, data, seed=0, **overrides):
    """A run folder as `palbench train` leaves it (best.pt + config.json), without training: a random
    tiny VGG whose last layer is centred and scaled on the dataset's images, so predictions differ."""
    kw = dict(arch="vgg16", width=0.125, size=SIZE, layer="conv10", prior_sigma=1.0, seed=seed)
    cfg = TrainConfig(data=str(data), **{**kw, **overrides})
    torch.manual_seed(seed)
    model = build_model(cfg.arch, width=cfg.width).eval()
    paths = sorted((data / "images").rglob("*.png"))  # aligned photo datasets keep their subfolders
    x = torch.stack([preprocess(p, cfg.size, model.input_normalization) for p in paths])
    with torch.no_grad():
        h = model.classifier[:6](torch.flatten(model.avgpool(model.features(x)), 1))
        last = model.classifier[6]
        z = last(h)
        scale = 1.0 / z.std(0).clamp_min(1e-12)
        last.weight.mul_(scale[:, None])
        last.bias.copy_(-(z.mean(0) - last.bias) * scale)
    run.mkdir(parents=True)
    ckpt = {"model": model.state_dict(), "epoch": 0, "val_accuracy": 0.0, "config": cfg.to_dict()}  # as train.py
    save_checkpoint(run / "best.pt", ckpt)
    write_json(run / "config.json", cfg.to_dict())
    return run


def preprocess(path, size, norm):
    """The test's own preprocessing: PIL RGB -> antialiased resize -> [0, 1] -> (x - mean) / std."""
    x = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)
    x = TF.resize(x, [size, size], antialias=True).float() / 255
    return (x - torch.tensor(norm["mean"]).view(3, 1, 1)) / torch.tensor(norm["std"]).view(3, 1, 1)



@pytest.fixture(scope="module")
def noise_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval") / "data"
    lm, boxes = write_noise_dataset(root)
    return root, lm, boxes


def test_metrics_and_probabilities(noise_data, tmp_path, capsys):
    data, _, _ = noise_data
    run, out = make_run(tmp_path / "run", data), tmp_path / "ev"
    assert main(["evaluate", str(run), str(out), "--batch-size", "5"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1
    m = json.loads((out / "metrics.json").read_text())
    table = pd.read_csv(out / "predictions.csv")
    samples = pd.read_csv(data / "samples.csv")
    rows = np.flatnonzero(samples["split"] == "test")
    assert list(table.columns) == ["index", "path", "label", "prediction"] + [f"prob_{k}" for k in range(7)]
    assert table["index"].tolist() == rows.tolist()
    assert table["path"].tolist() == samples["path"][rows].tolist()
    assert table["label"].tolist() == samples["label"][rows].tolist()

    model, cfg = load_trained_model(run)
    x = torch.stack([preprocess(data / "images" / p, SIZE, model.input_normalization) for p in table["path"]])
    with torch.no_grad():
        probs = torch.softmax(model(x).double(), dim=1).numpy()
    written = table[[f"prob_{k}" for k in range(7)]].to_numpy()
    np.testing.assert_allclose(written, probs, atol=1e-5)  # float32 model, other batching
    assert table["prediction"].tolist() == probs.argmax(1).tolist()
    assert table["prediction"].nunique() >= 2  # the comparison below is not trivial
    confusion = pd.read_csv(out / "confusion.csv")  # the same images, by class name, for `dvc plots`
    assert list(confusion.columns) == ["label", "prediction"] and m["classes"] == list(CLASSES)
    assert confusion["label"].tolist() == [CLASSES[k] for k in table["label"]]
    assert confusion["prediction"].tolist() == [CLASSES[k] for k in table["prediction"]]

    y, p = table["label"].to_numpy(), table["prediction"].to_numpy()
    ks = list(range(7))
    assert m["n"] == len(rows)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p))
    assert m["confusion_matrix"] == confusion_matrix(y, p, labels=ks).tolist()
    assert m["macro_f1"] == pytest.approx(f1_score(y, p, labels=ks, average="macro", zero_division=0))
    f1 = f1_score(y, p, labels=ks, average=None, zero_division=0)
    prec = precision_score(y, p, labels=ks, average=None, zero_division=0)
    rec = recall_score(y, p, labels=ks, average=None, zero_division=0)
    assert list(m["per_class"]) == list(CLASSES)
    for k, c in enumerate(CLASSES):
        ref = {"precision": prec[k], "recall": rec[k], "f1": f1[k], "support": int((y == k).sum())}
        assert {key: v for key, v in m["per_class"][c].items() if key != "absent"} == pytest.approx(ref)
        assert m["per_class"][c]["absent"] == (ref["support"] == 0)
    pal = {"layer": "conv10", "method": "grad_input", "strategy": "mean", "c1": 0.5, "pal_weight": 1.0, "prior_sigma": 1.0}
    assert m["pal"] == pal
    assert m["split"] == "test"


def _oracle_alignment(model, data, lm, layer_k, method, c1, sigma):
    """Per test image with landmarks: numpy Pearson of (constrained, free, all) channel means with eq. 8."""
    relus = [i for i, mod in enumerate(model.features) if isinstance(mod, nn.ReLU)]
    cut = relus[layer_k - 1] + 1  # vgg16: the k-th ReLU follows the k-th conv
    samples = pd.read_csv(data / "samples.csv")
    out = []
    for i in np.flatnonzero(samples["split"] == "test"):
        if np.isnan(lm[i]).any():
            continue
        x = preprocess(data / "images" / samples["path"][i], SIZE, model.input_normalization)[None]
        f = model.features[:cut](x).detach().requires_grad_(True)
        logits = model.classifier(torch.flatten(model.avgpool(model.features[cut:](f)), 1))
        (g,) = torch.autograd.grad(logits.sum(), f)
        a = {"grad": g.abs(), "grad_input": g.abs() * f, "gradcam": g.mean((2, 3), keepdim=True) * f}[method][0]
        a = a.detach().double().numpy()
        C, h, w = a.shape
        k = max(1, round(c1 * C))
        xs = (lm[i, :, 0].astype(np.float64) + 0.5) * w / HW[1] - 0.5  # stored image -> map pixel centres
        ys = (lm[i, :, 1].astype(np.float64) + 0.5) * h / HW[0] - 0.5
        ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        prior = sum(np.exp(-((ii - yk) ** 2 + (jj - xk) ** 2) / (2 * sigma**2)) for xk, yk in zip(xs, ys))

        def r(maps):
            return np.corrcoef(maps.mean(0).ravel(), prior.ravel())[0, 1]

        out.append((r(a[:k]), r(a[k:]) if k < C else np.nan, r(a)))
    return np.array(out)


@pytest.mark.parametrize(
    "method,c1,layer,weight",
    [("grad_input", 0.5, "conv10", 1.0), ("grad", 1.0, "conv7", 1.0), ("gradcam", 0.25, "conv4", 0.0)],
)
def test_alignment_matches_direct_computation(noise_data, tmp_path, method, c1, layer, weight):
    data, lm, _ = noise_data
    run = make_run(tmp_path / "run", data, method=method, c1=c1, layer=layer, pal_weight=weight)
    m = evaluate_run(run, tmp_path / "ev", batch_size=4, progress=False)
    model, _ = load_trained_model(run)
    ref = _oracle_alignment(model, data, lm, int(layer[4:]), method, c1, sigma=1.0)
    assert m["alignment_n"] == len(ref) == m["n"] - 1  # the first test image has no landmarks
    assert m["alignment_constrained"] == pytest.approx(ref[:, 0].mean(), abs=1e-4)
    assert m["alignment_all"] == pytest.approx(ref[:, 2].mean(), abs=1e-4)
    if c1 == 1.0:
        assert m["alignment_free"] is None
    else:
        assert m["alignment_free"] == pytest.approx(ref[:, 1].mean(), abs=1e-4)


def test_alignment_scores_of_known_maps():
    g = torch.Generator().manual_seed(0)
    prior = torch.rand(3, 6, 6, generator=g)
    prior[2] = 0  # no face
    attribution = torch.rand(3, 8, 6, 6, generator=g)
    attribution[:, :4] = 5 * prior[:, None] + 2 + 1e-3 * attribution[:, :4]  # constrained half ~ the prior
    attribution[1, 5] = 7.0
    s = alignment_scores(attribution, prior, c1=0.5)
    assert s["constrained"][:2].tolist() == pytest.approx([1.0, 1.0], abs=1e-4)
    for key, maps in (("free", attribution[:, 4:]), ("all", attribution)):
        ref = [np.corrcoef(maps[b].mean(0).ravel(), prior[b].ravel())[0, 1] for b in range(2)]
        assert s[key][:2].tolist() == pytest.approx(ref, abs=1e-5)
    assert all(torch.isnan(s[k][2]) for k in s)  # all-zero prior: undefined, not a number
    const = alignment_scores(torch.ones(1, 2, 4, 4), prior[:1, :4, :4], c1=1.0)
    assert torch.isnan(const["constrained"][0]) and torch.isnan(const["free"][0])


def test_box_coverage_mapping():
    boxes = np.array([box_of(3, 5, 4), box_of(0, 0, 2), box_of(10, 12, 6), [np.nan] * 4], np.float32)
    # no resize: exactly the synth's pixel masks
    same = box_coverage(boxes, (20, 16), (20, 16))
    np.testing.assert_array_equal(same, decoy_masks(boxes, 20, 16).astype(np.float32))
    # 16 -> 10 wide (x 0.625), 20 -> 10 high (x 0.5): columns 3..6 = edges [3, 7) -> [1.875, 4.375)
    cov = box_coverage(boxes[:1], (20, 16), (10, 10))[0]
    cols = np.array([0, 0.125, 1, 1, 0.375, 0, 0, 0, 0, 0])
    rows = np.array([0, 0, 0.5, 1, 0.5, 0, 0, 0, 0, 0])  # rows 5..8 = edges [5, 9) -> [2.5, 4.5)
    np.testing.assert_allclose(cov, rows[:, None] * cols[None], atol=1e-6)
    # the area share is kept by any resize; a NaN row has no box
    for out in ((10, 10), (33, 7), (64, 64)):
        cov = box_coverage(boxes, (20, 16), out)
        area = cov.sum(axis=(1, 2)) / (out[0] * out[1])
        np.testing.assert_allclose(area, [16 / 320, 4 / 320, 36 / 320, 0], atol=1e-6)


class _Masked(nn.Module):
    """Logits = linear map of the input times a fixed mask: the output depends only on masked pixels."""

    def __init__(self, mask: torch.Tensor, uniform: bool = False) -> None:
        super().__init__()
        self.register_buffer("mask", mask)
        self.fc = nn.Linear(mask.numel() * 3, 7)
        if uniform:
            nn.init.constant_(self.fc.weight, 0.01)

    def forward(self, x):
        return self.fc((x * self.mask).flatten(1))


def _share(model, x, cov):
    x = x.clone().requires_grad_(True)
    return decoy_shares(input_grad_input(model(x), x), cov)


def test_decoy_share_of_known_models():
    boxes = np.array([box_of(4, 2, 4), box_of(9, 9, 5)], np.float32)  # in a 16 x 16 stored image
    cov = torch.from_numpy(box_coverage(boxes, 16, 32))  # model input 32 x 32: box 1 covers rows 4..11, cols 8..15
    assert cov[0, 4:12, 8:16].eq(1).all() and cov[0].sum() == 64
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    inside = _share(_Masked((cov[0] > 0).float()), x[:1], cov[:1])
    assert inside["share"].item() == pytest.approx(1.0, abs=1e-12)
    outside = _share(_Masked((cov[0] == 0).float()), x[:1], cov[:1])
    assert outside["share"].item() == pytest.approx(0.0, abs=1e-12)
    uniform = _share(_Masked(torch.ones(32, 32), uniform=True), torch.ones(2, 3, 32, 32), cov)
    np.testing.assert_allclose(uniform["share"].numpy(), uniform["area"].numpy(), rtol=1e-6)
    np.testing.assert_allclose(uniform["area"].numpy(), [16 / 256, 25 / 256], rtol=1e-6)
    none = decoy_shares(torch.rand(1, 32, 32), torch.zeros(1, 32, 32))
    assert torch.isnan(none["share"][0]) and torch.isnan(none["area"][0])


def _supersampled_coverage(box, hw, size, n=32):
    """Fraction of n x n sample points of each input pixel whose stored-image position is inside the box."""
    u = (np.arange(size)[:, None] + (np.arange(n) + 0.5) / n).ravel()  # input edge coordinates
    inx = ((u * hw[1] / size - 0.5 > box[0]) & (u * hw[1] / size - 0.5 < box[2])).reshape(size, n).mean(1)
    iny = ((u * hw[0] / size - 0.5 > box[1]) & (u * hw[0] / size - 0.5 < box[3])).reshape(size, n).mean(1)
    return iny[:, None] * inx[None]


def test_decoy_share_end_to_end(noise_data, tmp_path):
    data, _, boxes = noise_data
    run = make_run(tmp_path / "run", data)
    m = evaluate_run(run, tmp_path / "ev", progress=False)
    model, _ = load_trained_model(run)
    samples = pd.read_csv(data / "samples.csv")
    shares, areas = [], []
    for i in np.flatnonzero(samples["split"] == "test"):
        if np.isnan(boxes[i]).any():
            continue
        x = preprocess(data / "images" / samples["path"][i], SIZE, model.input_normalization)[None].requires_grad_(True)
        (g,) = torch.autograd.grad(model(x).sum(), x)
        attr = (g * x).abs().sum(1)[0].detach().numpy()
        cov = _supersampled_coverage(boxes[i], HW, SIZE)
        shares.append((attr * cov).sum() / attr.sum())
        areas.append((boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1]) / (HW[0] * HW[1]))
    assert m["decoy_n"] == len(shares) == m["n"] - 1
    assert m["decoy_share"] == pytest.approx(np.mean(shares), abs=2e-3)
    assert m["decoy_area_share"] == pytest.approx(np.mean(areas), rel=1e-6)
    assert 0 < m["decoy_share"] < 1


def test_no_decoy_file_gives_null(tmp_path):
    write_noise_dataset(tmp_path / "data", n=12, decoys=False)
    run = make_run(tmp_path / "run", tmp_path / "data")
    m = evaluate_run(run, tmp_path / "ev", data=tmp_path / "data", progress=False)
    assert m["decoy_share"] is None and m["decoy_area_share"] is None and m["decoy_n"] == 0
    assert m["alignment_constrained"] is not None


def _bad_run(kind, tmp_path, data):
    run = tmp_path / "run"
    if kind == "missing run":
        return run, []
    make_run(run, data)
    if kind == "corrupt checkpoint":
        (run / "best.pt").write_bytes(b"not a checkpoint")
    elif kind == "checkpoint of another model":
        ckpt = torch.load(run / "best.pt", weights_only=True)
        ckpt["config"]["width"] = 0.25
        save_checkpoint(run / "best.pt", ckpt)
    elif kind == "run dataset gone":
        ckpt = torch.load(run / "best.pt", weights_only=True)
        ckpt["config"]["data"] = str(tmp_path / "gone")
        save_checkpoint(run / "best.pt", ckpt)
    return run, {
        "unknown split": ["--split", "dev"],
        "empty split": ["--split", "val", "--data", str(tmp_path / "noval")],
        "missing landmark set": ["--landmarks", str(tmp_path / "nope.npy")],
        "bad landmark set": ["--landmarks", str(tmp_path / "bad.npy")],
    }.get(kind, [])


@pytest.mark.parametrize("kind", [
    "missing run", "corrupt checkpoint", "checkpoint of another model", "run dataset gone", "unknown split",
    "empty split", "missing landmark set", "bad landmark set",
])  # fmt: skip
def test_bad_inputs_one_line_exit_2_nothing_written(noise_data, tmp_path, capsys, kind):
    data, _, _ = noise_data
    write_noise_dataset(tmp_path / "noval", n=6, splits=("train", "test"))
    np.save(tmp_path / "bad.npy", np.zeros((5, 68, 2), np.float32))
    run, extra = _bad_run(kind, tmp_path, data)
    out = tmp_path / "ev"
    assert main(["evaluate", str(run), str(out), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("palbench: error: "), err
    assert not out.exists()


def test_cross_dataset_drops_untrained_classes_and_reports_absent_ones(noise_data, tmp_path, capsys):
    """Train on A, test on B: B's images of a class A never trained on are dropped and counted; a class with
    no image in B's split is listed as absent (no recall), not scored as a recall of 0."""
    data, _, _ = noise_data
    trained_on = tmp_path / "a"  # the run's dataset: only its meta.json counts are read
    trained_on.mkdir()
    counts = {c: (0 if c == "fear" else 5) for c in CLASSES}
    write_json(trained_on / "meta.json", {"counts": {"train": counts}, "classes": list(CLASSES)})
    run = make_run(tmp_path / "run", data)
    ckpt = torch.load(run / "best.pt", weights_only=True)
    ckpt["config"]["data"] = str(trained_on)
    save_checkpoint(run / "best.pt", ckpt)
    assert main(["evaluate", str(run), str(tmp_path / "ev"), "--data", str(data)]) == 0
    out = capsys.readouterr().out
    samples = pd.read_csv(data / "samples.csv")
    test = samples[samples["split"] == "test"]
    n_fear = int((test["label"] == CLASSES.index("fear")).sum())
    assert n_fear > 0 and f"dropped {n_fear} image(s) of classes the run never trained on (fear: {n_fear})" in out
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["n"] == len(test) - n_fear and m["dropped_untrained"] == {"fear": n_fear}
    assert "fear" in m["absent_classes"] and m["per_class"]["fear"]["absent"]
    present = set(test["label"].map(lambda k: CLASSES[k])) - {"fear"}
    assert set(m["absent_classes"]) == set(CLASSES) - present
    assert not any(m["per_class"][c]["absent"] for c in present)
    # on the run's own dataset nothing is dropped
    assert evaluate_run(make_run(tmp_path / "own", data), tmp_path / "ev2", progress=False)["dropped_untrained"] == {}
