"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) as a torch module.

The file is dlib's binary ``serialize`` of its dnn ``anet_type`` (``dnn_face_recognition_ex.cpp``): a
ResNet-34-like metric network with 29 conv layers and half the filters, trained on about 3M faces, mapping an
aligned 150×150 RGB face chip to a 128-d descriptor. :func:`read_dlib_net` parses it with numpy only (the
format was worked out from dlib's public ``serialize.h``, ``dnn/core.h``, ``dnn/layers.h``, ``dnn/input.h``,
``dnn/loss.h`` and ``dnn/tensor.h``); :func:`load_dlib_face_net` builds :class:`DlibFaceNet` with its weights.
Nothing is downloaded: the path comes from the ``face_recognition_models`` package or an explicit argument.

Encoding (``serialize.h``): an integer is one header byte (low nibble: the number of magnitude bytes that
follow, little-endian; bit 7: negative) then the bytes; a string is its length then its bytes; a bool is the
character ``'0'``/``'1'``; a float is two integers ``(mantissa, exponent)`` with value ``mantissa · 2^exponent``.
A tensor (``tensor.h``, version 2) is ``version, num_samples, k, nr, nc`` then raw little-endian float32 values.

Network layout (``core.h``): each ``add_layer`` writes its version, then its sub-network (recursively), then its
layer's details and state; ``tag``/``skip`` layers write a version and their sub-network only; the loss layer
writes its version and details first. The file thus reads: the versions top-down, the input layer, then the
computational layers bottom-up (input → output). Batch norm is stored as ``affine_`` layers (per-channel
``gamma · x + beta``).

Forward (shapes for a batch of B), exactly as dlib computes it::

    x      [B, 3, 150, 150]  RGB, 0–255 float (what ``input_rgb_image_sized<150>`` receives)
    input  (x - mean_rgb) / 256                 mean_rgb read from the file (122.782, 117.001, 104.298)
    stem   conv 7×7/2 (32) · affine · relu      [B, 32, 72, 72]   (module ``stem``; then ``maxpool``)
    maxpool 3×3/2                               [B, 32, 35, 35]
    layer1.0–2   3 residual blocks, 32 ch       [B, 32, 35, 35]
    layer2.0–3   down block + 3 blocks, 64 ch   [B, 64, 17, 17]
    layer3.0–2   down block + 2 blocks, 128 ch  [B, 128, 8, 8]
    layer4.0–2   down block + 2 blocks, 256 ch  [B, 256, 4, 4]
    layer5.0     down block, 256 ch             [B, 256, 2, 2]
    pool   mean over space                      [B, 256]
    fc     linear, no bias                      [B, 128]  the descriptor (``loss_metric`` passes it through)

A block is ``relu(shortcut + affine(conv3×3(relu(affine(conv3×3/s(x))))))``. In a down block (stride 2) the
shortcut is a 2×2/2 average pool of the input, and the sum follows dlib's ``add_prev``: the output has the
larger of the two shapes in every dimension, each operand zero-padded at the end (extra channels, and the
extra row/column where the pooled shortcut is larger: 8→3 vs 8→4 in ``layer4.0``, 4→1 vs 4→2 in ``layer5.0``).
Each block's output (post-ReLU) is its module's output, so PAL can pick ``stem`` or ``layerS.B`` as its layer.

As a palbench backbone (``--arch dlib_face_resnet``, :func:`build_dlib_face_resnet`, registered by
:mod:`palbench.models.backbones`) the network takes images normalised with its ``input_normalization`` (dlib's
``(x·255 − mean_rgb)/256`` as a mean/std of [0, 1] images, :data:`palbench.models.weights.DLIB_FACE_NORMALIZATION`),
and ``fc`` is a K-class head on the pooled 256-d features; ``weights: dlib`` (or the ``.dat`` path) loads
everything below the head (:func:`load_dlib_weights`). Global mean pooling makes it take any input of at least
:data:`palbench.config.names.DLIB_FACE_MIN_SIZE` px (the unpadded stride-2 convolutions need that much).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from palbench.config.names import DLIB_FACE_MIN_SIZE, dlib_model_file
from palbench.errors import ConfigError, WeightsError

