"""palbench.data.align: crop geometry (points land where the drawn features moved), modes, faces not found,
and `import folder --align` / `palbench align` on photos made from synthetic faces."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from palbench.cli import main
from palbench.data.align import crop_face, crop_matrix, face_frame, move_points, warp
from palbench.data.images import to_rgb
from palbench.data.synth.photos import make_photo_folder

#: Well-separated landmarks whose drawn dots are found again in the crop: jaw ends, chin, eye corners, nose
#: tip, mouth corners (iBUG-68 indices).
PROBES = (0, 8, 16, 36, 39, 42, 45, 30, 48, 54)


def face_points(centre=(210.3, 140.7), angle_deg=17.0, scale=1.3) -> np.ndarray:
    """A plausible 68-point layout (the synthetic face's landmarks), rotated, scaled and placed."""
    from palbench.data.synth.params import example_params
    from palbench.data.synth.render import render_sample

    _, lm, _ = render_sample(example_params(3).clean(), 100)
    t = math.radians(angle_deg)
    rot = scale * np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    return (lm - lm.mean(axis=0)) @ rot.T + np.asarray(centre)


def dot_image(point, size=(400, 300), sigma=2.0) -> Image.Image:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    dot = np.exp(-((xx - point[0]) ** 2 + (yy - point[1]) ** 2) / (2 * sigma**2))
    return Image.fromarray(np.rint(dot * 255).astype(np.uint8)).convert("RGB")


def centroid(image: Image.Image) -> np.ndarray:
    a = np.asarray(image, np.float64)[..., 0]
    yy, xx = np.mgrid[0 : a.shape[0], 0 : a.shape[1]]
    return np.array([(a * xx).sum(), (a * yy).sum()]) / a.sum()


@pytest.mark.parametrize("angle_deg, scale, crop_size", [(17.0, 1.3, 112), (-9.0, 4.0, 112), (0.0, 0.6, 64)])
def test_landmarks_land_where_the_drawn_features_moved(angle_deg, scale, crop_size):
    """Each probe landmark is drawn as a dot in the photo; after cropping, the dot's centre is where the moved
    landmark says (≤ 1 px; ~0.01 px away from the edges), also through the box-filter reduction of a large face."""
    size = (1600, 1200) if scale > 2 else (400, 300)
    points = face_points(centre=(size[0] / 2 + 3.3, size[1] / 2 - 5.1), angle_deg=angle_deg, scale=scale)
    matrix = crop_matrix(points, crop_size)
    moved = move_points(points, matrix)
    for j in PROBES:
        crop = warp(dot_image(points[j], size, sigma=2.0 * scale), matrix, crop_size)
        assert np.abs(centroid(crop) - moved[j]).max() <= 1.0, j
        assert np.abs(centroid(crop) - moved[j]).max() <= 0.2, j  # a half-pixel slip would show (0.5 px)


def test_crop_levels_the_eye_line_at_a_fixed_scale_and_centre():
    for angle, scale in ((25.0, 1.0), (-12.0, 2.5)):
        points = face_points(angle_deg=angle, scale=scale)
        moved = move_points(points, crop_matrix(points, 112, 0.4))
        eye_l, eye_r = moved[36:42].mean(axis=0), moved[42:48].mean(axis=0)
        assert abs(eye_l[1] - eye_r[1]) < 1e-6 and eye_l[0] < eye_r[0]  # level, not mirrored
        centre, _, d = face_frame(moved)
        assert d == pytest.approx(112 / 2.8)  # the face scale fills 1 / (2 (1 + margin)) of the crop
        np.testing.assert_allclose(centre, [55.5, 55.5], atol=1e-6)
        assert (moved > -5).all() and (moved < 117).all()  # the face is in the crop


@pytest.mark.parametrize("mode", ["L", "P", "RGB", "I;16"])
def test_any_mode_gives_an_8bit_rgb_crop(mode, tmp_path):
    gray = np.full((300, 400), 128, np.uint8)
    gray[130:170, 180:220] = 200
    if mode == "I;16":
        Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "x.tif")
        im = Image.open(tmp_path / "x.tif")
        assert im.mode.startswith("I;16") and np.asarray(im.convert("RGB")).min() == 255  # PIL alone clips
    elif mode == "P":
        im = Image.fromarray(gray).convert("RGB").quantize(8)
    else:
        im = Image.fromarray(gray).convert(mode)
    crop, lm = crop_face(im, face_points(centre=(200, 150), scale=1.0), 64)
    a = np.asarray(crop)
    assert crop.mode == "RGB" and a.shape == (64, 64, 3) and lm.shape == (68, 2)
    assert abs(int(a[32, 32, 0]) - 200) <= 2 and abs(int(a[2, 2, 0]) - 128) <= 2  # no clipping, no shift
    assert abs(int(np.asarray(to_rgb(im))[0, 0, 0]) - 128) <= 1


