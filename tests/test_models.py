"""palbench.models: backbones, layer catalogue, capture, weight import, FLOPs above a layer."""

from __future__ import annotations

import ast
import urllib.request
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.resnet import Bottleneck

from palbench.errors import ConfigError, WeightsError
from palbench.models import (
    build_model,
    capture,
    describe_layers,
    flops_above,
    layer_catalogue,
    load_weights,
    resolve_layer,
)

VGG_CHANNELS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
VGG_SIZES_224 = [224, 224, 112, 112, 56, 56, 56, 28, 28, 28, 14, 14, 14]
VGG_CONV_IDX = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]  # torchvision vgg16 features.N of each conv
VGG_BEFORE_POOL = {"conv2", "conv4", "conv7", "conv10", "conv13"}
VGG_BLOCKS = [2, 2, 3, 3, 3]
RESNET_STAGES = {"layer1": 3, "layer2": 4, "layer3": 6, "layer4": 3}


def _build(arch: str, seed: int = 0, weights: str | None = None, **kw) -> nn.Module:
    """``build_model(arch, **kw)`` seeded with ``seed``, then ``load_weights(model, weights)`` if given."""
    torch.manual_seed(seed)
    model = build_model(arch, **kw)
    if weights is not None:
        load_weights(model, weights)
    return model


@pytest.fixture(scope="module")
def vgg16_full() -> nn.Module:
    return _build("vgg16", width=1.0)


