"""``palbench predict`` and ``palbench export``: probabilities against the model's own softmax on images
preprocessed here, the same numbers as the evaluation path, one-line errors for bad images, and TorchScript /
ONNX (onnxruntime) outputs equal to PyTorch's on a batch size other than the traced one."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image
from test_evaluate import make_run, preprocess, write_noise_dataset

from palbench.checkpoint import load_trained_model
from palbench.cli import main
from palbench.data.canonical import CLASSES
from palbench.data.dataset import FaceDataset
from palbench.errors import ConfigError
from palbench.evaluate import predict
from palbench.inference import export_model, predict_images



@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("inference")
    write_noise_dataset(root / "data", n=12)
    return make_run(root / "run", root / "data"), root / "data"


@pytest.fixture
def images(tmp_path):
    """Three files of different sizes and modes (RGB, grayscale, RGBA)."""
    rng = np.random.default_rng(1)
    paths = [tmp_path / "a.png", tmp_path / "b.jpg", tmp_path / "c.png"]
    Image.fromarray(rng.integers(0, 256, (30, 45, 3), dtype=np.uint8)).save(paths[0])
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(paths[1], quality=95)
    Image.fromarray(rng.integers(0, 256, (50, 20, 4), dtype=np.uint8)).save(paths[2])
    return paths


def test_predict_images_matches_model_softmax(run, images):
    run_dir, _ = run
    model, cfg = load_trained_model(run_dir)
    rows = predict_images(model, cfg, images, batch_size=2)
    x = torch.stack([preprocess(p, cfg.size, model.input_normalization) for p in images])
    with torch.no_grad():
        probs = torch.softmax(model(x).double(), dim=1).numpy()
    assert [r["path"] for r in rows] == [str(p) for p in images]
    for r, p in zip(rows, probs):
        assert list(r["probabilities"]) == list(CLASSES)
        np.testing.assert_allclose(list(r["probabilities"].values()), p, atol=1e-5)
        assert r["prediction"] == int(p.argmax()) and r["class"] == CLASSES[int(p.argmax())]


def test_predict_equals_evaluation_path(run):
    """A dataset's image files give the same probabilities as FaceDataset (what evaluate uses)."""
    run_dir, data = run
    model, cfg = load_trained_model(run_dir)
    ds = FaceDataset(data, "test", cfg.size, None, False, model.input_normalization)
    logits, _ = predict(model, ds, batch_size=len(ds))
    paths = [ds.data.image_path(int(i)) for i in ds.indices]
    rows = predict_images(model, cfg, paths, batch_size=len(paths))
    got = np.array([list(r["probabilities"].values()) for r in rows])
    np.testing.assert_allclose(got, torch.softmax(logits.double(), 1).numpy(), atol=1e-12)


def test_predict_cli(run, images, capsys):
    run_dir, _ = run
    assert main(["predict", str(run_dir), *map(str, images), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    model, cfg = load_trained_model(run_dir)
    assert rows == json.loads(json.dumps(predict_images(model, cfg, images)))
    assert main(["predict", str(run_dir), *map(str, images)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    for line, r in zip(lines, rows):
        path, name, probs = line.split("\t")
        assert (path, name) == (r["path"], r["class"])
        assert len(probs.split()) == 7


@pytest.mark.parametrize("kind", ["missing", "corrupt"])
def test_predict_bad_image_one_line(run, images, tmp_path, capsys, kind):
    bad = tmp_path / "bad.png"
    if kind == "corrupt":
        bad.write_bytes(b"this is not a png")
    assert main(["predict", str(run[0]), str(images[0]), str(bad)]) == 2
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("palbench: error: ") and "bad.png" in err[0], err
    assert cap.out == ""


def test_predict_missing_run(tmp_path, images, capsys):
    assert main(["predict", str(tmp_path / "nope"), str(images[0])]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_export_torchscript_and_onnx(run, tmp_path):
    run_dir, _ = run
    out = tmp_path / "export"
    info = export_model(run_dir, out)
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.onnx", "model.pt"]
    model, cfg = load_trained_model(run_dir)
    x = torch.randn(3, 3, cfg.size, cfg.size, generator=torch.Generator().manual_seed(5))  # traced with 2
    with torch.no_grad():
        ref = model(x).numpy()
        scripted = torch.jit.load(str(out / "model.pt"))(x).numpy()
    np.testing.assert_allclose(scripted, ref, atol=1e-4)

    proto = onnx.load(str(out / "model.onnx"))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.HasField("dim_value")  # dynamic batch axis
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"image": x.numpy()})
    np.testing.assert_allclose(logits, ref, atol=1e-4)

    meta = json.loads((out / "model.json").read_text())
    assert meta == info
    assert meta["classes"] == list(CLASSES)
    assert meta["input"]["size"] == cfg.size and meta["input"]["shape"] == ["batch", 3, cfg.size, cfg.size]
    assert meta["input"]["normalization"] == {k: list(v) for k, v in model.input_normalization.items()}
    assert meta["arch"] == "vgg16" and meta["width"] == 0.125
    assert meta["source_run"] == str(run_dir)
    assert meta["files"] == {"torchscript": "model.pt", "onnx": "model.onnx"}


def test_export_cli_one_format_and_errors(run, tmp_path, capsys):
    run_dir, _ = run
    out = tmp_path / "ts"
    assert main(["export", str(run_dir), str(out), "--format", "torchscript"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.pt"]
    assert json.loads((out / "model.json").read_text())["files"] == {"torchscript": "model.pt"}
    capsys.readouterr()
    assert main(["export", str(tmp_path / "nope"), str(tmp_path / "x")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    with pytest.raises(ConfigError, match="unknown format"):
        export_model(run_dir, tmp_path / "y", ["tflite"])
    assert not (tmp_path / "y").exists()