def test_no_face_is_kept_whole_or_dropped():
    im = Image.new("RGB", (300, 100), (90, 90, 90))
    crop, lm = crop_face(im, None, 64)
    a = np.asarray(crop)
    assert a.shape == (64, 64, 3) and np.isnan(lm).all()
    assert a[0, 0, 0] == 0 and a[32, 32, 0] == 90  # letterboxed: black bands above and below


# ---------------------------------------------------------------- the photo folder, dlib, the import


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """12 photos of 4 people (3 classes each), faces scaled, rotated, pasted; plus two photos without a face."""
    root = tmp_path_factory.mktemp("photos") / "mine"
    table = make_photo_folder(root, subjects=4, classes=["surprise", "happiness", "anger"], seed=3)
    return root, table


def test_import_folder_align_crops_each_photo_to_its_face(photos, tmp_path, capsys):
    root, table = photos
    out = tmp_path / "aligned"
    assert main(["import", "folder", str(root / "labels.csv"), str(out), "--align", "dlib",
                 "--fractions", "0.5,0.25,0.25"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["align"]["no_face"] <= 1 and meta["image_size"] == [112, 112]  # dlib finds (nearly) every face
    assert meta["align"]["landmarks"]["backend"] == "dlib"
    assert "subject-disjoint" in meta["subjects"]  # the subject column was used without an option
    samples = pd.read_csv(out / "samples.csv")
    moved = np.load(out / "provided_landmarks.npy")
    assert len(samples) == len(table) and samples["path"].str.endswith(".png").all()
    assert not (out / "_photos").exists() and not list(out.glob("images/**/*.jpg"))
    # The dlib points of each photo, moved by the crop of those points, are what the dataset keeps; and they
    # sit within a few pixels of where the drawn face's true landmarks moved.
    from palbench.landmarks import get_backend, load_image

    dlib = get_backend("dlib")
    truth = np.load(root / "landmarks.npy")
    source = {str(Path(p).with_suffix(".png")): i for i, p in enumerate(table["path"])}
    found = [k for k in range(len(samples)) if np.isfinite(moved[k]).all()]
    for k in found[:4]:
        i = source[samples["path"][k]]
        raw = dlib.predict(load_image(root / table["path"][i]), None)
        matrix = crop_matrix(raw, 112)
        np.testing.assert_allclose(moved[k], move_points(raw, matrix), atol=1e-3)
        assert np.abs(move_points(truth[i], matrix) - moved[k]).mean() < 4.0
        eyes = moved[k, 36:42].mean(axis=0)[1] - moved[k, 42:48].mean(axis=0)[1]
        assert abs(eyes) < 1e-3


def test_align_command_counts_and_drops_photos_without_a_face(photos, tmp_path, capsys):
    root, table = photos
    blank = root.parent / "with_blank"
    if not blank.exists():
        import shutil

        shutil.copytree(root, blank)
        Image.new("RGB", (400, 300), (120, 130, 140)).save(blank / "photos" / "blank.png")
        extra = pd.DataFrame([{"path": "photos/blank.png", "label": "anger", "subject": "person000"}])
        pd.concat([table, extra]).to_csv(blank / "labels.csv", index=False)
    raw = tmp_path / "raw"
    assert main(["import", "folder", str(blank / "labels.csv"), str(raw), "--fractions", "0.5,0.25,0.25"]) == 0
    kept, dropped = tmp_path / "kept", tmp_path / "dropped"
    assert main(["align", str(raw), str(kept)]) == 0
    err = capsys.readouterr().err
    meta = json.loads((kept / "meta.json").read_text())
    missed = meta["align"]["no_face"]
    assert "photos/blank.png" in meta["align"]["no_face_paths"] and 1 <= missed <= 2  # the blank, maybe one photo
    assert f"no face found in {missed} image(s)" in err and "kept whole" in err
    assert meta["n_samples"] == len(table) + 1
    lm = np.load(kept / "provided_landmarks.npy")
    assert np.isnan(lm).all(axis=(1, 2)).sum() == missed
    assert main(["align", str(raw), str(dropped), "--drop-no-face"]) == 0
    meta = json.loads((dropped / "meta.json").read_text())
    assert meta["align"]["dropped_no_face"] == missed and meta["n_samples"] == len(table) + 1 - missed
    assert "photos/blank.png" not in pd.read_csv(dropped / "samples.csv")["path"].tolist()


def test_a_folder_without_any_face_is_one_line_exit_2_nothing_written(tmp_path, capsys):
    src = tmp_path / "blank"
    (src / "img").mkdir(parents=True)
    rows = []
    for i in range(12):
        Image.new("RGB", (200, 150), (40 + 10 * i, 90, 90)).save(src / "img" / f"{i}.png")
        rows.append({"path": f"img/{i}.png", "label": ["happy", "sad", "angry"][i % 3], "subject": f"p{i % 6}"})
    pd.DataFrame(rows).to_csv(src / "labels.csv", index=False)
    out = tmp_path / "out"
    code = main(["import", "folder", str(src / "labels.csv"), str(out), "--align", "dlib", "--fractions",
                 "0.34,0.33,0.33"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no face found in any of its 12 images" in err[0]
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


@pytest.mark.parametrize("problem, needle", [
    ("missing image", "photos/s009/gone.png: image not found"),
    ("label outside the classes", "unknown label 'contempt'"),
])
def test_bad_photo_folders_are_one_line_exit_2_nothing_written(photos, tmp_path, capsys, problem, needle):
    root, table = photos
    rows = table.copy()
    if problem == "missing image":
        rows.loc[len(rows)] = {"path": "photos/s009/gone.png", "label": "anger", "subject": "person009"}
    else:
        rows.loc[3, "label"] = "contempt"
    csv = root / f"labels_{problem.replace(' ', '_')}.csv"
    rows.to_csv(csv, index=False)
    out = tmp_path / "out"
    code = main(["import", "folder", str(csv), str(out), "--align", "dlib", "--fractions", "0.5,0.25,0.25"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_synth_align_frames_the_faces_like_the_photos(tmp_path, capsys):
    """`synth --align`: the built-in faces cropped from their exact landmarks (the protocol new pretraining)."""
    whole, crops = tmp_path / "whole", tmp_path / "crops"
    common = ["--n-train", "7", "--n-val", "7", "--n-test", "7", "--size", "96", "--decoy-p", "0", "--decoy-p-test", "0"]
    assert main(["synth", str(whole), *common]) == 0
    assert main(["synth", str(crops), *common, "--align", "--crop-size", "64"]) == 0
    meta = json.loads((crops / "meta.json").read_text())
    assert meta["image_size"] == [64, 64] and meta["align"]["no_face"] == 0
    assert meta["align"]["landmarks"]["backend"] == "truth"
    truth, moved = np.load(whole / "provided_landmarks.npy"), np.load(crops / "provided_landmarks.npy")
    for i in range(len(truth)):
        np.testing.assert_allclose(moved[i], move_points(truth[i], crop_matrix(truth[i], 64)), atol=1e-3)
    assert main(["synth", str(tmp_path / "decoy"), *common[:-4], "--align"]) == 2
    assert "--decoy-p 0 --decoy-p-test 0" in capsys.readouterr().err