# ----------------------------------------------------------------------------------------------- backbones
def test_build_basics() -> None:
    m = _build("vgg16_bn", width=0.125, num_classes=5)
    assert isinstance(m, torchvision.models.VGG)
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    assert all(not r.inplace for r in m.modules() if isinstance(r, nn.ReLU))
    assert m.input_normalization == {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    r = _build("resnet50", width=0.125)
    assert isinstance(r, torchvision.models.ResNet)
    assert r(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert all(not x.inplace for x in r.modules() if isinstance(x, nn.ReLU))
    # Same module names as torchvision's own model.
    assert set(r.state_dict()) - {"_extra_state"} == set(torchvision.models.resnet50(num_classes=7).state_dict())
    with pytest.raises(ConfigError, match="torchvision classification model.*resnet18"):
        build_model("vgg17")
    with pytest.raises(ConfigError, match="width"):
        build_model("vgg16", width=0)
    with pytest.raises(ConfigError, match="num_classes"):
        build_model("vgg16", num_classes=0)


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside functions (``import``/``from ... import``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_model_modules_import_one_way() -> None:
    # backbones -> weights -> layout, backbones -> layout: never back (no cycle hidden in a lazy import).
    # backbones -> narrow -> registry, backbones -> state -> layout, weights -> state.
    import palbench.models

    root = Path(palbench.models.__file__).parent
    assert "palbench.models.backbones" not in _imported_modules(root / "weights.py")
    assert not {"palbench.models.backbones", "palbench.models.weights"} & _imported_modules(root / "layout.py")
    above = {"palbench.models.backbones", "palbench.models.narrow", "palbench.models.weights"}
    assert not (above | {"palbench.models.state"}) & _imported_modules(root / "registry.py")
    assert not (above - {"palbench.models.narrow"}) & _imported_modules(root / "narrow.py")
    assert not (above | {"palbench.models.registry"}) & _imported_modules(root / "state.py")
    assert "palbench.models.narrow" not in _imported_modules(root / "weights.py")


def test_same_seed_same_model() -> None:
    a, b = _build("resnet50", width=0.125, seed=3), _build("resnet50", width=0.125, seed=3)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        if isinstance(va, torch.Tensor):
            assert torch.equal(va, vb), k


# ----------------------------------------------------------------------------------------------- catalogue
def test_vgg16_catalogue_full_width_224(vgg16_full: nn.Module) -> None:
    names = [f"conv{k}" for k in range(1, 14)]
    assert list(layer_catalogue(vgg16_full)) == names
    for name, idx in zip(names, VGG_CONV_IDX):
        mod = resolve_layer(vgg16_full, name)
        assert mod is vgg16_full.features[idx + 1] and isinstance(mod, nn.ReLU)
    rows = describe_layers(vgg16_full, 224)
    assert [r["name"] for r in rows] == names
    assert [r["channels"] for r in rows] == VGG_CHANNELS
    assert [r["height"] for r in rows] == VGG_SIZES_224
    assert [r["width"] for r in rows] == VGG_SIZES_224
    assert {r["name"] for r in rows if r["before_pool"]} == VGG_BEFORE_POOL


@pytest.mark.parametrize(("arch", "width"), [("vgg16", 0.25), ("vgg16_bn", 0.125)])
def test_vgg_narrow_catalogue_224(arch: str, width: float) -> None:
    m = _build(arch, width=width)
    m.train()
    rows = describe_layers(m, 224)
    assert m.training  # mode restored
    assert [r["channels"] for r in rows] == [int(c * width) for c in VGG_CHANNELS]
    assert [(r["height"], r["width"]) for r in rows] == [(s, s) for s in VGG_SIZES_224]
    assert {r["name"] for r in rows if r["before_pool"]} == VGG_BEFORE_POOL
    feats = list(m.features)
    for name, mod in layer_catalogue(m).items():
        i = next(j for j, f in enumerate(feats) if f is mod)
        if arch == "vgg16_bn":  # the ReLU after the BN after the conv
            assert isinstance(feats[i - 1], nn.BatchNorm2d) and isinstance(feats[i - 2], nn.Conv2d), name
        else:
            assert isinstance(feats[i - 1], nn.Conv2d), name
    assert m.classifier[0].out_features == int(4096 * width)
    assert m.classifier[0].in_features == int(512 * width) * 49


@pytest.mark.parametrize("width", [0.125, 1.0])
def test_resnet50_catalogue_224(width: float) -> None:
    m = _build("resnet50", width=width)
    expected = ["stem"]
    for stage, n in RESNET_STAGES.items():
        expected += [f"{stage}.{b}" for b in range(n)] + [stage]
    cat = layer_catalogue(m)
    assert list(cat) == expected
    assert cat["stem"] is m.relu
    assert isinstance(cat["layer3.4"], Bottleneck) and cat["layer3.4"] is m.layer3[4]
    assert cat["layer2"] is m.layer2
    rows = {r["name"]: r for r in describe_layers(m, 224)}
    geometry = {"stem": (64, 112), "layer1": (256, 56), "layer2": (512, 28), "layer3": (1024, 14), "layer4": (2048, 7)}
    for name, (c, s) in geometry.items():
        assert (rows[name]["channels"], rows[name]["height"], rows[name]["width"]) == (int(c * width), s, s), name
        if name != "stem":
            for b in range(RESNET_STAGES[name]):
                assert (rows[f"{name}.{b}"]["channels"], rows[f"{name}.{b}"]["height"]) == (int(c * width), s)
    assert [n for n, r in rows.items() if r["before_pool"]] == ["stem"]


def test_catalogue_of_user_built_torchvision_models() -> None:
    r18 = torchvision.models.resnet18(num_classes=3)
    cat = layer_catalogue(r18)
    assert list(cat)[:4] == ["stem", "layer1.0", "layer1.1", "layer1"] and list(cat)[-1] == "layer4"
    # Any other network: its blocks with a spatial output, by module path, in forward order (a 1×1 map is not
    # spatial: no prior can be drawn on it).
    seq = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    assert list(layer_catalogue(seq)) == ["0", "1"]
    with pytest.raises(ConfigError, match="no submodule outputs a spatial map"):
        layer_catalogue(nn.Sequential(nn.Flatten(), nn.Linear(3 * 64 * 64, 2)))


def test_layer_by_module_path_is_the_same_map() -> None:
    """``--layer`` takes a module path: VGG ``features.32`` is conv10 of vgg16_bn; a path inside a ResNet block;
    a torchvision model built outside palbench (EfficientNet-B0) captured at a stage (a module path that is
    not one of its catalogue's blocks), in the graph."""
    m = _build("vgg16_bn", width=0.125).eval()
    x = torch.randn(1, 3, 32, 32)
    with capture(m, "conv10") as a, capture(m, "features.32") as b:
        m(x)
    assert resolve_layer(m, "features.32") is resolve_layer(m, "conv10") and torch.equal(a.features, b.features)
    r = _build("resnet50", width=0.125).eval()
    with capture(r, "layer3.1.conv2") as c:
        r(torch.randn(1, 3, 64, 64))
    assert c.features.shape[1] == r.layer3[1].conv2.out_channels
    net = torchvision.models.efficientnet_b0(num_classes=7)
    paths = list(layer_catalogue(net, size=64))
    assert "features.4.1" in paths and "features.4" not in paths and "classifier.1" not in paths
    with capture(net, "features.4") as d:
        logits = net(torch.randn(2, 3, 64, 64))
    (g,) = torch.autograd.grad(logits.sum(), d.features, create_graph=True)
    (g * d.features).mean().backward()  # the PAL term's second order reaches the layers below
    assert net.features[0][0].weight.grad.abs().sum() > 0


def test_a_path_without_a_spatial_output_is_refused_with_the_valid_ones() -> None:
    m = _build("vgg16", width=0.125)
    with pytest.raises(ConfigError) as e:
        resolve_layer(m, "classifier.0", size=32)
    msg = str(e.value)
    assert "not a spatial map" in msg and "conv1, conv2" in msg and "features.0" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="not a spatial map"):
        with capture(m, "classifier.0"):
            m(torch.randn(1, 3, 32, 32))


# ------------------------------------------------------------------------------------------------- capture
def test_capture_vgg_in_graph_and_exact() -> None:
    m = _build("vgg16_bn", width=0.125).eval()
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    module = resolve_layer(m, "conv7")
    idx = next(j for j, f in enumerate(m.features) if f is module)
    calls = []
    pre = m.register_forward_pre_hook(lambda *_: calls.append(1))
    with capture(m, "conv7") as cap:
        with pytest.raises(ConfigError, match="conv7"):
            _ = cap.features
        logits = m(x)
        feats = cap.features
        assert len(module._forward_hooks) == 1
    pre.remove()
    assert len(calls) == 1  # no second forward
    assert len(module._forward_hooks) == 0  # hook removed
    assert feats.shape == (2, 32, 8, 8) and feats.grad_fn is not None
    assert torch.equal(feats, m.features[: idx + 1](x))
    (g,) = torch.autograd.grad(logits.sum(), feats, create_graph=True)
    assert g.shape == feats.shape and g.abs().sum() > 0
    # Second order through the captured map (what PAL's loss backward does).
    (g * feats).mean().backward()
    assert m.features[0].weight.grad is not None and m.features[0].weight.grad.abs().sum() > 0
    # After exit, forwards no longer update the capture.
    m(torch.randn(1, 3, 32, 32))
    assert cap.features is feats


def test_capture_through_data_parallel_wrapper() -> None:
    m = _build("vgg16", width=0.125).eval()
    x = torch.randn(1, 3, 32, 32)
    with capture(nn.DataParallel(m), "conv3") as cap:
        nn.DataParallel(m)(x)
    assert torch.equal(cap.features, m.features[:7](x))  # conv3 = ReLU at features.6


def test_capture_resnet_block_equals_recomputation() -> None:
    m = _build("resnet50", width=0.125).eval()
    x = torch.randn(1, 3, 64, 64)
    with capture(m, "layer3.2") as cap, capture(m, "layer2") as cap2:
        m(x)
    with torch.no_grad():
        h = m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x))))))
        assert torch.equal(cap2.features, h)
        assert torch.allclose(cap.features, m.layer3[:3](h))