CHIP_SIZE = 150
DESCRIPTOR_DIM = 128
#: Channels of the pooled features (layer5's output), the input of ``fc``.
FEATURE_DIM = 256
#: dlib's input mean (RGB, 0–255) as ``dlib_face_recognition_resnet_model_v1.dat`` stores it; dlib divides by 256.
MEAN_RGB = (122.782, 117.001, 104.298)
INPUT_SCALE = 256.0

# (stage name, channels, number of blocks, first block is a down block), input → output: anet_type's
# alevel4 (3 × ares<32>), alevel3, alevel2, alevel1, alevel0.
STAGES: tuple[tuple[str, int, int, bool], ...] = (
    ("layer1", 32, 3, False),
    ("layer2", 64, 4, True),
    ("layer3", 128, 3, True),
    ("layer4", 256, 3, True),
    ("layer5", 256, 1, True),
)


def default_model_path() -> Path:
    """Path of ``dlib_face_recognition_resnet_model_v1.dat`` from the installed ``face_recognition_models``."""
    try:
        return dlib_model_file()
    except ConfigError as e:
        raise WeightsError(str(e)) from None


# ---------------------------------------------------------------------------------------------------------
# Reader


@dataclass
class DlibLayer:
    """One computational layer of the file: its version string, integer/float fields and parameter array."""

    kind: str  # "con", "affine", "relu", "max_pool", "avg_pool", "add_prev", "fc"
    version: str
    fields: dict = field(default_factory=dict)
    params: np.ndarray | None = None


@dataclass
class DlibNet:
    """What :func:`read_dlib_net` reads: the input layer's mean and size, the layers input → output."""

    mean_rgb: tuple[float, float, float]
    chip_size: tuple[int, int]
    layers: list[DlibLayer]
    versions: list[int]  # the wrappers' versions top-down (2: add_layer, 1: tag/skip)
    loss: str


class _Reader:
    def __init__(self, data: bytes, path: Path):
        self.data = data
        self.pos = 0
        self.path = path

    def fail(self, msg: str) -> WeightsError:
        return WeightsError(f"{self.path}: not a dlib face-recognition model file ({msg} at byte {self.pos})")

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"truncated: {n} bytes expected, {len(self.data) - self.pos} left")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        head = self.take(1)[0]
        size = head & 0x0F
        if size > 8 or head & 0x70:
            raise self.fail(f"bad integer header 0x{head:02x}")
        value = int.from_bytes(self.take(size), "little")
        return -value if head & 0x80 else value

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        try:
            return math.ldexp(float(mantissa), exponent)
        except OverflowError:
            raise self.fail(f"float out of range ({mantissa}·2^{exponent})") from None

    def bool(self) -> bool:
        c = self.take(1)
        if c not in (b"0", b"1"):
            raise self.fail(f"bad bool {c!r}")
        return c == b"1"

    def string(self) -> str:
        n = self.int()
        if n > 1000:
            raise self.fail(f"implausible string length {n}")
        try:
            return self.take(n).decode("ascii")
        except UnicodeDecodeError:
            raise self.fail("non-ASCII string") from None

    def peek_string(self) -> str | None:
        pos = self.pos
        try:
            return self.string()
        except WeightsError:
            return None
        finally:
            self.pos = pos

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise self.fail(f"tensor version {version}, expected 2")
        shape = tuple(self.int() for _ in range(4))
        if min(shape) < 0:
            raise self.fail(f"bad tensor shape {shape}")
        n = math.prod(shape)
        return np.frombuffer(self.take(4 * n), dtype="<f4").reshape(shape).astype(np.float32)

    def alias(self) -> tuple[int, int, int, int]:
        version = self.int()
        if version != 1:
            raise self.fail(f"alias_tensor version {version}, expected 1")
        return tuple(self.int() for _ in range(4))


