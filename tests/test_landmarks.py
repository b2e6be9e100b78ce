"""palbench.landmarks: truth/file validation, dlib on a real face, the face_alignment adapter with random weights.

No test touches the network: face_alignment weights are random state dicts this file writes.
"""

from __future__ import annotations

import ast
import json
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from palbench.cli import main
from palbench.data.canonical import dataset_writer, read_dataset, write_tables
from palbench.errors import ConfigError, DataError, WeightsError
from palbench.landmarks import BACKENDS, compute_landmarks, get_backend, image_size, load_image

H, W = 48, 64  # small canonical images: 64 wide, 48 high


# ---------------------------------------------------------------- helpers


def make_dataset(root, images, provided=None, source="synth"):
    """A canonical dataset with ``images`` (uint8 RGB arrays) and optional provided landmarks [N,68,2]."""
    n = len(images)
    with dataset_writer(root) as tmp:
        for i, im in enumerate(images):
            Image.fromarray(im).save(tmp / "images" / f"{i}.png")
        samples = pd.DataFrame(
            {"path": [f"{i}.png" for i in range(n)], "label": [i % 7 for i in range(n)], "split": ["train"] * n}
        )
        write_tables(tmp, samples, {"source": source}, provided_landmarks=provided)
    return root


def random_landmarks(n, rng, h=H, w=W):
    pts = np.stack([rng.uniform(0, w - 1, (n, 68)), rng.uniform(0, h - 1, (n, 68))], axis=-1)
    return pts.astype(np.float32)


@pytest.fixture
def small(tmp_path):
    """(root, provided landmarks) of a 5-image synth-like dataset, landmarks inside the frame."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(5)]
    lm = random_landmarks(5, rng)
    lm[3] = np.nan  # no face
    return make_dataset(tmp_path / "ds", images, lm), lm


def one_line_error(capsys, argv, root):
    """Run the CLI, expect exit 2 with one stderr line, and no landmarks left behind; return the line."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("palbench: error: ")
    assert not (root / "landmarks.npy").exists() and not (root / "landmarks.json").exists()
    return err


# ---------------------------------------------------------------- registry, truth, file


def test_unknown_backend_lists_valid_ones():
    with pytest.raises(ConfigError, match="expected one of truth, file, dlib, face_alignment"):
        get_backend("mtcnn")
    with pytest.raises(ConfigError, match=r"unknown option\(s\) colour; expected none"):
        get_backend("truth", colour="red")
    assert set(BACKENDS) == {"truth", "file", "dlib", "face_alignment"}


def test_backends_import_base_not_the_package():
    # palbench.landmarks imports its backends lazily; they must not import it back (only .base, .file).
    import palbench.landmarks

    root = Path(palbench.landmarks.__file__).parent
    for path in sorted(root.glob("*.py")):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert "palbench.landmarks" not in modules, path.name
        if path.name == "base.py":
            assert not {m for m in modules if m.startswith("palbench.landmarks.")}, modules


def test_image_readers_name_the_file(tmp_path):
    path = tmp_path / "face.png"
    Image.fromarray(np.full((H, W, 3), 90, np.uint8)).save(path)
    assert image_size(path) == (H, W) and load_image(path).shape == (H, W, 3)
    path.write_bytes(path.read_bytes()[:60])  # header intact, pixel data cut: fails while decoding
    assert image_size(path) == (H, W)
    with pytest.raises(DataError, match=r"face\.png: unreadable image \(") as e:
        load_image(path)
    assert "\n" not in str(e.value)
    for reader in (load_image, image_size):
        with pytest.raises(DataError, match=r"absent\.png: image not found \(listed in samples\.csv\)"):
            reader(tmp_path / "absent.png")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"junk\.png: unreadable image"):
        image_size(tmp_path / "junk.png")


