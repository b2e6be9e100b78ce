"""Joint image + landmark augmentation: landmarks follow the drawn pixels exactly."""

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from palbench.data.dataset import FaceDataset, augment_pair
from palbench.errors import DataError


def dot_image(points, h, w):
    """float [3, h, w] with one bright pixel per integer (x, y) point."""
    img = torch.zeros(3, h, w)
    for x, y in points:
        img[:, int(y), int(x)] = 1.0
    return img


def blob_centroid(channel, centre, radius=3.0):
    """Intensity-weighted centroid (x, y) of the image near ``centre``."""
    h, w = channel.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    near = ((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) <= radius**2
    wgt = channel * near
    return torch.stack([(wgt * xs).sum() / wgt.sum(), (wgt * ys).sum() / wgt.sum()])


@pytest.mark.parametrize("angle,flip,size", [(0.0, True, (40, 52)), (9.0, False, (40, 52)), (-7.5, True, (80, 104)), (4.0, True, (28, 36))])
def test_landmarks_follow_the_pixels(angle, flip, size):
    h, w = 40, 52
    pts = [(12, 10), (30, 25), (40, 15), (20, 30)]
    lm = torch.full((68, 2), float("nan"))
    lm[: len(pts)] = torch.tensor(pts, dtype=torch.float32)
    img, out = augment_pair(dot_image(pts, h, w), lm, angle, flip, size)
    assert img.shape == (3, *size)
    assert torch.isnan(out[len(pts) :]).all()
    for k in range(len(pts)):
        c = blob_centroid(img[0], out[k])
        assert torch.allclose(c, out[k], atol=0.15), (k, c, out[k])


def test_torchvision_keypoint_conventions_pinned():
    """Why augment_pair converts: v2 flips points as W-1-x but rotates/resizes them in edge coordinates."""
    kp = tv_tensors.KeyPoints(torch.tensor([[3.0, 5.0]]), canvas_size=(10, 12))
    assert F.horizontal_flip(kp).tolist() == [[8.0, 5.0]]
    assert F.resize(kp, [20, 24]).tolist() == [[6.0, 10.0]]


def test_off_canvas_points_are_kept():
    lm = torch.full((68, 2), float("nan"))
    lm[0] = torch.tensor([-5.0, 3.0])
    _, out = augment_pair(torch.zeros(3, 10, 10), lm, 0.0, True, 20)
    assert out[0].tolist() == pytest.approx([(10 - 1 + 5 + 0.5) * 2 - 0.5, (3 + 0.5) * 2 - 0.5])  # flip W-1-x, then resize


def test_face_dataset_items_and_determinism(tiny_dataset):
    root, lm = tiny_dataset
    ds = FaceDataset(root, "train", size=16, augment=True, seed=3)
    assert len(ds) == 3
    item = ds[1]
    assert item["image"].shape == (3, 16, 16) and item["label"].item() == 1
    assert not item["valid"] and torch.isnan(item["landmarks"]).all()
    a, b = ds[0], FaceDataset(root, "train", size=16, augment=True, seed=3)[0]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["landmarks"], b["landmarks"])
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["landmarks"], a["landmarks"])
    plain = FaceDataset(root, "test", size=16)[0]
    expect = (torch.from_numpy(lm[4]) + 0.5) * torch.tensor([16 / 32, 16 / 24]) - 0.5
    assert torch.allclose(plain["landmarks"], expect, atol=1e-5)


def test_bad_landmark_set(tiny_dataset):
    with pytest.raises(DataError, match="expected \\(6, 68, 2\\)"):
        FaceDataset(tiny_dataset[0], "train", landmarks=np.zeros((5, 68, 2), np.float32))


def _edges(img):
    """Gradient magnitude of the grey image [H, W] — where the synth face's features are drawn."""
    g = img.float().mean(0)
    gx = torch.zeros_like(g)
    gy = torch.zeros_like(g)
    gx[:, 1:-1] = g[:, 2:] - g[:, :-2]
    gy[1:-1] = g[2:] - g[:-2]
    return (gx**2 + gy**2).sqrt()


def _pearson(a, b):
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


@pytest.mark.parametrize("label,angle,flip", [(3, 9.0, True), (0, -8.0, False), (5, 7.0, True)])
def test_prior_from_moved_landmarks_peaks_on_drawn_features(label, angle, flip):
    """After rotation + flip + resize of a synth face, the prior drawn from the moved landmarks lies on the
    drawn features; the same prior from landmarks moved the wrong way does not."""
    from palbench.data.synth import example_params, render_face
    from palbench.priors import render_priors

    image, lm = render_face(example_params(label, seed=1, subject=2).clean(), 96)
    img = torch.from_numpy(image).permute(2, 0, 1)
    out_img, out_lm = augment_pair(img, torch.from_numpy(lm), angle, flip, 128)
    _, wrong_lm = augment_pair(img, torch.from_numpy(lm), -angle, flip, 128)  # rotated the wrong way
    edges = _edges(out_img)
    right = render_priors(out_lm[None], 128, 128, prior_sigma=1.5)[0]
    wrong = render_priors(wrong_lm[None], 128, 128, prior_sigma=1.5)[0]
    # compare inside the face (the rotation's black corners add edges far from any landmark)
    (x0, y0), (x1, y1) = (out_lm.min(0).values - 6).int().tolist(), (out_lm.max(0).values + 6).int().tolist()
    face = (slice(max(y0, 0), y1), slice(max(x0, 0), x1))
    r_right, r_wrong = _pearson(right[face], edges[face]), _pearson(wrong[face], edges[face])
    assert r_right > 0.5 and r_right > r_wrong + 0.15, (r_right, r_wrong)
    # and the prior's hottest pixels sit on strong edges
    top = right.flatten().topk(50).indices
    assert edges.flatten()[top].mean() > 3 * edges.mean()


def test_max_rotation_zero_gives_flips_only_and_decodes_once(tiny_dataset):
    """``max_rotation = 0`` (the built-in pretraining): each image is itself or its mirror image; images are
    read from the dataset object's decoded store when there (a second epoch or seed reads no file)."""
    from palbench.config import TrainConfig
    from palbench.data.canonical import read_dataset

    root, _ = tiny_dataset
    data = read_dataset(root)
    ramp = torch.arange(32, dtype=torch.uint8).mul(8).expand(3, 24, 32).contiguous()  # not mirror-symmetric
    plain = FaceDataset(data, "train", size=32, augment=False)
    for i in plain.indices:
        data.decoded[int(i)] = ramp  # the dataset reads the decoded images, not the (flat) files
    plain_items = [plain[k]["image"] for k in range(len(plain))]
    flips = FaceDataset(data, "train", size=32, augment=True, max_rotation=0.0, seed=3)
    mirrored = 0
    for epoch in range(4):
        flips.set_epoch(epoch)
        for k in range(len(flips)):
            a, b = plain_items[k], flips[k]["image"]
            assert torch.equal(a, b) or torch.equal(a.flip(-1), b)
            mirrored += not torch.equal(a, b)
    assert 0 < mirrored < 4 * len(flips)
    assert len(data.decoded) == len(flips)  # no other file was decoded
    with pytest.raises(Exception, match="max_rotation"):
        TrainConfig.from_dict({"data": "-", "max_rotation": -1})