def _read_details(r: _Reader) -> DlibLayer:
    name = r.string()
    if name == "con_4":
        params = r.tensor()
        f = {k: r.int() for k in ("num_filters", "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")}
        f["filters"], f["biases"] = r.alias(), r.alias()
        for _ in range(4):  # learning-rate and weight-decay multipliers
            r.float()
        return DlibLayer("con", name, f, params)
    if name == "affine_":
        params = r.tensor()
        f = {"gamma": r.alias(), "beta": r.alias(), "mode": r.int()}
        return DlibLayer("affine", name, f, params)
    if name == "fc_2":
        f = {"num_outputs": r.int(), "num_inputs": r.int()}
        params = r.tensor()
        f["weights"], f["biases"] = r.alias(), r.alias()
        f["bias_mode"] = r.int()
        for _ in range(4):
            r.float()
        return DlibLayer("fc", name, f, params)
    if name in ("max_pool_2", "avg_pool_2"):
        f = {k: r.int() for k in ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")}
        return DlibLayer(name[:-2], name, f)
    if name in ("relu_", "add_prev_"):
        return DlibLayer(name[:-1], name)
    raise r.fail(f"unsupported layer {name!r}")


def read_dlib_net(path: str | Path | None = None) -> DlibNet:
    """Parse dlib's serialized face-recognition network (see the module docstring for the format)."""
    path = Path(path) if path is not None else default_model_path()
    try:
        data = path.read_bytes()
    except OSError as e:
        raise WeightsError(f"{path}: cannot read the dlib face model ({e.strerror or e})") from None
    r = _Reader(data, path)
    if r.int() != 1:
        raise r.fail("add_loss_layer version is not 1")
    loss = r.string()
    if loss != "loss_metric_2":
        raise r.fail(f"loss layer {loss!r}, expected 'loss_metric_2'")
    r.float(), r.float()  # margin, distance threshold: training only
    versions: list[int] = []
    while True:
        v = r.int()
        if r.peek_string() == "input_rgb_image_sized":
            base_version = v
            break
        if v not in (1, 2) or len(versions) > 1000:
            raise r.fail(f"unexpected layer version {v}")
        versions.append(v)
    if base_version not in (2, 3):
        raise r.fail(f"input add_layer version {base_version}")
    r.string()
    mean = (r.float(), r.float(), r.float())
    chip = (r.int(), r.int())
    layers = []
    for i in range(versions.count(2) + 1):
        layers.append(_read_details(r))
        r.bool(), r.bool(), r.bool()  # setup called, gradient stale, in-place
        r.tensor(), r.tensor(), r.tensor()  # x_grad, cached_output, params_grad / grad_final (empty)
        if i == 0 and base_version >= 3:
            r.int()  # sample expansion factor
    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} bytes left after the network")
    return DlibNet(mean, chip, layers, versions, loss)


# ---------------------------------------------------------------------------------------------------------
# Torch module


def _expected_kinds() -> list[str]:
    """anet_type's layers input → output, with tags/skips as "tag" (the file's version-1 wrappers)."""
    kinds = ["con", "affine", "relu", "max_pool"]
    for _, _, n, down in STAGES:
        for b in range(n):
            kinds += ["tag", "con", "affine", "relu", "con", "affine"]
            kinds += ["tag", "tag", "avg_pool"] if down and b == 0 else []
            kinds += ["add_prev", "relu"]
    return kinds + ["avg_pool", "fc"]


class Affine(nn.Module):
    """dlib's ``affine_`` in conv mode (batch norm folded): ``weight[c] · x + bias[c]``."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight[:, None, None] + self.bias[:, None, None]


def padded_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: ``a + b`` over the larger shape, each zero-padded at the end of C, H and W."""
    shape = [max(i, j) for i, j in zip(a.shape[1:], b.shape[1:])]

    def pad(t: torch.Tensor) -> torch.Tensor:
        c, h, w = t.shape[1:]
        return F.pad(t, (0, shape[2] - w, 0, shape[1] - h, 0, shape[0] - c)) if [c, h, w] != shape else t

    return pad(a) + pad(b)


