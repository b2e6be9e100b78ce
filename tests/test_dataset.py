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
