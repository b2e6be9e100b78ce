"""dlib's face-recognition ResNet in torch (palbench.models.dlib_face): the descriptor oracle is dlib itself.
As the backbone ``dlib_face_resnet``: built from the registry, dlib's weights through the training path give
dlib's descriptors, its input normalisation is dlib's input layer, any side from 103 px, the partial start."""

import sys

import numpy as np
import pytest
import torch

from palbench.config import TrainConfig
from palbench.config.new import backbone_settings
from palbench.data.synth import example_params, generate, render_face
from palbench.errors import ConfigError, WeightsError
from palbench.models import (
    DLIB_FACE_NORMALIZATION,
    build_model,
    describe_layers,
    dlib_face,
    head_prefix,
    layer_catalogue,
    load_weights,
    normalize,
    registered_backbones,
)
from palbench.models.partial import kept_and_reset
from palbench.train import prepare

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


# ------------------------------------------------------------------------ the backbone dlib_face_resnet
def _catalogue_names() -> list[str]:
    names = ["stem"]
    for s, n in zip(range(1, 6), (3, 4, 3, 3, 1)):
        names += [f"layer{s}.{b}" for b in range(n)] + [f"layer{s}"]
    return names


def test_the_backbone_builds_from_the_registry():
    assert "dlib_face_resnet" in registered_backbones()
    model = build_model("dlib_face_resnet", num_classes=5)
    assert isinstance(model, dlib_face.DlibFaceNet) and model.arch == "dlib_face_resnet"
    # a K-class head with bias on the 256 pooled channels; the input arrives normalised (no mean buffer)
    assert head_prefix(model) == "fc." and (model.fc.in_features, model.fc.out_features) == (256, 5)
    assert model.fc.bias is not None and not dict(model.named_buffers())
    assert model.input_normalization == DLIB_FACE_NORMALIZATION
    assert list(layer_catalogue(model)) == _catalogue_names()  # named as a ResNet's, without a probe
    assert backbone_settings("dlib_face_resnet") == {"width": 1.0, "size": 112, "layer": "layer2.3"}
    with pytest.raises(ConfigError, match="width: dlib_face_resnet has no width knob"):
        TrainConfig(data="d", arch="dlib_face_resnet", width=0.5)
    with pytest.raises(ConfigError, match="size: dlib_face_resnet takes at least 103 px"):
        TrainConfig(data="d", arch="dlib_face_resnet", size=64)


def test_any_side_from_103_px_and_one_line_below():
    torch.manual_seed(0)
    model = build_model("dlib_face_resnet").eval()
    with torch.no_grad():
        for size in (103, 112, 150):
            assert model(torch.zeros(1, 3, size, size)).shape == (1, 7)
    rows = {r["name"]: r for r in describe_layers(model, 112)}
    assert rows["stem"]["before_pool"] and (rows["stem"]["height"], rows["layer2.3"]["height"]) == (53, 13)
    assert [rows[n]["height"] for n in ("layer3.0", "layer4.0", "layer5.0")] == [6, 3, 1]
    # at 112 px layer2.0's strided conv gives 12×12 and its pooled shortcut 13×13: add_prev's zero padding
    shapes = {}
    hook = model.layer2[0].bn2.register_forward_hook(lambda m, i, o: shapes.__setitem__("conv", tuple(o.shape)))
    with torch.no_grad():
        model(torch.zeros(1, 3, 112, 112))
    hook.remove()
    assert shapes["conv"] == (1, 64, 12, 12) and rows["layer2.0"]["height"] == 13

    def trunk(x):  # the layers alone, without the size check of features()
        x = model.maxpool(model.stem(x))
        for name, *_ in dlib_face.STAGES:
            x = getattr(model, name)(x)
        return x

    with torch.no_grad():  # the minimum is exact: one pixel less and layer5.0's conv gets a map under its kernel
        assert trunk(torch.zeros(1, 3, 103, 103)).shape == (1, 256, 1, 1)
        with pytest.raises(RuntimeError):
            trunk(torch.zeros(1, 3, 102, 102))
    for size in (48, 64, 102):
        with pytest.raises(ConfigError, match=f"dlib_face_resnet: a {size}×{size} input is too small") as err:
            model(torch.zeros(1, 3, size, size))
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="a 64×64 input is too small"):
        describe_layers(model, 64)