def test_unknown_layer_lists_valid_names() -> None:
    m = _build("vgg16", width=0.125)
    with pytest.raises(ConfigError) as e:
        with capture(m, "conv14"):
            pass
    assert "conv14" in str(e.value) and "conv1, conv2" in str(e.value) and "conv13" in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="stem.*layer4"):
        resolve_layer(_build("resnet50", width=0.125), "layer5")


# ------------------------------------------------------------------------------------------------- weights
def _vgg_face_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """vgg_face_dag.pth key names with the narrow model's shapes."""
    g = torch.Generator().manual_seed(1)
    sd: dict[str, torch.Tensor] = {}
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    k = 0
    for b, n in enumerate(VGG_BLOCKS, start=1):
        for i in range(1, n + 1):
            sd[f"conv{b}_{i}.weight"] = torch.randn(convs[k].weight.shape, generator=g)
            sd[f"conv{b}_{i}.bias"] = torch.randn(convs[k].bias.shape, generator=g)
            k += 1
    for name, lin in (("fc6", model.classifier[0]), ("fc7", model.classifier[3])):
        sd[f"{name}.weight"] = torch.randn(lin.weight.shape, generator=g)
        sd[f"{name}.bias"] = torch.randn(lin.bias.shape, generator=g)
    sd["fc8.weight"] = torch.randn(2622, model.classifier[3].out_features, generator=g)
    sd["fc8.bias"] = torch.randn(2622, generator=g)
    return sd


