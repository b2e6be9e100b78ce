"""The priors stage: seeded landmark sets per landmark-noise σ, preview, bad input."""

import json

import numpy as np
import pytest

from palbench.cli import main
from palbench.config import noise_file
from palbench.prior_sets import build_prior_sets
from palbench.priors import render_priors

from conftest import write_tiny_dataset


def test_prior_sets_are_seeded_per_sigma_and_scaled(tiny_dataset, tmp_path):
    root, lm = tiny_dataset
    info = build_prior_sets(root, tmp_path / "p", [0, 2, 5], seed=1, preview=2)
    assert info["files"] == {"0": noise_file(0), "2": noise_file(2), "5": noise_file(5)}
    s0 = np.load(tmp_path / "p" / noise_file(0))
    np.testing.assert_array_equal(s0, lm)
    s2, s5 = (np.load(tmp_path / "p" / noise_file(s)) for s in (2, 5))
    ok = np.isfinite(lm).all(axis=(1, 2))
    assert np.isnan(s2[~ok]).all() and np.isfinite(s2[ok]).all()
    # images are 24×32 (H×W): σ=5 px of a 224 crop → x std 5·32/224, y std 5·24/224
    d = s5[ok] - lm[ok]
    assert d[..., 0].std() == pytest.approx(5 * 32 / 224, rel=0.15)
    assert d[..., 1].std() == pytest.approx(5 * 24 / 224, rel=0.15)
    # the same σ keeps its draw when the list changes; a new seed changes it
    build_prior_sets(root, tmp_path / "q", [2], seed=1, preview=0)
    np.testing.assert_array_equal(np.load(tmp_path / "q" / noise_file(2)), s2)
    build_prior_sets(root, tmp_path / "r", [2], seed=2, preview=0)
    assert not np.array_equal(np.load(tmp_path / "r" / noise_file(2)), s2, equal_nan=True)


def test_preview_contents(tiny_dataset, tmp_path):
    root, lm = tiny_dataset
    build_prior_sets(root, tmp_path / "p", [0, 3], preview=5)
    pv = np.load(tmp_path / "p" / "preview.npz")
    assert pv["indices"].tolist() == [4, 5]  # test rows with a face
    assert pv["images"].shape == (2, 24, 32, 3) and pv["priors"].shape == (2, 2, 24, 32)
    np.testing.assert_allclose(pv["landmarks"][0], lm[[4, 5]], rtol=1e-6)
    ref = render_priors(lm[[4, 5]], (24, 32), (24, 32), 3.0 * 24 / 28).numpy()
    np.testing.assert_allclose(pv["priors"][0], ref, rtol=1e-5)
    info = json.loads((tmp_path / "p" / "priors.json").read_text())
    assert info["n_without_face"] == 1 and info["landmark_noise"] == [0.0, 3.0]


def test_cli_bad_input(tmp_path, capsys):
    write_tiny_dataset(tmp_path / "nolm", with_landmarks=False)
    cases = [
        (["priors", str(tmp_path / "missing"), str(tmp_path / "o")], "dataset folder not found"),
        (["priors", str(tmp_path / "nolm"), str(tmp_path / "o")], "landmarks.npy: not found"),
        (["priors", str(tmp_path / "nolm"), str(tmp_path / "o"), "--landmark-noise", "-1"], "landmark_noise"),
    ]
    for argv, msg in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1
        assert not (tmp_path / "o").exists()


def test_preview_kept_apart_leaves_the_landmark_sets_unchanged(tiny_dataset, tmp_path):
    """With --preview-out (the pipeline), the preview's settings change the preview folder only: the folder
    every run depends on is the same, byte for byte, so DVC retrains nothing."""
    root, _ = tiny_dataset
    for n in (1, 2):
        build_prior_sets(root, tmp_path / f"p{n}", [0, 3], preview=n, preview_out=tmp_path / f"v{n}")
    files = sorted(f.name for f in (tmp_path / "p1").iterdir())
    assert files == ["landmarks_noise0.npy", "landmarks_noise3.npy", "priors.json"]
    assert all((tmp_path / "p1" / f).read_bytes() == (tmp_path / "p2" / f).read_bytes() for f in files)
    assert [len(json.loads((tmp_path / f"v{n}" / "preview.json").read_text())["indices"]) for n in (1, 2)] == [1, 2]
    assert np.load(tmp_path / "v2" / "preview.npz")["images"].shape[0] == 2
