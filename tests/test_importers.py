"""Importers on small fake trees in the official layouts → the canonical dataset; every bad input → exit 2."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from palbench.cli import main
from palbench.data.canonical import CLASSES, read_dataset

# --------------------------------------------------------------------------------------------- helpers


def _img(path: Path, size=(12, 10), value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value // 2, 255 - value)).save(path)


def _one_error_line(capsys, *needles):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("palbench: error: "), err
    for n in needles:
        assert n in err, err
    return err


def _dist(labels, k=7):
    return np.bincount(labels, minlength=k) / len(labels)


# RAF-DB ids 1-7 = surprise ... neutral. Train imbalanced, test with another distribution.
RAF_TRAIN = [4, 4, 6, 14, 10, 8, 14]  # 60
RAF_TEST = [1, 1, 2, 3, 2, 1, 4]  # 14


def make_rafdb(root: Path, train=RAF_TRAIN, test=RAF_TEST) -> Path:
    basic = root / "basic"
    lines, n = [], 0
    for split, counts in (("train", train), ("test", test)):
        for k, c in enumerate(counts):
            for _ in range(c):
                n += 1
                name = f"{split}_{n:05d}"
                lines.append(f"{name}.jpg {k + 1}")
                _img(basic / "Image" / "aligned" / f"{name}_aligned.jpg", (10, 10), 20 * k)
    (basic / "EmoLabel").mkdir(parents=True)
    (basic / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return root


# --------------------------------------------------------------------------------------------- RAF-DB


def test_rafdb_canonical_output(tmp_path, capsys):
    src, out = make_rafdb(tmp_path / "raf"), tmp_path / "data" / "rafdb"
    assert main(["import", "rafdb", str(src), str(out), "--val-fraction", "0.25", "--seed", "1"]) == 0
    assert "74 images (train 45, val 15, test 14)" in capsys.readouterr().out
    ds = read_dataset(out)
    s = ds.samples
    assert len(s) == 74 and list(s.columns) == ["path", "label", "split"]
    assert (ds.root / "images" / s.path).map(Path.is_file).all()
    # labels shift by one; the prefix gives the official split, val comes from train only
    row = s[s.path == "train_00001_aligned.jpg"].iloc[0]
    assert row.label == 0 and row.split in ("train", "val")
    assert (s[s.path.str.startswith("test_")].split == "test").all()
    assert (s[s.path.str.startswith("train_")].split != "test").all()
    assert np.bincount(s[s.split == "test"].label, minlength=7).tolist() == RAF_TEST
    val = s[s.split == "val"].label.to_numpy()
    assert np.abs(_dist(val) - np.array(RAF_TEST) / 14).max() <= 1 / len(val) + 1e-9  # test's distribution
    assert ds.meta["image_size"] == [10, 10] and ds.meta["source"] == "rafdb"
    assert "stratified to the test label distribution" in ds.meta["validation"]
    assert ds.meta["counts"]["val"][CLASSES[6]] == int((val == 6).sum())


def test_rafdb_is_deterministic_with_a_seed(tmp_path):
    src = make_rafdb(tmp_path / "raf")
    for name, seed, workers in (("a", 3, 1), ("b", 3, 2), ("c", 4, 1)):  # b: through the process pool
        argv = [str(src / "basic"), str(tmp_path / name), "--seed", str(seed), "--workers", str(workers)]
        assert main(["import", "rafdb", *argv]) == 0
    a, b, c = ((tmp_path / n / "samples.csv").read_text() for n in "abc")
    assert a == b and a != c
    assert (tmp_path / "b" / "images" / "test_00070_aligned.jpg").read_bytes() == (
        src / "basic" / "Image" / "aligned" / "test_00070_aligned.jpg"
    ).read_bytes()


def test_rafdb_missing_root_and_label_file(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["import", "rafdb", str(tmp_path / "nope"), str(out)]) == 2
    _one_error_line(capsys, "nope", "not found")
    (tmp_path / "empty").mkdir()
    assert main(["import", "rafdb", str(tmp_path / "empty"), str(out)]) == 2
    _one_error_line(capsys, "list_patition_label.txt", "label file not found")
    assert not out.exists()


@pytest.mark.parametrize(
    "line, needle",
    [("train_99999.jpg 8", "label '8' is not a RAF-DB basic label id 1-7"), ("val_00001.jpg 2", "expected")],
)
def test_rafdb_bad_label_lines(tmp_path, capsys, line, needle):
    src, out = make_rafdb(tmp_path / "raf"), tmp_path / "out"
    label_file = src / "basic" / "EmoLabel" / "list_patition_label.txt"
    label_file.write_text(label_file.read_text() + line + "\n")
    assert main(["import", "rafdb", str(src), str(out)]) == 2
    _one_error_line(capsys, needle, "line 75")
    assert not out.exists()


def test_rafdb_empty_split(tmp_path, capsys):
    src, out = make_rafdb(tmp_path / "raf", test=[0] * 7), tmp_path / "out"
    assert main(["import", "rafdb", str(src), str(out)]) == 2
    _one_error_line(capsys, "no test images")
    assert not out.exists()


def test_rafdb_corrupt_image_fails_or_is_skipped(tmp_path, capsys):
    src, out = make_rafdb(tmp_path / "raf"), tmp_path / "data" / "raf"
    assert main(["import", "rafdb", str(src), str(out)]) == 0  # a good dataset first
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    bad = src / "basic" / "Image" / "aligned" / "train_00007_aligned.jpg"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated JPEG
    for workers in ("1", "2"):
        assert main(["import", "rafdb", str(src), str(out), "--workers", workers]) == 2
        _one_error_line(capsys, "train_00007_aligned.jpg", "--skip-bad")
        assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # untouched
        assert sorted(p.name for p in out.parent.iterdir()) == ["raf"]  # no temp folder left behind
    assert main(["import", "rafdb", str(src), str(out), "--skip-bad"]) == 0
    captured = capsys.readouterr()
    assert "skipped 1 bad sample" in captured.err and "train_00007_aligned.jpg" in captured.err
    meta = json.loads((out / "meta.json").read_text())
    assert meta["skipped"]["count"] == 1 and meta["n_samples"] == 73
    assert "train_00007_aligned.jpg" not in (out / "samples.csv").read_text()


def test_bad_options_fail_before_any_work(tmp_path, capsys):
    src, out = make_rafdb(tmp_path / "raf"), tmp_path / "out"
    assert main(["import", "rafdb", str(src), str(out), "--val-fraction", "1.5"]) == 2
    _one_error_line(capsys, "--val-fraction: 1.5 is not in (0, 1)")
    assert main(["import", "folder", str(tmp_path / "x.csv"), str(out), "--fractions", "0.8,0.1"]) == 2
    _one_error_line(capsys, "--fractions")
    assert main(["import", "folder", str(tmp_path / "x.csv"), str(out), "--classes", "happy,calm=relaxed"]) == 2
    _one_error_line(capsys, "'relaxed' is not a palbench class")
    assert not out.exists()


def test_output_may_not_replace_the_source(tmp_path, capsys):
    src = make_rafdb(tmp_path / "raf")
    assert main(["import", "rafdb", str(src / "basic"), str(src)]) == 2
    _one_error_line(capsys, "would replace the source")
    assert (src / "basic" / "EmoLabel" / "list_patition_label.txt").is_file()


# --------------------------------------------------------------------------------------------- AffectNet

AFF_W, AFF_H, DOT = 64, 48, 30  # image size; landmark index that carries a drawn dot
# face boxes (x, y, w, h): upscaling x2, clipped at the top-left corner, downscaling, non-square
BOXES = [(20, 10, 20, 20), (-6, -4, 30, 30), (2, 2, 60, 44), (10, 5, 40, 20)]


def _affectnet_row(rng, rel, code, box):
    x, y, w, h = box
    x0, y0, x1, y1 = max(0, x), max(0, y), min(AFF_W, x + w), min(AFF_H, y + h)
    lm = np.stack([rng.uniform(x0, x1 - 1, 68), rng.uniform(y0, y1 - 1, 68)], axis=1)
    lm[DOT] = [rng.integers(x0 + 4, x1 - 4), rng.integers(y0 + 4, y1 - 4)]  # integer: pixel centre
    return {
        "subDirectory_filePath": rel, "face_x": x, "face_y": y, "face_width": w, "face_height": h,
        "facial_landmarks": ";".join(f"{v:.3f}" for v in lm.ravel()), "expression": code,
        "valence": 0.1, "arousal": -0.2,
    }, lm  # fmt: skip


def make_affectnet(root: Path, train_codes, test_codes):
    """Black images with a white 5x5 dot centred on landmark DOT. Returns {rel: (landmarks, box)}."""
    rng = np.random.default_rng(0)
    truth = {}
    for csv, codes in (("training.csv", train_codes), ("validation.csv", test_codes)):
        rows = []
        for i, code in enumerate(codes):
            rel = f"{i % 3 + 1}/{csv[:5]}_{i:03d}.png"
            box = BOXES[i % len(BOXES)]
            row, lm = _affectnet_row(rng, rel, code, box)
            rows.append(row)
            truth[rel] = (lm, box)
            im = Image.new("L", (AFF_W, AFF_H), 0)
            cx, cy = lm[DOT].astype(int)
            ImageDraw.Draw(im).rectangle([cx - 2, cy - 2, cx + 2, cy + 2], fill=255)
            (root / "Manually_Annotated_Images" / rel).parent.mkdir(parents=True, exist_ok=True)
            im.save(root / "Manually_Annotated_Images" / rel)
        pd.DataFrame(rows).to_csv(root / csv, index=False)
    return truth


TRAIN_CODES = [0, 1, 2, 3, 4, 5, 6] * 4 + [1, 1, 0, 0] + [7, 7, 8, 9, 10]
TEST_CODES = [0, 1, 2, 3, 4, 5, 6] * 2 + [7, 10]
AFF_TO_CLASS = {0: 6, 1: 3, 2: 4, 3: 0, 4: 1, 5: 2, 6: 5}


def test_affectnet_crop_landmarks_and_drops(tmp_path, capsys):
    src, out = tmp_path / "aff", tmp_path / "affectnet"
    truth = make_affectnet(src, TRAIN_CODES, TEST_CODES)
    size = 40
    assert main(["import", "affectnet", str(src), str(out), "--size", str(size), "--val-fraction", "0.45"]) == 0
    captured = capsys.readouterr()
    assert "dropped" in captured.err and "7 contempt = 2" in captured.err
    s = pd.read_csv(out / "samples.csv")
    meta = json.loads((out / "meta.json").read_text())
    assert len(s) == 32 + 14
    assert meta["dropped"]["training.csv"] == {"7 contempt": 2, "8 none": 1, "9 uncertain": 1, "10 no-face": 1}
    assert meta["dropped"]["validation.csv"] == {"7 contempt": 1, "8 none": 0, "9 uncertain": 0, "10 no-face": 1}
    assert np.bincount(s[s.split == "test"].label, minlength=7).tolist() == [2] * 7
    assert np.bincount(s[s.split == "val"].label, minlength=7).tolist() == [2] * 7  # test-balanced
    # the code mapping: the first training row has code 0 = neutral
    assert s.label.iloc[0] == CLASSES.index("neutral") and s.label.iloc[1] == CLASSES.index("happiness")
    lms = np.load(out / "provided_landmarks.npy")
    assert lms.dtype == np.float32 and lms.shape == (46, 68, 2)
    for i, path in enumerate(s.path):
        rel = path[:-4] + ".png"
        lm, (x, y, w, h) = truth[rel]
        x0, y0, x1, y1 = max(0, x), max(0, y), min(AFF_W, x + w), min(AFF_H, y + h)
        sx, sy = size / (x1 - x0), size / (y1 - y0)
        expected = np.stack([(lm[:, 0] - x0 + 0.5) * sx - 0.5, (lm[:, 1] - y0 + 0.5) * sy - 0.5], axis=1)
        np.testing.assert_allclose(lms[i], expected, atol=2e-3)  # csv has 3 decimals
        crop = np.asarray(Image.open(out / "images" / path).convert("L"), dtype=np.float64)
        assert crop.shape == (size, size)
        # the drawn dot sits at the transformed landmark in the stored crop (half-pixel exact)
        ex, ey = expected[DOT]
        yy, xx = np.mgrid[:size, :size]
        win = (np.abs(xx - ex) <= 3 * sx + 2) & (np.abs(yy - ey) <= 3 * sy + 2)
        wgt = np.where(win, np.clip(crop - 12, 0, None), 0)
        cx, cy = (wgt * xx).sum() / wgt.sum(), (wgt * yy).sum() / wgt.sum()
        assert abs(cx - ex) < 0.1 and abs(cy - ey) < 0.1, (path, cx, ex, cy, ey)  # naive: >= 0.15


def test_affectnet_malformed_landmarks_name_the_row(tmp_path, capsys):
    src, out = tmp_path / "aff", tmp_path / "out"
    make_affectnet(src, TRAIN_CODES, TEST_CODES)
    df = pd.read_csv(src / "training.csv")
    df.loc[4, "facial_landmarks"] = ";".join(df.loc[4, "facial_landmarks"].split(";")[:-1])
    df.to_csv(src / "training.csv", index=False)
    assert main(["import", "affectnet", str(src), str(out), "--size", "16"]) == 2
    _one_error_line(capsys, "training.csv: row 6", "135 numbers; expected 136")
    assert not out.exists()
    assert main(["import", "affectnet", str(src), str(out), "--size", "16", "--skip-bad"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["skipped"]["by_reason"] == {"malformed row": 1} and meta["n_samples"] == 45


def test_affectnet_bad_code_missing_list_and_box_outside(tmp_path, capsys):
    src, out = tmp_path / "aff", tmp_path / "out"
    make_affectnet(src, TRAIN_CODES, TEST_CODES)
    df = pd.read_csv(src / "validation.csv")
    df.loc[2, "expression"] = 11
    df.to_csv(src / "validation.csv", index=False)
    assert main(["import", "affectnet", str(src), str(out)]) == 2
    _one_error_line(capsys, "validation.csv: row 4", "not an AffectNet code 0-10")
    (src / "validation.csv").unlink()
    assert main(["import", "affectnet", str(src), str(out)]) == 2
    _one_error_line(capsys, "validation.csv", "not found")
    make_affectnet(src, TRAIN_CODES, TEST_CODES)
    df = pd.read_csv(src / "training.csv")
    df.loc[0, ["face_x", "face_y"]] = [200, 200]
    df.to_csv(src / "training.csv", index=False)
    assert main(["import", "affectnet", str(src), str(out), "--size", "16"]) == 2
    _one_error_line(capsys, "train_000.png", "lies outside")
    assert not out.exists()


# --------------------------------------------------------------------------------------------- folder

NAMES = ["Happy", "ANGRY", "sad", "surprised", "fearful", "disgusted", "neutral"]


def make_folder(root: Path, n_subjects=12, per_subject=5, names=NAMES, extra_cols=None) -> Path:
    rows = []
    for subj in range(n_subjects):
        for j in range(per_subject):
            rel = f"s{subj:02d}/img{j}.png"
            _img(root / "imgs" / rel, value=(subj * 7 + j * 40) % 256)
            rows.append({"file": rel, "emotion": names[(subj + j) % len(names)], "person": f"p{subj}"})
    df = pd.DataFrame(rows)
    for k, v in (extra_cols or {}).items():
        df[k] = v(df)
    df.to_csv(root / "labels.csv", index=False)
    return root / "labels.csv"


FOLDER_ARGS = ["--images-root", "{root}/imgs", "--path-col", "file", "--label-col", "emotion"]
FOLDER_ARGS += ["--subject-col", "person"]


def _folder(csv, out, *extra):
    args = [a.replace("{root}", str(csv.parent)) for a in FOLDER_ARGS]
    return main(["import", "folder", str(csv), str(out), *args, *extra])


def test_folder_synonyms_subjects_and_seed(tmp_path, capsys):
    csv = make_folder(tmp_path / "src")
    assert _folder(csv, tmp_path / "a", "--seed", "7") == 0
    assert _folder(csv, tmp_path / "b", "--seed", "7") == 0
    assert _folder(csv, tmp_path / "c", "--seed", "8") == 0
    ds = read_dataset(tmp_path / "a")
    s = ds.samples
    assert len(s) == 60 and list(s.columns) == ["path", "label", "split", "subject"]
    assert s.set_index("path").loc["s00/img0.png", "label"] == CLASSES.index("happiness")
    assert s.set_index("path").loc["s00/img1.png", "label"] == CLASSES.index("anger")
    assert sorted(s.label.unique()) == list(range(7))
    assert set(s.split) == {"train", "val", "test"}
    assert s.groupby("subject").split.nunique().max() == 1  # subject-disjoint
    assert (ds.root / "images" / s.path).map(Path.is_file).all()
    a, b, c = ((tmp_path / n / "samples.csv").read_text() for n in "abc")
    assert a == b and a != c


def test_folder_subject_and_split_columns_are_used_by_name(tmp_path, capsys):
    """A column named `subject` needs no option: the splits are subject-disjoint (issue: a README-style CSV
    `path,label,subject` silently mixed people across train and test). Without one, a warning and meta.json
    say the splits are per image."""
    csv = make_folder(tmp_path / "src")
    df = pd.read_csv(csv).rename(columns={"file": "path", "emotion": "label", "person": "subject"})
    df.to_csv(csv, index=False)
    assert main(["import", "folder", str(csv), str(tmp_path / "a"), "--images-root", str(tmp_path / "src/imgs")]) == 0
    assert "no subject column" not in capsys.readouterr().err
    ds = read_dataset(tmp_path / "a")
    assert ds.samples.groupby("subject").split.nunique().max() == 1 and "subject-disjoint" in ds.meta["subjects"]
    df.drop(columns="subject").to_csv(csv, index=False)
    assert main(["import", "folder", str(csv), str(tmp_path / "b"), "--images-root", str(tmp_path / "src/imgs")]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no subject column: splits are drawn per image" in err
    assert read_dataset(tmp_path / "b").meta["subjects"] is None
    df.assign(split=["test" if i % 5 == 0 else "train" for i in range(len(df))]).to_csv(csv, index=False)
    assert main(["import", "folder", str(csv), str(tmp_path / "c"), "--images-root", str(tmp_path / "src/imgs")]) == 0
    meta = read_dataset(tmp_path / "c").meta
    assert meta["counts"]["test"] and sum(meta["counts"]["test"].values()) == 12  # the CSV's split column
    assert main(["import", "folder", str(csv), str(tmp_path / "d"), "--images-root", str(tmp_path / "src/imgs"),
                 "--subject-col", "person"]) == 2
    assert "no column 'person' (--subject-col)" in capsys.readouterr().err and not (tmp_path / "d").exists()


def test_folder_classes_codes_merge_and_drop(tmp_path, capsys):
    # FER2013-style integer codes, plus a calm class merged into neutral and contempt dropped
    codes = ["0", "1", "2", "3", "4", "5", "6", "7", "8"]
    csv = make_folder(tmp_path / "src", names=codes)
    spec = "angry,disgust,fear,happy,sad,surprise,neutral,calm=neutral,contempt=-"
    assert _folder(csv, tmp_path / "out", "--classes", spec) == 0
    assert "dropped" in capsys.readouterr().err
    ds = read_dataset(tmp_path / "out")
    raw = pd.read_csv(csv, dtype=str).set_index("file").emotion
    want = {"0": 5, "1": 2, "2": 1, "3": 3, "4": 4, "5": 0, "6": 6, "7": 6}
    assert all(want[raw[p]] == lab for p, lab in zip(ds.samples.path, ds.samples.label))
    assert len(ds.samples) == 60 - int((raw == "8").sum())
    assert ds.meta["dropped"] == {"8": int((raw == "8").sum())}


def test_folder_split_column_draws_val_from_train(tmp_path):
    def split(df):
        return np.where(df.person.isin(["p10", "p11", "p9"]), "Test", "training")

    csv = make_folder(tmp_path / "src", extra_cols={"part": split})
    assert _folder(csv, tmp_path / "out", "--split-col", "part", "--val-fraction", "0.2") == 0
    s = read_dataset(tmp_path / "out").samples
    assert set(s[s.split == "test"].subject) == {"p9", "p10", "p11"}
    assert (s.split == "val").sum() > 0 and s.groupby("subject").split.nunique().max() == 1


def test_folder_unknown_name_empty_split_and_corrupt(tmp_path, capsys):
    csv = make_folder(tmp_path / "src", names=NAMES + ["calm"])
    out = tmp_path / "out"
    assert _folder(csv, out) == 2
    _one_error_line(capsys, "unknown label 'calm'", "happy", "--classes")
    csv = make_folder(tmp_path / "src2", extra_cols={"part": lambda df: "train"})
    assert _folder(csv, out, "--split-col", "part") == 2
    _one_error_line(capsys, "the test split is empty")
    csv = make_folder(tmp_path / "src3")
    (csv.parent / "imgs" / "s03" / "img2.png").write_bytes(b"not a png")
    assert _folder(csv, out) == 2
    _one_error_line(capsys, "s03/img2.png", "unreadable image")
    assert _folder(csv, out, "--path-col", "nope") == 2
    _one_error_line(capsys, "no column 'nope'", "file, emotion, person")
    assert not out.exists()
    assert _folder(csv, out, "--skip-bad") == 0
    assert json.loads((out / "meta.json").read_text())["skipped"]["count"] == 1