def test_truth_round_trip(small, capsys):
    root, lm = small
    (root / "landmarks.npy").write_bytes(b"stale, unreadable")  # must not block the stage that replaces it
    assert main(["landmarks", str(root), "--backend", "truth"]) == 0
    assert "1 missed" in capsys.readouterr().out
    out = np.load(root / "landmarks.npy")
    assert out.dtype == np.float32 and out.shape == (5, 68, 2)
    np.testing.assert_array_equal(out, lm)  # exact copy, NaN row kept
    info = json.loads((root / "landmarks.json").read_text())
    assert info["backend"] == "truth" and info["n_missed"] == 1 and info["missed_rows"] == [3]
    assert info["counts"]["train"] == {"n": 5, "missed": 1}
    ds = read_dataset(root, require_landmarks=True)
    assert ds.meta["backend"] == "truth" and ds.meta["source"] == "synth"
    # auto picks truth for a synth dataset
    assert compute_landmarks(root, "auto")["backend"] == "truth"


def test_truth_needs_synth_dataset(tmp_path, capsys):
    root = make_dataset(tmp_path / "ds", [np.zeros((H, W, 3), np.uint8)] * 2, source="rafdb")
    with pytest.raises(DataError, match="provided_landmarks.npy: not found; the truth landmark backend needs"):
        compute_landmarks(root, "truth")
    assert "palbench synth" in one_line_error(capsys, ["landmarks", str(root), "--backend", "truth"], root)


def test_file_backend_npy_and_csv(small, tmp_path):
    root, lm = small
    # provided_landmarks.npy (what the AffectNet importer writes)
    info = compute_landmarks(root, "file")
    assert info["backend"] == "file" and info["n_missed"] == 1
    np.testing.assert_array_equal(np.load(root / "landmarks.npy"), lm)
    # a user .npy, float64 is accepted and stored as float32
    user = lm.astype(np.float64) + 0.25
    np.save(tmp_path / "user.npy", user)
    compute_landmarks(root, "file", source=tmp_path / "user.npy")
    np.testing.assert_allclose(np.load(root / "landmarks.npy"), user, rtol=0, atol=1e-5)
    # CSV, interleaved x0,y0,...; with and without a header; empty cells = no face
    flat = lm.reshape(5, 136).astype(object)
    flat[3] = ""
    pd.DataFrame(flat).to_csv(tmp_path / "plain.csv", header=False, index=False)
    compute_landmarks(root, "file", source=tmp_path / "plain.csv")
    np.testing.assert_allclose(np.load(root / "landmarks.npy"), lm, atol=1e-4)
    # named columns in another order (all x, then all y) are matched by name
    names = [f"x{k}" for k in range(68)] + [f"y{k}" for k in range(68)]
    table = pd.DataFrame(np.concatenate([lm[..., 0], lm[..., 1]], axis=1), columns=names)
    table.to_csv(tmp_path / "named.csv", index=False)
    compute_landmarks(root, "file", source=tmp_path / "named.csv")
    np.testing.assert_allclose(np.load(root / "landmarks.npy"), lm, atol=1e-4)


def _bad_sources(lm):
    wrong_shape = np.zeros((5, 68, 3), np.float32)
    wrong_rows = lm[:4]
    partial = lm.copy()
    partial[2, 10] = np.nan
    out_of_frame = lm.copy()
    out_of_frame[1, 5] = (W * 1.6, 10)  # 60% of the width beyond the right edge
    normalised = lm.copy()
    normalised[4] = lm[4] / [W, H]
    return {
        "shape": (wrong_shape, r"shape \(5, 68, 3\); expected \(5, 68, 2\)"),
        "rows": (wrong_rows, r"shape \(4, 68, 2\); expected \(5, 68, 2\), one row per samples.csv row"),
        "partial": (partial, "row 2: some but not all landmark coordinates are NaN"),
        "frame": (out_of_frame, r"row 1 \(1.png\): landmark 5 at \(102.4, 10.0\) lies more than 50%"),
        "normalised": (normalised, r"row 4 \(4.png\): .*look normalised"),
    }


@pytest.mark.parametrize("case", ["shape", "rows", "partial", "frame", "normalised"])
def test_file_backend_rejects_bad_landmarks(small, tmp_path, capsys, case):
    root, lm = small
    array, message = _bad_sources(lm)[case]
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(DataError, match=message) as e:
        compute_landmarks(root, "file", source=tmp_path / "bad.npy")
    assert str(tmp_path / "bad.npy") in str(e.value) and "\n" not in str(e.value)
    argv = ["landmarks", str(root), "--backend", "file", "--source", str(tmp_path / "bad.npy")]
    err = one_line_error(capsys, argv, root)
    assert "bad.npy" in err
    # the same checks guard the truth backend's provided_landmarks.npy
    if case in ("frame", "partial"):
        np.save(root / "provided_landmarks.npy", array)
        err = one_line_error(capsys, ["landmarks", str(root), "--backend", "truth"], root)
        assert "provided_landmarks.npy" in err


