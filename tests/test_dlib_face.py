"""dlib's face-recognition ResNet in torch (palbench.models.dlib_face): the descriptor oracle is dlib itself."""

import numpy as np
import pytest
import torch

from palbench.data.synth import example_params, render_face
from palbench.errors import WeightsError
from palbench.models import dlib_face

dlib = pytest.importorskip("dlib")
pytest.importorskip("face_recognition_models")

TOL = 1e-4


@pytest.fixture(scope="module")
def model_path():
    return dlib_face.default_model_path()


@pytest.fixture(scope="module")
def model(model_path):
    return dlib_face.load_dlib_face_net(model_path)


def chips() -> np.ndarray:
    """Four 150×150 RGB uint8 chips: three synthetic faces (different labels/subjects) and uniform noise."""
    faces = [render_face(example_params(label, seed=s, subject=s).clean(), 150)[0] for s, label in enumerate((0, 3, 5))]
    noise = np.random.default_rng(0).integers(0, 256, (150, 150, 3), dtype=np.uint8)
    return np.stack([*faces, noise])


def test_descriptors_match_dlib(model, model_path):
    imgs = chips()
    rec = dlib.face_recognition_model_v1(str(model_path))
    want = np.array([rec.compute_face_descriptor(np.ascontiguousarray(img)) for img in imgs], dtype=np.float32)
    with torch.no_grad():
        got = model(torch.from_numpy(imgs).permute(0, 3, 1, 2).float()).numpy()
    assert got.shape == want.shape == (4, 128)
    assert np.abs(got - want).max() <= TOL
    # not a trivial agreement: the chips' descriptors differ from each other by far more than the tolerance
    assert np.abs(want[:, None] - want[None]).max(-1)[~np.eye(4, dtype=bool)].min() > 100 * TOL


def test_named_blocks_and_shapes(model):
    names = [n for n, m in model.named_modules() if isinstance(m, dlib_face.Block)]
    assert names == [f"layer{s}.{b}" for s, n in zip(range(1, 6), (3, 4, 3, 3, 1)) for b in range(n)]
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == 29
    shapes = {}
    hooks = [
        model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, tuple(o.shape)))
        for n in ("stem", "layer1.2", "layer2.0", "layer3.2", "layer4.0", "layer5.0")
    ]
    with torch.no_grad():
        out = model(torch.full((1, 3, 150, 150), 128.0))
    for h in hooks:
        h.remove()
    assert out.shape == (1, 128)
    assert shapes == {
        "stem": (1, 32, 72, 72),
        "layer1.2": (1, 32, 35, 35),
        "layer2.0": (1, 64, 17, 17),
        "layer3.2": (1, 128, 8, 8),
        "layer4.0": (1, 256, 4, 4),
        "layer5.0": (1, 256, 2, 2),
    }


def test_padded_add_follows_dlib_add_prev():
    a, b = torch.ones(1, 2, 3, 3), torch.full((1, 1, 4, 4), 2.0)
    out = dlib_face.padded_add(a, b)
    assert out.shape == (1, 2, 4, 4)
    assert out[0, 0, :3, :3].eq(3).all() and out[0, 0, 3].eq(2).all() and out[0, 1, :3, :3].eq(1).all()
    assert out[0, 1, 3].eq(0).all()


def _one_line_naming(err, path):
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg


@pytest.mark.parametrize("cut", [3, 1000, 300_000, -1])
def test_truncated_file(model_path, tmp_path, cut):
    bad = tmp_path / "truncated.dat"
    bad.write_bytes(model_path.read_bytes()[:cut])
    with pytest.raises(WeightsError) as err:
        dlib_face.load_dlib_face_net(bad)
    _one_line_naming(err, bad)


def test_corrupt_files(model_path, tmp_path):
    data = model_path.read_bytes()
    cases = {
        "garbage.dat": np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "empty.dat": b"",
        "trailing.dat": data + b"\x01\x00",
        "otherlayer.dat": data.replace(b"con_4", b"con_9", 1),
        "missing.dat": None,
    }
    for name, content in cases.items():
        bad = tmp_path / name
        if content is not None:
            bad.write_bytes(content)
        with pytest.raises(WeightsError) as err:
            dlib_face.load_dlib_face_net(bad)
        _one_line_naming(err, bad)