def test_vgg_face_import(tmp_path) -> None:
    ref = _build("vgg16", width=0.125)
    sd = _vgg_face_dict(ref)
    path = tmp_path / "vgg_face_dag.pth"
    torch.save(sd, path)
    m = _build("vgg16", width=0.125, weights=str(path))
    assert torch.equal(m.features[0].weight, sd["conv1_1.weight"])
    assert torch.equal(m.features[10].weight, sd["conv3_1.weight"])
    assert torch.equal(m.features[21].bias, sd["conv4_3.bias"])
    assert torch.equal(m.features[28].weight, sd["conv5_3.weight"])
    assert torch.equal(m.classifier[0].weight, sd["fc6.weight"])
    assert torch.equal(m.classifier[3].bias, sd["fc7.bias"])
    assert torch.equal(m.classifier[6].weight, ref.classifier[6].weight)  # head: seeded random init, not fc8
    mean = (129.186279296875 / 255, 104.76238250732422 / 255, 93.59396362304688 / 255)
    assert m.input_normalization["mean"] == pytest.approx(mean)
    assert m.input_normalization["std"] == pytest.approx((1 / 255,) * 3)

    bad = dict(sd, **{"conv3_2.weight": torch.zeros(5, 5, 3, 3)})
    torch.save(bad, path)
    with pytest.raises(WeightsError, match=r"conv3_2\.weight.*\(5, 5, 3, 3\).*\(32, 32, 3, 3\)"):
        load_weights(build_model("vgg16", width=0.125), str(path))
    torch.save({k: v for k, v in sd.items() if k != "fc7.bias"}, path)
    with pytest.raises(WeightsError, match=r"missing key 'fc7\.bias'"):
        load_weights(build_model("vgg16", width=0.125), str(path))
    torch.save(sd, path)
    with pytest.raises(WeightsError, match="vgg16_bn"):
        load_weights(build_model("vgg16_bn", width=0.125), str(path))