def test_file_backend_csv_errors(small, tmp_path):
    root, lm = small
    pd.DataFrame(lm.reshape(5, 136)[:, :130]).to_csv(tmp_path / "narrow.csv", header=False, index=False)
    with pytest.raises(DataError, match=r"narrow.csv: 130 columns; expected 136"):
        compute_landmarks(root, "file", source=tmp_path / "narrow.csv")
    flat = lm.reshape(5, 136).astype(object)
    flat[3] = 1.0
    flat[3, 7] = "abc"
    pd.DataFrame(flat).to_csv(tmp_path / "text.csv", header=False, index=False)
    with pytest.raises(DataError, match=r"text.csv: row 3: value 'abc' of y3 is not a number"):
        compute_landmarks(root, "file", source=tmp_path / "text.csv")
    with pytest.raises(DataError, match="unsupported landmark file type '.txt'"):
        (tmp_path / "x.txt").write_text("1")
        compute_landmarks(root, "file", source=tmp_path / "x.txt")
    with pytest.raises(ConfigError, match="--source applies to the file landmark backend"):
        compute_landmarks(root, "truth", source=tmp_path / "x.txt")


# ---------------------------------------------------------------- dlib on a real face


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    return data.astronaut()  # 512x512 RGB, one face near (175..266, 76..170)


@pytest.fixture(scope="module")
def dlib_whole():
    return get_backend("dlib")


def assert_plausible_face(pts, box, slack=12):
    """68 iBUG points inside ``box`` (± slack px) with eyes above the nose above the mouth above the chin."""
    x0, y0, x1, y1 = box
    assert pts.shape == (68, 2) and pts.dtype == np.float32 and np.isfinite(pts).all()
    assert (pts[:, 0] >= x0 - slack).all() and (pts[:, 0] <= x1 + slack).all()
    assert (pts[:, 1] >= y0 - slack).all() and (pts[:, 1] <= y1 + slack).all()
    eyes, nose_tip, mouth, chin = pts[36:48, 1].mean(), pts[30, 1], pts[48:68, 1].mean(), pts[8, 1]
    assert eyes < nose_tip < mouth < chin
    assert pts[36:42, 0].mean() < pts[30, 0] < pts[42:48, 0].mean()  # image-left eye, nose, image-right eye
    assert pts[0, 0] < pts[16, 0]  # jaw runs from image-left to image-right


def test_dlib_whole_image_detects_the_face(astronaut, dlib_whole):
    box = dlib_whole.detect(astronaut)
    assert box is not None
    x0, y0, x1, y1 = box
    assert 160 < x0 < 200 and 60 < y0 < 100 and 250 < x1 < 290 and 150 < y1 < 190  # the astronaut's face
    pts = dlib_whole.predict(astronaut, None)
    assert_plausible_face(pts, box)
    np.testing.assert_array_equal(pts, dlib_whole.predict(astronaut, box))  # box passing = detection


def test_dlib_aligned_crop_uses_full_image_box(astronaut, dlib_whole):
    x0, y0, x1, y1 = dlib_whole.detect(astronaut)
    crop = np.ascontiguousarray(astronaut[y0 - 10 : y1 + 11, x0 - 10 : x1 + 11])  # an "aligned" face crop
    aligned = get_backend("dlib", aligned=True)
    pts = aligned.predict(crop, None)
    assert_plausible_face(pts, (0, 0, crop.shape[1] - 1, crop.shape[0] - 1))
    whole = dlib_whole.predict(astronaut, None) - [x0 - 10, y0 - 10]
    assert np.median(np.linalg.norm(pts - whole, axis=1)) < 4  # same face, same points (± a few px)


