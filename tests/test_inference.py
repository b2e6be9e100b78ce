"""``palbench predict`` and ``palbench export``: probabilities against the model's own softmax on images
preprocessed here, the same numbers as the evaluation path, one-line errors for bad images, and TorchScript /
ONNX (onnxruntime) outputs equal to PyTorch's on a batch size other than the traced one.

A run trained on aligned photos: synthetic faces pasted off-centre on larger backgrounds
(:func:`~palbench.data.synth.photos.make_photo_folder`), imported with ``--align dlib`` (the real detector,
end to end); ``predict`` on a whole photo equals ``predict`` on the aligned dataset's own crop of it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
import torch
from PIL import Image
from test_evaluate import make_run, preprocess, write_noise_dataset

from palbench.checkpoint import load_trained_model
from palbench.cli import main
from palbench.data.align import move_points
from palbench.data.canonical import CLASSES
from palbench.data.dataset import FaceDataset
from palbench.data.synth.photos import make_photo_folder
from palbench.errors import ConfigError, DataError
from palbench.evaluate import predict
from palbench.face_crops import FaceCrop
from palbench.inference import export_model, predict_images, run_face_crop


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
    assert [r["crop"] for r in rows] == [{"aligned": False, "box": [0, 0, *Image.open(p).size]} for p in images]
    assert run_face_crop(cfg) is None  # the run's dataset was not aligned: whole images, as before
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
    expected = [{k: v for k, v in r.items() if k != "error"} for r in predict_images(model, cfg, images)]
    assert rows == json.loads(json.dumps(expected))
    assert main(["predict", str(run_dir), *map(str, images)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    for line, r in zip(lines, rows):
        path, name, probs, crop = line.split("\t")
        assert (path, name, crop) == (r["path"], r["class"], "crop=whole")
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
    assert meta["input"]["crop"] == {"aligned": False} and "whole image" in meta["input"]["resize"]


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


# ---------------------------------------------------------------- a run trained on aligned photos


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    """12 photos (400x300, a 128 px synthetic face scaled, rotated and pasted off-centre), imported with
    ``--align dlib`` (112 px crops), a run on them, and per photo whose face dlib found: (photo, its crop in
    the aligned dataset, the face's true landmarks in the photo)."""
    root = tmp_path_factory.mktemp("aligned")
    table = make_photo_folder(root / "photos", subjects=4, classes=["surprise", "happiness", "anger"], seed=3)
    assert main(["import", "folder", str(root / "photos" / "labels.csv"), str(root / "data"), "--align", "dlib",
                 "--fractions", "0.5,0.25,0.25"]) == 0
    samples = pd.read_csv(root / "data" / "samples.csv")
    moved = np.load(root / "data" / "provided_landmarks.npy")
    truth = np.load(root / "photos" / "landmarks.npy")
    source = {str(Path(p).with_suffix(".png")): i for i, p in enumerate(table["path"])}
    faces = []
    for k, stored in enumerate(samples["path"]):
        if np.isfinite(moved[k]).all():
            i = source[stored]
            faces.append((root / "photos" / table["path"][i], root / "data" / "images" / stored, truth[i]))
    assert len(faces) >= 3
    return make_run(root / "run", root / "data"), root / "data", faces[:3]


def test_predict_on_a_photo_equals_predict_on_its_aligned_crop(aligned):
    run_dir, data, faces = aligned
    model, cfg = load_trained_model(run_dir)
    crop = run_face_crop(cfg)
    meta = json.loads((data / "meta.json").read_text())["align"]
    assert crop == FaceCrop("dlib", meta["landmarks"]["options"], 112, 0.4)
    photos = [photo for photo, _, _ in faces]
    got = predict_images(model, cfg, photos, crop=crop)
    ref = predict_images(model, cfg, [c for _, c, _ in faces])  # the aligned dataset's crops, as given (same batch)
    whole = predict_images(model, cfg, photos)
    for g, r, w, (_, _, points) in zip(got, ref, whole, faces):
        assert g["class"] == r["class"] and g["error"] is None
        np.testing.assert_allclose(list(g["probabilities"].values()), list(r["probabilities"].values()), atol=1e-9)
        assert np.abs(np.subtract(list(w["probabilities"].values()), list(g["probabilities"].values()))).max() > 1e-3
        c = g["crop"]
        assert c["aligned"] and (c["backend"], c["crop_size"], c["margin"]) == ("dlib", 112, 0.4)
        # corners and matrix agree: the corners go to the crop's outer corners (pixel centres at integers there)
        corners = move_points(np.array(c["corners"]) - 0.5, np.array(c["matrix"]))
        np.testing.assert_allclose(corners, [[-0.5, -0.5], [111.5, -0.5], [111.5, 111.5], [-0.5, 111.5]], atol=1e-6)
        assert c["box"] == [*np.min(c["corners"], axis=0), *np.max(c["corners"], axis=0)]
        # the box holds the face (its true eyes and mouth) and is far smaller than the 400x300 photo
        x0, y0, x1, y1 = c["box"]
        assert x0 < points[36:68, 0].min() and points[36:68, 0].max() < x1
        assert y0 < points[36:68, 1].min() and points[36:68, 1].max() < y1
        assert x1 - x0 < 300 and abs(c["angle"]) < 45


def test_predict_cli_aligned_json_text_no_align_and_a_photo_without_a_face(aligned, tmp_path, capsys):
    run_dir, _, faces = aligned
    photo = str(faces[0][0])
    blank = tmp_path / "blank.png"
    Image.new("RGB", (400, 300), (120, 130, 140)).save(blank)
    model, cfg = load_trained_model(run_dir)
    expected = predict_images(model, cfg, [photo], crop=run_face_crop(cfg))[0]

    assert main(["predict", str(run_dir), str(blank), photo, "--json"]) == 2
    cap = capsys.readouterr()
    assert json.loads(cap.out) == [json.loads(json.dumps({k: v for k, v in expected.items() if k != "error"}))]
    assert cap.err.strip().splitlines() == [f"palbench: error: {blank}: no face found by the dlib landmark backend; "
                                            "no prediction (--no-align predicts on the whole image)"]

    assert main(["predict", str(run_dir), photo]) == 0
    path, name, _, crop = capsys.readouterr().out.strip().split("\t")
    box = ",".join(f"{v:.1f}" for v in expected["crop"]["box"])
    angle = f"{expected['crop']['angle']:.1f}"
    assert (path, name, crop) == (photo, expected["class"], f"crop=dlib box={box} angle={angle}")

    assert main(["predict", str(run_dir), str(blank), photo, "--no-align", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    whole = predict_images(model, cfg, [blank, photo])
    assert [r["crop"] for r in rows] == [{"aligned": False, "box": [0, 0, 400, 300]}] * 2
    np.testing.assert_allclose([list(r["probabilities"].values()) for r in rows],
                               [list(r["probabilities"].values()) for r in whole], atol=1e-12)
    assert rows[1]["probabilities"] != expected["probabilities"]


def test_export_records_the_face_crop(aligned, tmp_path):
    run_dir, data, _ = aligned
    info = export_model(run_dir, tmp_path / "export", ["torchscript"])
    crop = info["input"]["crop"]
    options = json.loads((data / "meta.json").read_text())["align"]["landmarks"]["options"]
    assert {k: crop[k] for k in ("aligned", "backend", "options", "crop_size", "margin")} == {
        "aligned": True, "backend": "dlib", "options": options, "crop_size": 112, "margin": 0.4}
    assert "eye line" in crop["method"] and "face crop" in info["input"]["resize"]
    assert json.loads((tmp_path / "export" / "model.json").read_text()) == info


def test_where_the_runs_dataset_cannot_say_how_to_crop(run, aligned, images, tmp_path, capsys):
    """Its dataset moved: one line naming it (``--data`` finds it, ``--no-align`` does not look); a dataset cropped
    around landmarks read from a file, or by a backend built otherwise, cannot crop a new photo: one line."""
    run_dir, data = run
    _, cfg = load_trained_model(run_dir)
    gone = tmp_path / "gone"
    with pytest.raises(DataError, match="the run's dataset .* not found .* --data DATASET"):
        run_face_crop(replace(cfg, data=str(gone)))
    assert run_face_crop(replace(cfg, data=str(gone)), data) is None
    assert main(["predict", str(run_dir), str(images[0]), "--data", str(gone)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{gone}: dataset folder not found" in err[0]
    assert main(["predict", str(run_dir), str(images[0]), "--data", str(gone), "--no-align"]) == 0
    capsys.readouterr()

    aligned_run, _, faces = aligned
    model, cfg = load_trained_model(aligned_run)
    with pytest.raises(ConfigError, match="'truth' backend read from a file.*--no-align"):
        predict_images(model, cfg, [faces[0][0]], crop=FaceCrop("truth", {}, 112, 0.4))
    with pytest.raises(ConfigError, match=r"dlib landmark backend with upsample=2 \(here None\)"):
        predict_images(model, cfg, [faces[0][0]], crop=FaceCrop("dlib", {"aligned": False, "upsample": 2}, 112, 0.4))
    with pytest.raises(DataError, match="meta.json: align.margin"):
        FaceCrop.from_meta({"align": {"crop_size": 112, "margin": 9, "landmarks": {"backend": "dlib"}}}, "x/meta.json")
