"""The built-in benchmark (`palbench synth`): determinism, exact landmarks, expressions, decoy, format, CLI."""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from palbench.cli import main
from palbench.data.canonical import CLASSES, read_dataset
from palbench.data.synth import decoy_masks, example_params, generate, render_face, render_sample
from palbench.data.synth.decoy import PALETTE, sample_decoy
from palbench.data.synth.expressions import AUS, controls, prototype, sample_expression
from palbench.data.synth.face import GROUPS, landmarks, sample_identity
from palbench.data.synth.params import identity_rng, sample_params, sample_rngs
from palbench.errors import ConfigError

K = len(CLASSES)
SMALL = dict(n_train=21, n_val=7, n_test=14, size=32, progress=False)


def _hashes(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


# ---------------------------------------------------------------- determinism


def test_same_seed_gives_byte_identical_files_and_another_seed_does_not(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(a, seed=3, **SMALL)
    generate(b, seed=3, **SMALL)
    generate(c, seed=4, **SMALL)
    ha, hb, hc = _hashes(a), _hashes(b), _hashes(c)
    assert len(ha) == 42 + 5  # images + samples.csv, meta.json, provided_landmarks.npy, decoy_boxes/labels.npy
    assert ha == hb
    assert ha.keys() == hc.keys()
    images = [k for k in ha if k.endswith(".png")]
    assert all(ha[k] != hc[k] for k in images)
    assert ha["provided_landmarks.npy"] != hc["provided_landmarks.npy"]


def test_images_do_not_depend_on_the_other_splits_sizes(tmp_path):
    generate(tmp_path / "a", **SMALL)
    generate(tmp_path / "b", **{**SMALL, "n_train": 5, "n_val": 0})
    ha, hb = _hashes(tmp_path / "a"), _hashes(tmp_path / "b")
    test_images = [k for k in hb if k.startswith("images/test/")]
    assert len(test_images) == 14 and all(ha[k] == hb[k] for k in test_images)


# ---------------------------------------------------------------- landmarks are exact


def _contrast(img, pts, ref, r=1):
    """Max colour distance from ``ref`` (relative to |ref|) in the (2r+1)² pixels around each point."""
    out = []
    for x, y in np.rint(pts).astype(int):
        patch = img[max(y - r, 0) : y + r + 1, max(x - r, 0) : x + r + 1].reshape(-1, 3).astype(float)
        out.append((np.linalg.norm(patch - ref, axis=1) / np.linalg.norm(ref)).max())
    return np.array(out)


def test_drawn_features_lie_on_the_landmarks():
    size, bg = 128, np.array([40.0, 60.0, 200.0])
    on, off, brow_err = [], [], []
    for k in range(K):
        for j in range(3):
            p = example_params(k, seed=1, subject=j, index=j).clean(background=tuple(bg))
            img, lm = render_face(p, size)
            assert lm.shape == (68, 2) and lm.dtype == np.float32
            assert (lm > 4).all() and (lm < size - 5).all()
            skin = p.identity.skin
            feat = np.concatenate([GROUPS[g] for g in ("brows", "nose", "eyes", "mouth")])
            on.append(_contrast(img, lm[feat], skin))
            off.append(_contrast(img, lm[feat] + (0.0, -5.0), skin))
            # jaw: skin 3 px inside, background 3 px outside (along the direction from the face centre) on
            # the sides of the jaw, between the ears and the neck
            centre = lm[27:36].mean(0)
            for i in [2, 3, 4, 5, 11, 12, 13, 14]:
                d = (lm[i] - centre) / np.linalg.norm(lm[i] - centre)
                xi, yi = np.rint(lm[i] - 3 * d).astype(int)
                xo, yo = np.rint(lm[i] + 3 * d).astype(int)
                assert np.linalg.norm(img[yi, xi] - skin) < 0.12 * np.linalg.norm(skin), (k, j, i)
                assert np.abs(img[yo, xo] - bg).max() < 40 or p.identity.hair_style == 2, (k, j, i)
            # brows: the drawn stroke is centred on the landmarks (sub-pixel)
            brow = p.identity.brow
            for x, y in lm[GROUPS["brows"]]:
                rows = np.arange(round(y) - 2, round(y) + 3)  # the stroke is at most 3 px thick here
                col = img[rows, int(round(x))].astype(float)
                w = np.clip(1 - np.linalg.norm(col - brow, axis=1) / np.linalg.norm(skin - brow), 0, 1)
                brow_err.append(abs((w * rows).sum() / w.sum() - y))
    on, off = np.concatenate(on), np.concatenate(off)
    assert (on > 0.1).all()  # every feature landmark has the feature drawn within one pixel
    assert (off > 0.1).mean() < 0.7  # ... while points 5 px away often land on plain skin
    assert np.median(brow_err) < 0.35 and max(brow_err) < 0.8


def test_landmarks_scale_with_the_image_size():
    p = example_params(3, seed=2, subject=1, index=5, decoy_p=1.0)
    img64, lm64, box64 = render_sample(p, 64)
    img224, lm224, box224 = render_sample(p, 224)
    assert img64.shape == (64, 64, 3) and img224.shape == (224, 224, 3) and img224.dtype == np.uint8
    np.testing.assert_allclose(lm224, (lm64 + 0.5) * 224 / 64 - 0.5, atol=1e-3)
    assert not np.isnan(box224).any()


# ---------------------------------------------------------------- expressions


def _shape(k, idt):
    au = prototype(k) if k is not None else np.zeros(len(AUS))
    return landmarks(idt, controls(au))


@pytest.mark.parametrize("subject", [0, 1, 2])
def test_expressions_move_the_right_landmarks(subject):
    idt = sample_identity(identity_rng(0, subject))
    n = _shape(CLASSES.index("neutral"), idt)
    np.testing.assert_allclose(n, _shape(None, idt))  # neutral = no action units
    ex = {c: _shape(CLASSES.index(c), idt) for c in CLASSES}
    brows, inner = GROUPS["brows"], [21, 22]

    def up(lm, idx):  # mean upward move (pixels of y go down)
        return (n[idx, 1] - lm[idx, 1]).mean()

    def eye_open(lm):
        return (lm[[40, 41, 46, 47], 1] - lm[[38, 37, 43, 44], 1]).mean()

    def mouth_open(lm):
        return lm[66, 1] - lm[62, 1]

    def inner_gap(lm):
        return lm[22, 0] - lm[21, 0]

    h = ex["happiness"]
    assert up(h, [48, 54]) > 0.1 and h[48, 0] < n[48, 0] - 0.05 and h[54, 0] > n[54, 0] + 0.05
    assert eye_open(h) < 0.8 * eye_open(n)  # cheeks up, eyes narrow
    s = ex["surprise"]
    assert up(s, brows) > 0.1 and eye_open(s) > 1.4 * eye_open(n)
    assert mouth_open(s) > mouth_open(n) + 0.2 and s[8, 1] > n[8, 1] + 0.15  # jaw drop
    f = ex["fear"]
    assert up(f, inner) > 0.05 and inner_gap(f) < inner_gap(n) - 0.05 and eye_open(f) > 1.4 * eye_open(n)
    assert f[54, 0] - f[48, 0] > 1.15 * (n[54, 0] - n[48, 0])  # lips stretched
    a = ex["anger"]
    assert up(a, brows) < -0.06 and inner_gap(a) < inner_gap(n) - 0.1 and eye_open(a) < 0.75 * eye_open(n)
    assert a[57, 1] - a[51, 1] < 0.7 * (n[57, 1] - n[51, 1])  # lips pressed thin
    sa = ex["sadness"]
    assert up(sa, inner) > 0.05 and up(sa, [48, 54]) < -0.08
    d = ex["disgust"]
    assert up(d, [50, 51, 52]) > 0.08 and up(d, [30, 31, 35]) > 0.04  # upper lip raised, nose wrinkled up


def test_intensity_varies_with_some_ambiguous_faces():
    rng = np.random.default_rng(0)
    draws = [sample_expression(rng, CLASSES.index("happiness")) for _ in range(400)]
    intensity = np.array([t for _, t in draws])
    assert 0.1 <= intensity.min() < 0.2 and intensity.max() > 0.9
    assert 0.08 < (intensity < 0.35).mean() < 0.25


# ---------------------------------------------------------------- decoy


def test_decoy_class_follows_the_label_in_train_and_val_and_is_random_in_test():
    rng = np.random.default_rng(0)
    n, p = 3000, 0.7
    labels = rng.integers(0, K, n)
    for split in ("train", "val"):
        d = [sample_decoy(rng, y, split, p, 1.0, 0.125, 1.0) for y in labels]
        present = np.array([x is not None for x in d])
        assert abs(present.mean() - p) < 0.03
        assert all(x.klass == y for x, y in zip(d, labels) if x is not None)
    d = [sample_decoy(rng, y, "test", p, 1.0, 0.125, 1.0) for y in labels]
    assert all(x is not None for x in d)
    agree = np.mean([x.klass == y for x, y in zip(d, labels)])
    assert abs(agree - 1 / K) < 0.03
    assert np.bincount([x.klass for x in d], minlength=K).min() > n / K * 0.8


def test_decoy_files_boxes_and_pixels(tmp_path):
    out = tmp_path / "d"
    meta = generate(out, n_train=70, n_val=14, n_test=28, size=48, seed=5, decoy_p=0.6, decoy_strength=1.0,
                    progress=False)  # fmt: skip
    samples = pd.read_csv(out / "samples.csv")
    boxes = np.load(out / "decoy_boxes.npy")
    dl = np.load(out / "decoy_labels.npy")
    lm = np.load(out / "provided_landmarks.npy")
    assert boxes.dtype == np.float32 and boxes.shape == (len(samples), 4) and dl.shape == (len(samples),)
    assert (np.isnan(boxes).all(1) == (dl < 0)).all() and (np.isnan(boxes).any(1) == np.isnan(boxes).all(1)).all()
    y, split = samples["label"].to_numpy(), samples["split"].to_numpy()
    tv = split != "test"
    present = dl >= 0
    agree_tv = (dl[tv] == y[tv]).mean()  # present with p and then always the label
    assert 0.4 < agree_tv < 0.8 and (dl[tv & present] == y[tv & present]).all()
    assert present[~tv].all() and (dl[~tv] == y[~tv]).mean() < 0.4
    assert meta["decoy"]["p_train_val"] == 0.6 and meta["decoy"]["p_test"] == 1.0
    assert meta["decoy"]["boxes"] == "decoy_boxes.npy"
    side = meta["decoy"]["side_px"]
    masks = decoy_masks(boxes, 48)
    from PIL import Image

    for i in np.flatnonzero(present):
        b = boxes[i]
        assert b[2] - b[0] == side and b[3] - b[1] == side and b[0] >= -0.5 and b[2] <= 47.5
        x0, y0 = lm[i].min(0)
        x1, y1 = lm[i].max(0)
        assert b[2] < x0 or b[0] > x1 or b[3] < y0 or b[1] > y1  # outside the landmarks' box
        assert masks[i].sum() == side * side
        img = np.asarray(Image.open(out / "images" / samples.at[i, "path"])).astype(float)
        inner = img[int(b[1] + 1.5) : int(b[3] - 0.5), int(b[0] + 1.5) : int(b[2] - 0.5)].reshape(-1, 3)
        colour = np.median(inner, 0)
        assert np.abs(colour - PALETTE[dl[i]]).max() < 40  # the square shows its class colour
        assert np.argmin(np.abs(PALETTE - colour).sum(1)) == dl[i]
    assert not masks[~present].any()


# ---------------------------------------------------------------- canonical format


def test_canonical_dataset_readable_with_exact_landmarks_and_requested_counts(tmp_path):
    out = tmp_path / "s"
    weights = [1, 1, 2, 4, 2, 1, 3]
    meta = generate(out, n_train=35, n_val=14, n_test=14, size=40, seed=7, class_weights=weights,
                    images_per_subject=5, progress=False)  # fmt: skip
    ds = read_dataset(out)
    assert len(ds) == 63 and list(ds.samples.columns) == ["path", "label", "split", "subject"]
    assert ds.meta["source"] == "synth" and ds.meta["image_size"] == [40, 40] and ds.meta["seed"] == 7
    assert ds.meta["generator"]["version"] and ds.meta["generator"]["params"]["n_train"] == 35
    assert "same class distribution as test" in ds.meta["validation"]
    for split, n in (("train", 35), ("val", 14), ("test", 14)):
        y = ds.samples.loc[ds.split_indices(split), "label"].to_numpy()
        counts = np.bincount(y, minlength=K)
        assert counts.sum() == n and np.abs(counts - n * np.array(weights) / sum(weights)).max() < 1
        assert [meta["counts"][split][c] for c in CLASSES] == counts.tolist()
    subj = {s: set(ds.samples.loc[ds.split_indices(s), "subject"]) for s in ("train", "val", "test")}
    assert not (subj["train"] & subj["val"] or subj["train"] & subj["test"] or subj["val"] & subj["test"])
    assert len(subj["train"]) == 7  # 35 images, 5 per identity
    lm = np.load(out / "provided_landmarks.npy")
    assert lm.dtype == np.float32 and lm.shape == (63, 68, 2)
    from PIL import Image

    for i in (0, 40, 62):  # the stored landmarks are the ones the image was drawn from
        row = ds.samples.iloc[i]
        j = int(row["path"].split("/")[1].split(".")[0])
        rng, drng = sample_rngs(7, row["split"], j)
        idt = sample_identity(identity_rng(7, int(row["subject"])))
        p = sample_params(rng, drng, int(row["label"]), idt, row["split"], decoy_p=0.9)
        img, truth, _ = render_sample(p, 40)
        np.testing.assert_array_equal(lm[i], truth)
        np.testing.assert_array_equal(np.asarray(Image.open(ds.image_path(i)).convert("RGB")), img)
    assert json.loads((out / "meta.json").read_text())["decoy"]["palette"]["surprise"] == PALETTE[0].tolist()


def test_a_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    import palbench.data.synth.generator as gen

    calls = []

    def boom(p, size):
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("disk full")
        return render_sample(p, size)

    monkeypatch.setattr(gen, "render_sample", boom)
    with pytest.raises(RuntimeError):
        generate(tmp_path / "x", **SMALL)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- options and CLI


@pytest.mark.parametrize(
    "kw",
    [{"n_train": -1}, {"n_test": 2.5}, {"size": 31}, {"decoy_p": 1.5}, {"decoy_p": -0.1}, {"decoy_strength": 0.0},
     {"decoy_size": 0.5}, {"n_train": 0, "n_val": 0, "n_test": 0}, {"class_weights": [1, 2]}, {"seed": -1}],
)  # fmt: skip
def test_bad_options_raise_config_error(tmp_path, kw):
    with pytest.raises(ConfigError) as e:
        generate(tmp_path / "x", **{**SMALL, **kw})
    assert "\n" not in str(e.value) and str(e.value).startswith("synth: ")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "args", [["--n-train", "-3"], ["--decoy-p", "1.5"], ["--size", "16"], ["--decoy-strength", "2"]]
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, args):
    out = tmp_path / "x"
    assert main(["synth", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("palbench: error: synth: ") and err.count("\n") == 1
    assert not out.exists()


def test_cli_writes_a_dataset(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["--n-train", "7", "--n-val", "7", "--n-test", "7", "--size", "32", "--seed", "2", "--decoy-p", "1"]
    assert main(["synth", str(out), *args]) == 0
    assert "21 synthetic images" in capsys.readouterr().out
    meta = json.loads((out / "meta.json").read_text())
    assert meta["seed"] == 2 and meta["decoy"]["p_train_val"] == 1.0 and meta["image_size"] == [32, 32]
    assert (np.load(out / "decoy_labels.npy")[:14] == pd.read_csv(out / "samples.csv")["label"][:14]).all()


# --- the shortcuts of issue 20: class-coded stripes, a flipped test split ------------------------------------


def test_flipped_test_split_encodes_another_class_on_every_image_and_train_the_label(tmp_path):
    out = tmp_path / "f"
    generate(out, n_train=28, n_val=7, n_test=70, size=32, seed=3, decoy_p=0.9, stripes_p=0.9,
             shortcut_test="flipped", progress=False)  # fmt: skip
    ds = read_dataset(out)
    labels = ds.samples["label"].to_numpy()
    test = ds.split_indices("test")
    for name in ("decoy_labels.npy", "stripes_labels.npy"):
        enc = np.load(out / name)
        assert (enc[test] >= 0).all() and (enc[test] != labels[test]).all(), name  # p_test 1, never the label
        assert len(set(((enc[test] - labels[test]) % K).tolist())) == K - 1  # every other class is drawn
        tv = np.setdiff1d(np.arange(len(ds)), test)
        present = enc[tv] >= 0
        assert 0.7 < present.mean() <= 1 and (enc[tv][present] == labels[tv][present]).all(), name
    meta = json.loads((out / "meta.json").read_text())
    assert meta["shortcut_test"] == "flipped" and meta["stripes"]["p_train_val"] == 0.9
    assert meta["stripes"]["p_test"] == 1.0 and meta["stripes"]["labels"] == "stripes_labels.npy"
    random = tmp_path / "r"
    generate(random, n_train=7, n_val=7, n_test=700, size=32, seed=3, decoy_p=0.9, progress=False)
    enc, y = np.load(random / "decoy_labels.npy"), read_dataset(random).samples["label"].to_numpy()
    agree = np.mean(enc[-700:] == y[-700:])
    assert abs(agree - 1 / K) < 0.04  # random mode: the label 1 time in 7


def test_shortcut_options_change_no_face_and_stripes_stay_behind_the_head(tmp_path):
    kw = dict(n_train=14, n_val=7, n_test=7, size=48, seed=5, progress=False)
    generate(tmp_path / "none", decoy_p=0.0, decoy_p_test=0.0, **kw)
    generate(tmp_path / "stripes", decoy_p=0.0, decoy_p_test=0.0, stripes_p=1.0, stripes_strength=0.8, **kw)
    generate(tmp_path / "decoy", decoy_p=0.9, **kw)
    a, b = read_dataset(tmp_path / "none"), read_dataset(tmp_path / "stripes")
    for other in ("stripes", "decoy"):
        np.testing.assert_array_equal(np.load(tmp_path / "none" / "provided_landmarks.npy"),
                                      np.load(tmp_path / other / "provided_landmarks.npy"))
        assert read_dataset(tmp_path / other).samples.equals(a.samples)
    assert not (tmp_path / "none" / "stripes_labels.npy").exists()
    from PIL import Image

    lm = np.load(tmp_path / "none" / "provided_landmarks.npy")
    for i in range(len(a)):
        x = np.asarray(Image.open(a.image_path(i)), np.int16)
        s = np.asarray(Image.open(b.image_path(i)), np.int16)
        inner = np.rint(lm[i, 17:]).astype(int)  # brows, nose, eyes, mouth: drawn over the stripes
        assert np.abs(s - x)[inner[:, 1], inner[:, 0]].max() <= 2  # rounding only (lighting, blur at the edges)
        assert np.abs(s - x)[:6, :6].mean() > 5 and np.abs(s - x)[:6, -6:].mean() > 5  # the corners do change


def test_stripes_angle_encodes_the_class():
    from palbench.data.synth.stripes import JITTER, N_CLASSES, Stripes, paint, sample_stripes

    rng = np.random.default_rng(0)
    for y in range(K):
        s = sample_stripes(rng, y, "train", 1.0, 1.0, 1.0, "random")
        assert s.klass == y and abs(s.angle - y * np.pi / N_CLASSES) <= JITTER
        img = paint(np.zeros((64, 64, 3), np.float32), s)[..., 0]
        gy, gx = np.gradient(img)
        strong = np.hypot(gx, gy) > np.hypot(gx, gy).max() / 2
        theta = np.arctan2(gy[strong], gx[strong]) % np.pi  # gradient = the stripes' normal
        mean = 0.5 * np.angle(np.mean(np.exp(2j * theta))) % np.pi
        assert abs((mean - s.angle + np.pi / 2) % np.pi - np.pi / 2) < 0.05
    assert sample_stripes(rng, 2, "train", 0.0, 1.0, 0.5, "random") is None
    assert Stripes(3, 0.0, 0.0).strength == 0.5


def test_bad_shortcut_options_name_the_option(tmp_path):
    with pytest.raises(ConfigError, match="shortcut_test"):
        generate(tmp_path / "x", n_train=7, n_val=0, n_test=0, size=32, shortcut_test="inverted", progress=False)
    with pytest.raises(ConfigError, match="stripes_strength"):
        generate(tmp_path / "x", n_train=7, n_val=0, n_test=0, size=32, stripes_p=0.5, stripes_strength=0,
                 progress=False)
    assert not (tmp_path / "x").exists()