def test_dlib_blank_image_is_a_miss_in_the_stage(tmp_path, astronaut, dlib_whole, capsys):
    blank = np.full((120, 120, 3), 128, np.uint8)
    assert dlib_whole.detect(blank) is None and dlib_whole.predict(blank, None) is None
    root = make_dataset(tmp_path / "ds", [astronaut, blank], source="folder")
    assert main(["landmarks", str(root), "--backend", "dlib"]) == 0
    assert "1/2 faces, 1 missed" in capsys.readouterr().out
    lm = read_dataset(root, require_landmarks=True).landmarks
    assert np.isnan(lm[1]).all() and np.isfinite(lm[0]).all()
    np.testing.assert_array_equal(lm[0], dlib_whole.predict(astronaut, None))
    info = json.loads((root / "landmarks.json").read_text())
    assert info["n_missed"] == 1 and info["missed_rows"] == [1]
    assert info["options"]["aligned"] is False and info["options"]["requested"] == "dlib"
    misses = pd.read_csv(root / "misses.csv")
    assert misses.to_dict("records") == [{"row": 1, "path": "1.png", "split": "train", "label": 1}]


# ---------------------------------------------------------------- face_alignment adapter, random weights


@pytest.fixture(scope="module")
def fa_weights(tmp_path_factory):
    """A torch home holding random FAN + S3FD weights under face_alignment's file names; an S3FD that never
    fires; the paths. The S3FD heads are zeroed, so every anchor gives its prior box with a score set by
    the bias (face: softmax(+10 vs -10); none: the reverse)."""
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    from palbench.landmarks.fan import DETECTOR_FILE, FAN_FILE

    home = tmp_path_factory.mktemp("torch_home")
    ckpt = home / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(FAN(4).state_dict(), ckpt / FAN_FILE)

    def detector(face: bool):
        sd = s3fd().state_dict()
        for k, v in sd.items():
            if "mbox" in k:
                v.zero_()
            if "mbox_conf.bias" in k:
                v.fill_(-10.0 if face else 10.0)
                v[-1] = 10.0 if face else -10.0  # last channel = face
        return sd

    torch.save(detector(True), ckpt / DETECTOR_FILE)
    torch.save(detector(False), home / "s3fd_never.pth")
    return {"home": home, "fan": ckpt / FAN_FILE, "detector": ckpt / DETECTOR_FILE, "never": home / "s3fd_never.pth"}