def test_input_normalization_reproduces_dlibs_input_layer():
    img = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (2, 150, 150, 3), dtype=np.uint8))
    img = img.permute(0, 3, 1, 2).float()
    want = (img - torch.tensor(dlib_face.MEAN_RGB).view(1, 3, 1, 1)) / 256  # dlib's input_rgb_image_sized
    got = normalize(img / 255, build_model("dlib_face_resnet"))  # what FaceDataset and predict feed the model
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("dlib_backbone")
    generate(root / "data", n_train=14, n_val=7, n_test=7, size=32, progress=False)
    return root / "data"


def _cfg(data, **kw) -> TrainConfig:
    return TrainConfig.from_dict({"data": str(data), "arch": "dlib_face_resnet", "size": 150, "layer": "layer3.1",
                                  "pal_weight": 0.0, "seed": 3, "progress": False, **kw})


def test_dlib_weights_through_the_training_path_give_dlibs_descriptors(model, model_path, dataset, tmp_path):
    _, _, net = prepare(_cfg(dataset, weights="dlib"))
    # the file's mean (float32 in dlib's input layer) in [0, 1] units, within float32 rounding of the default
    for key in ("mean", "std"):
        np.testing.assert_allclose(net.input_normalization[key], DLIB_FACE_NORMALIZATION[key], rtol=1e-6, atol=0)
    imgs = torch.from_numpy(chips()).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        features = net.features(normalize(imgs / 255, net))  # [4, 256], before the head
        torch.testing.assert_close(model.fc(features), model(imgs), rtol=0, atol=TOL)
    torch.manual_seed(3)
    fresh = build_model("dlib_face_resnet", num_classes=net.fc.out_features)
    assert torch.equal(net.fc.weight, fresh.fc.weight)  # the head is the seed's own: dlib's projection dropped
    # the .dat path is the same start, and a palbench state dict of it reloads with dlib's normalisation
    by_path = build_model("dlib_face_resnet", num_classes=net.fc.out_features)
    assert load_weights(by_path, str(model_path)) == "dlib"
    theirs = by_path.state_dict()
    for k, v in net.state_dict().items():
        if isinstance(v, torch.Tensor) and not k.startswith("fc."):
            assert torch.equal(v, theirs[k]), k
    torch.save(net.state_dict(), tmp_path / "w.pt")
    again = build_model("dlib_face_resnet", num_classes=net.fc.out_features)
    again.input_normalization = {"mean": (0.0,) * 3, "std": (1.0,) * 3}
    assert load_weights(again, tmp_path / "w.pt") == "palbench"
    assert again.input_normalization == net.input_normalization and torch.equal(again.fc.weight, net.fc.weight)


def test_a_partial_start_keeps_dlibs_blocks_up_to_the_cut(dataset):
    _, _, partial = prepare(_cfg(dataset, weights="dlib", keep_up_to="layer3.0"))
    _, _, full = prepare(_cfg(dataset, weights="dlib"))
    _, _, scratch = prepare(_cfg(dataset))
    kept, reset = kept_and_reset(partial, "layer3.0", 150)
    assert kept[:2] == ["stem.conv.weight", "stem.conv.bias"] and "layer3.0.bn2.bias" in kept
    assert "layer3.1.conv1.weight" in reset and reset[-2:] == ["fc.weight", "fc.bias"]
    state, loaded, fresh = partial.state_dict(), full.state_dict(), scratch.state_dict()
    assert all(torch.equal(state[k], loaded[k]) for k in kept)
    assert all(torch.equal(state[k], fresh[k]) for k in reset)
    assert not torch.equal(loaded["layer4.0.conv1.weight"], fresh["layer4.0.conv1.weight"])


def test_dlib_weights_errors_are_one_line(monkeypatch, tmp_path, model_path):
    vgg = build_model("vgg11", width=0.125)
    for weights in (str(model_path), "dlib"):
        with pytest.raises(WeightsError, match="fit --arch dlib_face_resnet, not vgg11") as err:
            load_weights(vgg, weights)
        assert "\n" not in str(err.value)
    with pytest.raises(WeightsError, match="missing.dat: weights file not found"):
        load_weights(build_model("dlib_face_resnet"), str(tmp_path / "missing.dat"))
    monkeypatch.setitem(sys.modules, "face_recognition_models", None)  # as if the package were not installed
    with pytest.raises(WeightsError, match="face_recognition_models package is not installed") as err:
        load_weights(build_model("dlib_face_resnet"), "dlib")
    assert "\n" not in str(err.value)
