"""Torch ``Dataset`` over a canonical dataset: image, label, landmarks, validity, with the paper's
augmentation (§IV-B: random rotation in [-10°, 10°], then random horizontal flip, then resize).

The image and its landmarks move together through torchvision.transforms.v2 (``tv_tensors.KeyPoints``).
Two conventions had to be reconciled (pinned by ``tests/test_dataset.py``): palbench's landmarks have pixel
centres at integers, while torchvision 0.29 rotates and resizes KeyPoints in *edge* coordinates (pixel ``i``
spans ``[i, i+1)``: rotation about ``(W/2, H/2)``, resize ``x·s``) but flips them as ``W - 1 - x`` (centre
coordinates). So landmarks enter v2 shifted by +0.5 for rotation and resize, and the flip of the points is
done here as ``W - x`` in edge coordinates, which is exactly where torchvision's image flip moves the pixel.
Off-canvas points are kept (never clamped); NaN rows stay NaN. The prior is a sum over points, so flipping
needs no left/right index swap.

Augmentation draws from a generator seeded by ``(seed, epoch, index)``: the same sample gets the same
transform whatever the worker count or resume point.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from palbench.data.canonical import CanonicalDataset, read_dataset
from palbench.data.images import to_rgb
from palbench.errors import DataError
from palbench.models import IMAGENET_NORMALIZATION

#: Decoded images are kept in memory (``CanonicalDataset.decoded``) while the whole dataset would fit in this
#: many bytes: the built-in benchmark (2,450 images of 48 px: 17 MB) decodes each PNG once per process
#: instead of once per epoch and seed; a 224-px RAF-DB (15k images, 2.3 GB) is read from disk each time.
CACHE_BYTES = 1 << 30


def augment_pair(
    image: torch.Tensor, landmarks: torch.Tensor, angle: float, flip: bool, size: int | Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate by ``angle`` degrees (counter-clockwise, about the image centre), flip if asked, resize.

    Args:
        image: uint8 or float ``[3, H, W]``.
        landmarks: ``[68, 2]`` (x, y), pixel centres at integers; NaN rows allowed.
        size: output ``(h, w)`` or one int.

    Returns:
        ``(image [3, h, w], landmarks [68, 2])`` in the output image's pixel-centre coordinates.
    """
    h, w = image.shape[-2:]
    size = (size, size) if isinstance(size, int) else tuple(size)
    img = tv_tensors.Image(image)
    kp = tv_tensors.KeyPoints(landmarks.float() + 0.5, canvas_size=(h, w))  # edge coordinates
    if angle:
        img = F.rotate(img, angle, interpolation=InterpolationMode.BILINEAR)
        kp = F.rotate(kp, angle)
    if flip:
        img = F.horizontal_flip(img)
        kp = tv_tensors.wrap(torch.stack([w - kp[:, 0], kp[:, 1]], dim=1), like=kp)
    img = F.resize(img, list(size), antialias=True)
    kp = F.resize(kp, list(size))
    return img.as_subclass(torch.Tensor), kp.as_subclass(torch.Tensor) - 0.5


class FaceDataset(Dataset):
    """Samples of one split of a canonical dataset.

    Args:
        data: dataset folder or a :class:`CanonicalDataset`.
        split: ``train``, ``val`` or ``test``.
        size: model input size (square).
        landmarks: ``[N, 68, 2]`` landmark set to use (e.g. a jittered set from the priors stage);
            default: the dataset's ``landmarks.npy``; all NaN if neither exists.
        augment: apply the paper's rotation + flip (training only).
        normalization: ``{"mean", "std"}`` for images scaled to [0, 1] (the model's
            ``input_normalization``); ImageNet's by default.
        seed: augmentation seed.
        max_rotation: rotation range in degrees (paper: 10).

    Each item is a dict: ``image`` float ``[3, size, size]``, ``label`` int64, ``landmarks`` float32
    ``[68, 2]`` in input pixels, ``valid`` bool (landmarks present), ``index`` (row in samples.csv).
    """

    def __init__(
        self,
        data: str | Path | CanonicalDataset,
        split: str,
        size: int = 224,
        landmarks: np.ndarray | None = None,
        augment: bool = False,
        normalization: dict | None = None,
        seed: int = 0,
        max_rotation: float = 10.0,
    ) -> None:
        self.data = data if isinstance(data, CanonicalDataset) else read_dataset(data)
        self.indices = self.data.split_indices(split)
        if len(self.indices) == 0:
            raise DataError(f"{self.data.root / 'samples.csv'}: split {split!r} is empty")
        if landmarks is None:
            landmarks = self.data.landmarks
        if landmarks is None:
            landmarks = np.full((len(self.data), 68, 2), np.nan, np.float32)
        if landmarks.shape != (len(self.data), 68, 2):
            raise DataError(f"landmark set has shape {landmarks.shape}; expected ({len(self.data)}, 68, 2)")
        self.landmarks = torch.from_numpy(np.ascontiguousarray(landmarks, dtype=np.float32))
        self.size, self.augment, self.seed, self.max_rotation = size, augment, seed, max_rotation
        norm = normalization or IMAGENET_NORMALIZATION
        self.mean = torch.tensor(norm["mean"], dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(norm["std"], dtype=torch.float32).view(3, 1, 1)
        self.labels = torch.from_numpy(self.data.samples["label"].to_numpy()[self.indices])
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draw of ``epoch`` (call before each epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def read_image(self, i: int) -> torch.Tensor:
        """uint8 ``[3, H, W]`` of samples.csv row ``i`` (never modified in place: it may be the cached one)."""
        cached = self.data.decoded.get(i)
        if cached is not None:
            return cached
        # PIL, not torchvision.io: torchvision 0.29 deprecates its image decoders.
        path = self.data.image_path(i)
        try:
            with Image.open(path) as im:
                array = np.asarray(to_rgb(im))
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"{path}: cannot decode image ({str(e).splitlines()[0]})") from None
        image = torch.from_numpy(array.copy()).permute(2, 0, 1)
        if array.nbytes * len(self.data) <= CACHE_BYTES:
            self.data.decoded[i] = image
        return image

    def __getitem__(self, k: int) -> dict:
        i = int(self.indices[k])
        image, lm = self.read_image(i), self.landmarks[i]
        angle, flip = 0.0, False
        if self.augment:
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 10_000_019 + i)
            angle = float((torch.rand((), generator=g) * 2 - 1) * self.max_rotation)
            flip = bool(torch.rand((), generator=g) < 0.5)
        image, lm = augment_pair(image, lm, angle, flip, self.size)
        image = (image.float() / 255 - self.mean) / self.std
        return {
            "image": image,
            "label": self.labels[k],
            "landmarks": lm.float(),
            "valid": bool(torch.isfinite(lm).all()),
            "index": i,
        }