class Block(nn.Module):
    """One ``ares`` (``down=False``) or ``ares_down`` block; its output is post-ReLU ``[B, out, H', W']``."""

    def __init__(self, cin: int, cout: int, down: bool):
        super().__init__()
        stride = 2 if down else 1
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 0 if down else 1)
        self.bn1 = Affine(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.bn2 = Affine(cout)
        self.shortcut = nn.AvgPool2d(2, 2) if down else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu(padded_add(self.shortcut(x), y))


class Stem(nn.Sequential):
    """conv 7×7/2 · affine · relu: ``[B, 3, 150, 150]`` → ``[B, 32, 72, 72]`` (before the max-pool)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 7, 2, 0)
        self.bn = Affine(32)
        self.relu = nn.ReLU()


class DlibFaceNet(nn.Module):
    """dlib's face-recognition ResNet, as dlib's descriptor network or as a K-class palbench backbone.

    ``num_classes=None`` (dlib's network, :func:`load_dlib_face_net`): ``[B, 3, H, W]`` RGB 0–255 →
    ``[B, 128]`` descriptors; the input normalisation is the buffer ``mean`` and the scale 1/256, and ``fc`` is
    dlib's 256 → 128 projection without bias.

    ``num_classes=K`` (the backbone, :func:`build_dlib_face_resnet`): ``[B, 3, H, W]`` images already
    normalised (``model.input_normalization``) → ``[B, K]`` logits; ``fc`` is a K-class linear head with bias
    on the pooled 256-d features. The head sits on those features rather than on the 128-d descriptor: dlib
    trained the descriptor (a metric loss over identities) to be the same for every picture of a person,
    expression included, so the projection discards what an expression head needs; the 256 pooled channels are
    the last representation before it, and a head there is where torchvision's ResNet puts its ``fc``.

    Modules: ``stem``, ``maxpool``, ``layer1`` … ``layer5`` (``nn.Sequential`` of :class:`Block`, named
    ``layerS.B``), ``fc``. Shapes per stage are in the module docstring (150 px; any side ≥ 103 px works).
    """

    def __init__(self, num_classes: int | None = None):
        super().__init__()
        self.pixel_input = num_classes is None
        if self.pixel_input:
            self.register_buffer("mean", torch.tensor(MEAN_RGB).view(1, 3, 1, 1))
        self.stem = Stem()
        self.maxpool = nn.MaxPool2d(3, 2)
        cin = 32
        for name, cout, n, down in STAGES:
            blocks = [Block(cin if b == 0 else cout, cout, down and b == 0) for b in range(n)]
            self.add_module(name, nn.Sequential(*blocks))
            cin = cout
        self.fc = nn.Linear(cin, DESCRIPTOR_DIM, bias=False) if self.pixel_input else nn.Linear(cin, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised ``[B, 3, H, W]`` → the pooled ``[B, 256]`` features (layer5's map averaged over space).
        An input side under :data:`~palbench.config.names.DLIB_FACE_MIN_SIZE` raises a one-line ConfigError."""
        if min(x.shape[-2:]) < DLIB_FACE_MIN_SIZE:
            raise ConfigError(f"dlib_face_resnet: a {x.shape[-2]}×{x.shape[-1]} input is too small; the network "
                              f"takes at least {DLIB_FACE_MIN_SIZE}×{DLIB_FACE_MIN_SIZE} px (150: dlib's chip)")
        x = self.maxpool(self.stem(x))
        for name, *_ in STAGES:
            x = getattr(self, name)(x)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pixel_input:
            x = (x - self.mean) / INPUT_SCALE
        return self.fc(self.features(x))


def _load(net: DlibNet, model: DlibFaceNet, path: Path) -> None:
    def fail(msg: str) -> WeightsError:
        return WeightsError(f"{path}: not dlib's face-recognition ResNet ({msg})")

    kinds = [layer.kind for layer in net.layers]
    expected = _expected_kinds()
    if kinds != [k for k in expected if k != "tag"]:
        raise fail(f"layer sequence {kinds[:6]}… does not match anet_type")
    if net.versions != [1 if k == "tag" else 2 for k in reversed(expected)][:-1]:  # less the input's add_layer
        raise fail("tag/skip layout does not match anet_type")
    if net.chip_size != (CHIP_SIZE, CHIP_SIZE):
        raise fail(f"input size {net.chip_size}, expected {CHIP_SIZE}×{CHIP_SIZE}")
    layers = iter(net.layers)

    def conv(m: nn.Conv2d) -> None:
        layer = next(layers)
        f, p = layer.fields, layer.params.reshape(-1)
        shape = tuple(m.weight.shape)
        geometry = (f["stride_y"], f["stride_x"], f["padding_y"], f["padding_x"])
        if f["filters"] != shape or f["biases"] != (1, shape[0], 1, 1) or p.size != m.weight.numel() + shape[0]:
            raise fail(f"conv filters {f['filters']}, expected {shape}")
        if geometry != (*m.stride, *m.padding):
            raise fail(f"conv stride/padding {geometry}, expected {(*m.stride, *m.padding)}")
        n = m.weight.numel()
        m.weight.data.copy_(torch.from_numpy(p[:n].reshape(shape)))
        m.bias.data.copy_(torch.from_numpy(p[n:]))

    def affine(m: Affine) -> None:
        layer = next(layers)
        c = m.weight.numel()
        if layer.fields["gamma"] != (1, c, 1, 1) or layer.fields["mode"] != 0 or layer.params.size != 2 * c:
            raise fail(f"affine {layer.fields['gamma']}, expected {c} channels in conv mode")
        p = torch.from_numpy(layer.params.reshape(-1))
        m.weight.data.copy_(p[:c])
        m.bias.data.copy_(p[c:])

    def pool(kind: str, size: int, stride: int) -> None:
        f = next(layers).fields
        got = (f["nr"], f["nc"], f["stride_y"], f["stride_x"], f["padding_y"], f["padding_x"])
        if got != (size, size, stride, stride, 0, 0):
            raise fail(f"{kind} {got}, expected {(size, size, stride, stride, 0, 0)}")

    def skip() -> None:
        next(layers)

    if model.pixel_input:
        model.mean.copy_(torch.tensor(net.mean_rgb).view(1, 3, 1, 1))
    conv(model.stem.conv), affine(model.stem.bn), skip(), pool("max_pool", 3, 2)
    for name, *_ in STAGES:
        for block in getattr(model, name):
            conv(block.conv1), affine(block.bn1), skip(), conv(block.conv2), affine(block.bn2)
            if isinstance(block.shortcut, nn.AvgPool2d):
                pool("avg_pool", 2, 2)
            skip(), skip()  # add_prev, relu
    pool("avg_pool", 0, 1)  # avg_pool_everything
    fc = next(layers)
    f = fc.fields
    if (f["num_inputs"], f["num_outputs"], f["bias_mode"]) != (FEATURE_DIM, DESCRIPTOR_DIM, 1):
        raise fail(f"fc {f}, expected {FEATURE_DIM} → {DESCRIPTOR_DIM} without bias")
    if fc.params.size != FEATURE_DIM * DESCRIPTOR_DIM:
        raise fail(f"fc has {fc.params.size} parameters")
    if model.pixel_input:  # the backbone's fc is its own K-class head: it keeps its initialisation
        # dlib's fc computes x · W with W [num_inputs, num_outputs]; torch's Linear stores W^T.
        model.fc.weight.data.copy_(torch.from_numpy(fc.params.reshape(f["num_inputs"], f["num_outputs"]).T.copy()))


def load_dlib_weights(model: DlibFaceNet, path: str | Path | None = None) -> DlibNet:
    """Copy the weights of dlib's ``.dat`` (default: face_recognition_models' copy) into ``model`` in place:
    every layer, and ``fc`` only for dlib's descriptor network (a backbone's K-class head keeps its
    initialisation). Returns the file's contents (its ``mean_rgb`` is the input mean the weights expect).

    Raises :class:`~palbench.errors.WeightsError` (one line naming the file) when the file is missing,
    truncated, corrupt or another network.
    """
    path = Path(path) if path is not None else default_model_path()
    net = read_dlib_net(path)
    with torch.no_grad():
        _load(net, model, path)
    return net


def build_dlib_face_resnet(*, num_classes: int, width: float, size: int) -> DlibFaceNet:
    """The registry's builder of ``dlib_face_resnet`` (:mod:`palbench.models.registry`): :class:`DlibFaceNet`
    with a K-class head, randomly initialised (torch's default initialisation of each layer); ``width`` is 1
    (no width knob) and ``size`` unused (the network takes any side of at least 103 px)."""
    return DlibFaceNet(num_classes)


def load_dlib_face_net(path: str | Path | None = None) -> DlibFaceNet:
    """:class:`DlibFaceNet` with the weights of dlib's ``.dat`` file (default: face_recognition_models' copy).

    Raises :class:`~palbench.errors.WeightsError` (one line naming the file) when the file is missing,
    truncated, corrupt or another network.
    """
    model = DlibFaceNet()
    load_dlib_weights(model, path)
    return model.eval()