@pytest.fixture
def no_network(monkeypatch):
    """Every way face_alignment / torch.hub could download raises."""
    import face_alignment.utils
    import torch.hub

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:1]}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(face_alignment.utils, "download_url_to_file", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return refuse


@pytest.fixture(autouse=True)
def _plain_python_heatmap_decoding(request, monkeypatch):
    """face_alignment decodes heatmaps with two numba-jitted functions; compiling them costs 7-15 s per process
    on 2 cores. FAN tests run the very same Python functions un-jitted (``py_func``); production keeps the JIT."""
    if "fa_weights" not in request.fixturenames:
        return
    import face_alignment.utils as fa_utils

    monkeypatch.setattr(fa_utils, "_get_preds_fromhm", fa_utils._get_preds_fromhm.py_func)
    monkeypatch.setattr(fa_utils, "transform_np", fa_utils.transform_np.py_func)


@pytest.fixture(scope="module")
def texture():
    return np.random.default_rng(1).integers(0, 256, (300, 300, 3), dtype=np.uint8)


def test_fan_box_passing_maps_to_image_coordinates(fa_weights, texture, monkeypatch, no_network):
    monkeypatch.setenv("TORCH_HOME", str(fa_weights["home"]))  # found where face_alignment looks
    fan = get_backend("face_alignment", flip_input=False)
    assert fan.paths == {"fan": fa_weights["fan"], "detector": fa_weights["detector"]}
    box = (100, 100, 177, 177)
    pts = fan.predict(texture, box)
    assert pts.shape == (68, 2) and pts.dtype == np.float32 and np.isfinite(pts).all()
    # FAN's crop: side 200*(w+h)/195 around the box centre moved up by 0.12*h; every point lies in it
    w = h = 77
    cx, cy, half = 138.5, 138.5 - 0.12 * h, 100 * (w + h) / 195
    assert (np.abs(pts[:, 0] - cx) <= half + 1).all() and (np.abs(pts[:, 1] - cy) <= half + 1).all()
    # same pixels under a shifted box: the same points, shifted (image coordinates, not crop coordinates)
    for dx, dy in [(-30, 17)]:
        moved = np.roll(texture, (dy, dx), axis=(0, 1))
        shifted = fan.predict(moved, (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy))
        np.testing.assert_allclose(shifted, pts + [dx, dy], atol=1)


def test_fan_detector_and_no_face(fa_weights, texture, no_network):
    image = texture[:160, :160]
    fan = get_backend(
        "face_alignment", weights={"fan": fa_weights["fan"], "detector": fa_weights["detector"]}, flip_input=False
    )
    faces = fan._fa.face_detector.detect_from_image(image.copy())  # S3FD straight from face_alignment
    assert len(faces) > 1
    largest = max(faces, key=lambda f: (f[2] - f[0]) * (f[3] - f[1]))
    seen = []
    run_fan = fan._fa.get_landmarks_from_image

    def spy(img, detected_faces=None, **kwargs):
        seen.append(detected_faces)
        return run_fan(img, detected_faces=detected_faces, **kwargs)

    fan._fa.get_landmarks_from_image = spy
    pts = fan.predict(image, None)
    assert pts.shape == (68, 2) and np.isfinite(pts).all()
    assert len(seen) == 1 and len(seen[0]) == 1  # one face, the largest detection, passed as detected_faces
    np.testing.assert_allclose(seen[0][0], largest[:4])
    never = get_backend(
        "face_alignment", weights={"fan": fa_weights["fan"], "detector": fa_weights["never"]}, flip_input=False
    )
    assert never.detect(image) is None and never.predict(image, None) is None


def test_fan_aligned_needs_no_detector(fa_weights, texture, tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # empty cache: no detector file anywhere
    fan = get_backend("face_alignment", aligned=True, weights={"fan": str(fa_weights["fan"])}, flip_input=False)
    assert "detector" not in fan.paths
    crop = np.ascontiguousarray(texture[50:150, 60:160])
    pts = fan.predict(crop, (0, 0, 99, 99))  # the full-image box
    assert pts.shape == (68, 2) and np.isfinite(pts).all()
    # the stage, aligned: every image gets the full-image box; no detector file needed
    root = make_dataset(tmp_path / "ds", [crop], source="rafdb")
    info = compute_landmarks(root, "face_alignment", aligned=True, weights={"fan": fa_weights["fan"]}, flip_input=False)
    np.testing.assert_array_equal(np.load(root / "landmarks.npy")[0], pts)
    assert info["n_missed"] == 0 and info["options"]["aligned"] is True and info["options"]["detector"] is None


def test_fan_missing_weights_never_download(small, tmp_path, monkeypatch, capsys, no_network):
    from palbench.landmarks.fan import DETECTOR_FILE, FAN_FILE

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(WeightsError) as e:
        get_backend("face_alignment")
    msg = str(e.value)
    assert "\n" not in msg and "--allow-download" in msg
    assert str(tmp_path / "empty" / "hub" / "checkpoints" / FAN_FILE) in msg and DETECTOR_FILE in msg
    with pytest.raises(WeightsError, match="nope.pth: face_alignment fan weights not found"):
        get_backend("face_alignment", weights={"fan": tmp_path / "nope.pth"})
    root = small[0]
    err = one_line_error(capsys, ["landmarks", str(root), "--backend", "face_alignment", "--aligned"], root)
    assert FAN_FILE in err and DETECTOR_FILE not in err  # aligned: no detector needed


def test_fan_allow_download_and_bad_file(fa_weights, tmp_path, monkeypatch):
    import face_alignment.utils

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    calls = []

    def fake_download(url, dst, *args, **kwargs):  # stands in for the network, writes the random weights
        calls.append(url)
        dst_path = tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[-1]
        dst_path.write_bytes(fa_weights["fan"].read_bytes())
        assert str(dst) == str(dst_path)

    monkeypatch.setattr(face_alignment.utils, "download_url_to_file", fake_download)
    fan = get_backend("face_alignment", aligned=True, allow_download=True)
    assert calls == ["https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar"]
    assert fan.paths == {"fan": None}
    torch.save({"not": torch.zeros(1)}, tmp_path / "junk.pth")
    with pytest.raises(WeightsError, match=r"junk.pth: not a face_alignment FAN\(4\) state dict"):
        get_backend("face_alignment", aligned=True, weights={"fan": tmp_path / "junk.pth"})
    with pytest.raises(WeightsError, match=r"junk.pth: cannot load the S3FD face detector weights"):
        get_backend("face_alignment", weights={"fan": fa_weights["fan"], "detector": tmp_path / "junk.pth"})
    with pytest.raises(ConfigError, match="unknown key"):
        get_backend("face_alignment", weights={"depth": tmp_path / "junk.pth"})


def test_fan_with_dlib_detector_needs_no_detector_file(fa_weights, astronaut, dlib_whole, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    fan = get_backend("face_alignment", detector="dlib", weights={"fan": fa_weights["fan"]})
    assert fan.detect(astronaut) == dlib_whole.detect(astronaut)
    assert fan.options()["detector"] == "dlib" and fan.options()["weights"] == {"fan": fa_weights["fan"].name}


# ---------------------------------------------------------------- quality checks (palbench.landmarks.qa)


def placed_landmarks(x0, y0, x1, y1, rng):
    """68 points inside the box (x0, y0)-(x1, y1), two of them on its corners: float32 [68, 2]."""
    pts = np.stack([rng.uniform(x0, x1, 68), rng.uniform(y0, y1, 68)], axis=-1)
    pts[0], pts[1] = (x0, y0), (x1, y1)
    return pts.astype(np.float32)


@pytest.fixture
def placed(tmp_path):
    """A 5-image dataset (RGB, grayscale, palette, blank, 16-bit) with provided landmarks: row 0 in a 32x24 box,
    row 1 the same with 6 points 3 px above the frame, row 2 on the frame's corners, row 3 no face."""
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(5)]
    lm = np.stack([placed_landmarks(8, 6, 40, 30, rng) for _ in range(5)])
    lm[1, 10:16, 1] = -3  # outside the frame, within the file backend's margin
    lm[2] = placed_landmarks(0, 0, W - 1, H - 1, rng)  # on the frame's edges: inside
    lm[3] = np.nan
    root = make_dataset(tmp_path / "ds", images, lm, source="rafdb")
    Image.fromarray(images[1]).convert("L").save(root / "images" / "1.png")
    Image.fromarray(images[2]).convert("P").save(root / "images" / "2.png")
    Image.fromarray((images[4][..., 0].astype(np.uint16) * 257)).save(root / "images" / "4.png")  # 16-bit gray
    assert [Image.open(root / "images" / f"{i}.png").mode for i in (1, 2, 4)] == ["L", "P", "I;16"]
    return root, lm


def test_qa_files_on_placed_landmarks(placed, capsys):
    from palbench.landmarks.qa import GAP, INSIDE_COLOUR, MISS_COLOUR, OUTSIDE_COLOUR, TILE

    root, lm = placed
    assert main(["landmarks", str(root), "--backend", "file"]) == 0
    out = capsys.readouterr()
    table = pd.read_csv(root / "qa.csv")
    assert list(table.columns) == ["row", "path", "split", "missed", "spread", "outside"]
    assert table["row"].tolist() == [0, 1, 2, 3, 4] and table["path"].tolist() == [f"{i}.png" for i in range(5)]
    assert table["missed"].tolist() == [0, 0, 0, 1, 0] and table["outside"].tolist() == [0, 6, 0, 0, 0]
    diagonal = np.hypot(W, H)  # 80
    expected = [32 * 32 + 24 * 24, 32 * 32 + 33 * 33, (W - 1) ** 2 + (H - 1) ** 2]
    np.testing.assert_allclose(table["spread"][:3], np.sqrt(expected) / diagonal, atol=1e-4)
    assert table["spread"][0] == pytest.approx(0.5) and np.isnan(table["spread"][3])
    misses = pd.read_csv(root / "misses.csv")
    assert misses.to_dict("records") == [{"row": 3, "path": "3.png", "split": "train", "label": 3}]

    info = json.loads((root / "landmarks.json").read_text())
    qa = info["qa"]
    assert qa["n_found"] == 4 and qa["n_outside"] == 1 and qa["share_outside"] == 0.25 and qa["miss_rate"] == 0.2
    assert qa["median_spread"] == pytest.approx(float(np.median(table["spread"][[0, 1, 2, 4]])), abs=1e-4)
    assert "hog" not in qa
    # (a) 1 of 4 faces with points outside; not (e): a 20% miss rate is not above 20%; no aligned option
    assert len(info["warnings"]) == 1 and info["warnings"][0].startswith("1 of 4 faces (25.0%) have landmarks outside")
    assert str(root / "qa.csv") in info["warnings"][0]
    assert out.err.splitlines() == [f"palbench: warning: {info['warnings'][0]}"]

    sheet = Image.open(root / "sheet.png")
    assert sheet.format == "PNG" and sheet.mode == "RGB"
    assert sheet.size == (GAP + 5 * (TILE + GAP), TILE + 2 * GAP)  # 5 tiles on one line
    pixels = np.asarray(sheet)

    def tile(j):
        x = GAP + j * (TILE + GAP)
        return pixels[GAP : GAP + TILE, x : x + TILE]

    def count(t, colour):
        return int((t == colour).all(axis=-1).sum())

    for j in (0, 1, 2, 4):  # RGB, grayscale, palette, 16-bit: every found face gets green dots, no red frame
        assert count(tile(j), INSIDE_COLOUR) > 68, j
        assert count(tile(j)[:, :3], MISS_COLOUR) == 0, j
    assert count(tile(1), OUTSIDE_COLOUR) > 0 and count(tile(0), OUTSIDE_COLOUR) == 0
    assert count(tile(3)[:, :3], MISS_COLOUR) == 3 * TILE  # the missed image's red frame, left edge
    assert count(tile(3), INSIDE_COLOUR) == 0
    # deterministic: the same landmarks give the same bytes
    first = (root / "sheet.png").read_bytes()
    compute_landmarks(root, "file")
    assert (root / "sheet.png").read_bytes() == first


def test_qa_without_misses_or_warnings_and_stale_files(small, tmp_path):
    root, lm = small
    src = tmp_path / "all.npy"
    full = lm.copy()
    full[3] = lm[2]
    np.save(src, full)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "qa.csv").write_text("stale")
    info = compute_landmarks(root, "file", source=src, out=tmp_path / "out")
    assert info["warnings"] == [] and info["qa"]["n_outside"] == 0 and info["qa"]["miss_rate"] == 0.0
    assert (tmp_path / "out" / "misses.csv").read_text().splitlines() == ["row,path,split,label"]
    assert len(pd.read_csv(tmp_path / "out" / "qa.csv")) == 5
    assert Image.open(tmp_path / "out" / "sheet.png").size[0] > 0


def test_sheet_sample_is_spread_and_shows_a_few_misses():
    from palbench.landmarks.qa import SHEET_IMAGES, SHEET_MISSES, sheet_rows

    missed = np.zeros(1000, bool)
    missed[[5, 6, 7, 500, 998, 999]] = True
    rows = sheet_rows(missed)
    assert len(rows) == SHEET_IMAGES and len(set(rows.tolist())) == SHEET_IMAGES
    assert rows.tolist() == sorted(rows.tolist())
    assert missed[rows].sum() == SHEET_MISSES and {5, 999} <= set(rows.tolist())  # first and last missed rows
    found = rows[~missed[rows]]
    assert found[0] == 0 and found[-1] == 997 and np.diff(found).min() > 40  # spread over the whole dataset
    np.testing.assert_array_equal(rows, sheet_rows(missed))
    assert sheet_rows(np.zeros(5, bool)).tolist() == [0, 1, 2, 3, 4]
    assert sheet_rows(np.ones(30, bool)).size == SHEET_IMAGES  # only misses: the sheet shows misses
    few = np.ones(30, bool)
    few[[3, 17]] = False
    assert {3, 17} <= set(sheet_rows(few).tolist()) and sheet_rows(few).size == SHEET_IMAGES


def _qa(**kw):
    base = {"n_samples": 100, "n_missed": 0, "n_found": 100, "miss_rate": 0.0, "median_spread": 0.7,
            "n_outside": 0, "share_outside": 0.0}
    return {**base, **kw}


def test_plausibility_thresholds(tmp_path):
    from palbench.landmarks.qa import plausibility_warnings as warn

    assert warn(_qa(), "dlib", True, tmp_path) == [] and warn(_qa(), "truth", None, tmp_path) == []
    assert warn(_qa(n_outside=2, share_outside=0.02), "dlib", False, tmp_path) == []  # 2% is not above 2%
    assert "outside the image frame" in warn(_qa(n_outside=3, share_outside=0.03), "dlib", False, tmp_path)[0]
    # (b) small faces in "aligned" images; not for backends without an aligned option, nor aligned=False
    (small,) = warn(_qa(median_spread=0.3), "face_alignment", True, tmp_path)
    assert "median 30% of the image diagonal" in small and "aligned: false" in small
    assert warn(_qa(median_spread=0.3), "file", None, tmp_path) == []
    assert warn(_qa(median_spread=0.3), "dlib", False, tmp_path) == []
    # (d) points that fill "unaligned" images
    (full,) = warn(_qa(median_spread=0.95), "dlib", False, tmp_path)
    assert "fill the frame" in full and "aligned: true" in full
    assert warn(_qa(median_spread=0.95), "dlib", True, tmp_path) == []
    assert warn(_qa(median_spread=0.95), "truth", None, tmp_path) == []
    # (c) the HOG check: more than half of the detected faces small
    hog = {"n_checked": 16, "n_detected": 4, "n_small": 2}
    assert warn(_qa(hog=hog), "dlib", True, tmp_path) == []
    assert "whole photos" in warn(_qa(hog={**hog, "n_small": 3}), "dlib", True, tmp_path)[0]
    assert warn(_qa(hog={**hog, "n_detected": 0, "n_small": 0}), "dlib", True, tmp_path) == []
    # (e) misses, naming misses.csv
    (missing,) = warn(_qa(n_missed=21, n_found=79, miss_rate=0.21), "dlib", False, tmp_path)
    assert missing.startswith("21 of 100 images (21.0%) have no landmarks") and str(tmp_path / "misses.csv") in missing
    assert warn(_qa(n_missed=20, n_found=80, miss_rate=0.2), "dlib", False, tmp_path) == []


def test_dlib_aligned_on_whole_photos_warns(tmp_path, astronaut, capsys):
    root = make_dataset(tmp_path / "ds", [astronaut, np.ascontiguousarray(astronaut[:, ::-1])], source="folder")
    assert main(["landmarks", str(root), "--backend", "dlib", "--aligned"]) == 0
    err = capsys.readouterr().err
    info = json.loads((root / "landmarks.json").read_text())
    assert info["qa"]["hog"] == {"n_checked": 2, "n_detected": 2, "n_small": 2}
    (whole,) = [w for w in info["warnings"] if "whole photos" in w]
    assert whole.startswith("dlib with aligned=true: on 2 of the 2 sampled images") and "aligned: false" in whole
    assert f"palbench: warning: {whole}" in err.splitlines()
    # the same photos without aligned: the detector finds the faces, no such warning, no HOG check recorded
    info = compute_landmarks(root, "dlib", aligned=False)
    assert "hog" not in info["qa"] and not [w for w in info["warnings"] if "whole photos" in w]
    assert info["warnings"] == [] and 0.1 < info["qa"]["median_spread"] < 0.35


def test_dlib_aligned_on_a_face_crop_does_not_warn(tmp_path, astronaut, dlib_whole):
    x0, y0, x1, y1 = dlib_whole.detect(astronaut)
    crop = np.ascontiguousarray(astronaut[y0 - 10 : y1 + 11, x0 - 10 : x1 + 11])
    root = make_dataset(tmp_path / "ds", [crop], source="folder")
    info = compute_landmarks(root, "dlib", aligned=True)
    assert info["qa"]["hog"]["n_small"] == 0 and info["qa"]["hog"]["n_checked"] == 1
    assert info["warnings"] == [] and info["qa"]["median_spread"] > 0.35