def _vggface2_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """resnet50_ft_dag.pth key names with the narrow model's shapes; BN stats random and positive variances."""
    g = torch.Generator().manual_seed(2)
    sd: dict[str, torch.Tensor] = {}

    def conv_bn(name: str, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
        sd[f"{name}.weight"] = torch.randn(conv.weight.shape, generator=g) * 0.1
        c = bn.num_features
        sd[f"{name}_bn.weight"] = torch.rand(c, generator=g) + 0.5
        sd[f"{name}_bn.bias"] = torch.randn(c, generator=g) * 0.1
        sd[f"{name}_bn.running_mean"] = torch.randn(c, generator=g) * 0.1
        sd[f"{name}_bn.running_var"] = torch.rand(c, generator=g) + 0.5

    conv_bn("conv1_7x7_s2", model.conv1, model.bn1)
    for s, stage in enumerate([model.layer1, model.layer2, model.layer3, model.layer4], start=2):
        for b, blk in enumerate(stage, start=1):
            conv_bn(f"conv{s}_{b}_1x1_reduce", blk.conv1, blk.bn1)
            conv_bn(f"conv{s}_{b}_3x3", blk.conv2, blk.bn2)
            conv_bn(f"conv{s}_{b}_1x1_increase", blk.conv3, blk.bn3)
            if blk.downsample is not None:
                conv_bn(f"conv{s}_{b}_1x1_proj", blk.downsample[0], blk.downsample[1])
    sd["classifier.weight"] = torch.randn(8631, model.fc.in_features, 1, 1, generator=g)
    sd["classifier.bias"] = torch.randn(8631, generator=g)
    return sd


def _bn(x: torch.Tensor, sd: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    return F.batch_norm(
        x, sd[f"{name}_bn.running_mean"], sd[f"{name}_bn.running_var"], sd[f"{name}_bn.weight"], sd[f"{name}_bn.bias"]
    )


def test_vggface2_resnet_import_and_caffe_layout(tmp_path) -> None:
    ref = _build("resnet50", width=0.125)
    sd = _vggface2_dict(ref)
    path = tmp_path / "resnet50_ft_dag.pth"
    torch.save(sd, path)
    m = _build("resnet50", width=0.125, weights=str(path)).eval()
    assert torch.equal(m.conv1.weight, sd["conv1_7x7_s2.weight"])
    assert torch.equal(m.bn1.running_mean, sd["conv1_7x7_s2_bn.running_mean"])
    assert torch.equal(m.layer2[0].conv1.weight, sd["conv3_1_1x1_reduce.weight"])
    assert torch.equal(m.layer3[5].bn3.running_var, sd["conv4_6_1x1_increase_bn.running_var"])
    assert torch.equal(m.layer4[0].downsample[1].running_mean, sd["conv5_1_1x1_proj_bn.running_mean"])
    assert torch.equal(m.layer4[2].conv2.weight, sd["conv5_3_3x3.weight"])
    assert torch.equal(m.layer1[0].downsample[0].weight, sd["conv2_1_1x1_proj.weight"])
    assert torch.equal(m.fc.weight, ref.fc.weight)  # head excluded
    assert m.input_normalization["mean"] == pytest.approx((131.0912 / 255, 103.8827 / 255, 91.4953 / 255))
    assert m.input_normalization["std"] == pytest.approx((1 / 255,) * 3)
    # Caffe geometry: stride on the 1x1 reduce conv, unpadded ceil-mode max-pool.
    for stage in (m.layer2, m.layer3, m.layer4):
        assert stage[0].conv1.stride == (2, 2) and stage[0].conv2.stride == (1, 1)
    assert m.maxpool.ceil_mode and m.maxpool.padding == 0
    # Oracle: the Caffe network computed functionally from the source tensors.
    x = torch.randn(1, 3, 65, 65)  # odd size: ceil-mode unpadded pool gives 16, torchvision's would give 17
    with capture(m, "stem") as stem, capture(m, "layer1") as l1, capture(m, "layer2.0") as l20:
        m(x)
    with torch.no_grad():
        h = F.relu(_bn(F.conv2d(x, sd["conv1_7x7_s2.weight"], stride=2, padding=3), sd, "conv1_7x7_s2"))
        assert torch.allclose(stem.features, h, atol=1e-5)
        assert F.max_pool2d(h, 3, 2, 0, ceil_mode=True).shape[-1] == 16 and l1.features.shape[-1] == 16
        y = l1.features
        t = F.relu(_bn(F.conv2d(y, sd["conv3_1_1x1_reduce.weight"], stride=2), sd, "conv3_1_1x1_reduce"))
        t = F.relu(_bn(F.conv2d(t, sd["conv3_1_3x3.weight"], padding=1), sd, "conv3_1_3x3"))
        t = _bn(F.conv2d(t, sd["conv3_1_1x1_increase.weight"]), sd, "conv3_1_1x1_increase")
        proj = _bn(F.conv2d(y, sd["conv3_1_1x1_proj.weight"], stride=2), sd, "conv3_1_1x1_proj")
        assert torch.allclose(l20.features, F.relu(t + proj), atol=1e-5)

    # A palbench checkpoint of the imported model reloads with the Caffe layout and its normalisation.
    ckpt = tmp_path / "ckpt.pt"
    torch.save(m.state_dict(), ckpt)
    m2 = _build("resnet50", width=0.125, seed=9, weights=str(ckpt)).eval()
    assert m2.layer3[0].conv1.stride == (2, 2) and m2.maxpool.ceil_mode
    assert m2.input_normalization == m.input_normalization
    with torch.no_grad():
        assert torch.equal(m2(x), m(x))

    torch.save(dict(sd, **{"conv4_2_3x3.weight": torch.zeros(3, 3, 3, 3)}), path)
    with pytest.raises(WeightsError, match=r"conv4_2_3x3\.weight.*\(3, 3, 3, 3\).*\(32, 32, 3, 3\)"):
        load_weights(build_model("resnet50", width=0.125), str(path))


def test_palbench_state_dict_round_trip(tmp_path) -> None:
    m = _build("vgg16_bn", width=0.125, seed=4)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.normal_()
                mod.running_var.uniform_(0.5, 2)
                mod.num_batches_tracked.fill_(17)
    path = tmp_path / "model.pt"
    torch.save(m.state_dict(), path)
    m2 = _build("vgg16_bn", width=0.125, seed=5, weights=str(path))
    sd, sd2 = m.state_dict(), m2.state_dict()
    assert set(sd) == set(sd2)
    for k, v in sd.items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(v, sd2[k]), k
    # Wrong number of classes: loud, never a silently dropped head.
    with pytest.raises(WeightsError, match=r"classifier\.6\.weight.*\(7, 512\).*\(3, 512\)"):
        load_weights(build_model("vgg16_bn", width=0.125, num_classes=3), str(path))
    with pytest.raises(WeightsError, match="not found"):
        load_weights(build_model("vgg16", width=0.125), str(tmp_path / "absent.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="junk.pth"):
        load_weights(build_model("vgg16", width=0.125), str(tmp_path / "junk.pth"))


def test_torchvision_state_dict_drops_head(tmp_path) -> None:
    tv = torchvision.models.resnet50(num_classes=1000)  # torchvision's own class, 1000-class head
    narrow = _build("resnet50", width=0.125, num_classes=1000)
    sd = {k: v for k, v in narrow.state_dict().items() if k != "_extra_state"}
    assert set(sd) == set(tv.state_dict())
    path = tmp_path / "tv.pth"
    torch.save(sd, path)
    ref = _build("resnet50", width=0.125, seed=7)
    m = _build("resnet50", width=0.125, seed=7, weights=str(path))
    assert torch.equal(m.layer3[2].conv2.weight, sd["layer3.2.conv2.weight"])
    assert torch.equal(m.layer1[0].bn1.running_var, sd["layer1.0.bn1.running_var"])
    assert torch.equal(m.fc.weight, ref.fc.weight) and m.fc.out_features == 7


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_imagenet_weights_from_hub_cache_only(tmp_path, monkeypatch, no_network) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / "hub" / "checkpoints" / "vgg16-397923af.pth"
    with pytest.raises(WeightsError) as e:
        load_weights(build_model("vgg16", width=0.125), "imagenet")
    assert str(expected) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(WeightsError, match="resnet50-0676ba61.pth"):
        load_weights(build_model("resnet50", width=0.125), "imagenet")
    src = _build("vgg16", width=0.125, num_classes=1000, seed=11)
    expected.parent.mkdir(parents=True)
    torch.save({k: v for k, v in src.state_dict().items() if k != "_extra_state"}, expected)
    ref = _build("vgg16", width=0.125, seed=12)
    m = _build("vgg16", width=0.125, seed=12, weights="imagenet")
    assert torch.equal(m.features[26].weight, src.features[26].weight)
    assert torch.equal(m.classifier[3].weight, src.classifier[3].weight)
    assert torch.equal(m.classifier[6].weight, ref.classifier[6].weight)
    assert m.input_normalization["mean"] == (0.485, 0.456, 0.406)


# --------------------------------------------------------------------------------------------------- FLOPs
def _vgg16_flops_by_hand(size: int, num_classes: int) -> int:
    total, cin, s = 0, 3, size
    for b, n in enumerate(VGG_BLOCKS):
        for _ in range(n):
            cout = VGG_CHANNELS[sum(VGG_BLOCKS[:b])]
            total += 2 * cin * cout * 9 * s * s
            cin = cout
        s //= 2
    return total + 2 * (512 * 49 * 4096 + 4096 * 4096 + 4096 * num_classes)


def test_flops_above_vgg16(vgg16_full: nn.Module) -> None:
    above = [flops_above(vgg16_full, f"conv{k}", 224) for k in range(1, 14)]
    totals = {t for _, t in above}
    assert totals == {_vgg16_flops_by_hand(224, 7)}
    values = [a for a, _ in above]
    assert all(x > y for x, y in zip(values, values[1:]))
    assert values[-1] == 2 * (25088 * 4096 + 4096 * 4096 + 4096 * 7)  # classifier only (bias adds not counted)
    # conv13 → conv12: exactly the last conv's 2·Cin·Cout·9·H·W.
    assert values[-2] - values[-1] == 2 * 512 * 512 * 9 * 14 * 14


def test_flops_above_narrow_resnet() -> None:
    m = _build("resnet50", width=0.125)
    up4, total = flops_above(m, "layer4", 64)
    assert up4 == 2 * 256 * 7  # only fc after the last stage (average pooling not counted)
    assert flops_above(m, "layer4.2", 64) == (up4, total)
    assert flops_above(m, "stem", 64)[0] > flops_above(m, "layer1.0", 64)[0] > up4
    with pytest.raises(ConfigError, match="conv1"):
        flops_above(_build("vgg16", width=0.125), "conv0", 32)


def test_layers_command_lists_names_or_every_module_path(capsys) -> None:
    from palbench.cli import main

    assert main(["layers", "--arch", "vgg16_bn", "--width", "0.125", "--size", "32"]) == 0
    names = capsys.readouterr().out.splitlines()
    assert len(names) == 13 and names[9].split()[0] == "conv10" and "before a max-pool" in names[1]
    assert main(["layers", "--arch", "vgg16_bn", "--width", "0.125", "--size", "32", "--paths"]) == 0
    paths = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "features.32" in paths and "classifier.0" not in paths  # conv10's ReLU; the head is not spatial
    assert paths["features.32"].split()[1:] == names[9].split()[1:]  # the same map, the same C×H×W
    pooled = [p for p, line in paths.items() if "before a max-pool" in line]
    assert pooled == ["features.5", "features.12", "features.22", "features.32", "features.42"]
