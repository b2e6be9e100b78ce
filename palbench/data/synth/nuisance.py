"""Nuisances that do not depend on the class: pose, background texture, lighting, blur, noise, occluders.

Everything is drawn as a few numbers (:func:`sample_pose`, :func:`sample_scene`) and rendered later at any
image size, so a sample looks the same at 64 and 224 pixels. Background colours are unsaturated (HSV
saturation ≤ 0.35) so that they never look like the saturated decoy patches (:mod:`.decoy`).
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

#: Face units → pixels: the face unit is this fraction of the image size at scale 1.
BASE_SCALE = 0.25
#: Image position (fractions of the size) of the face origin at zero shift.
BASE_CENTRE = (0.5, 0.54)


@dataclass(frozen=True)
class Pose:
    """Similarity transform from face units to pixels: rotation (degrees, positive = counter-clockwise on
    the image), scale (× ``BASE_SCALE`` · size pixels per face unit), shift (fractions of the size)."""

    angle: float = 0.0
    scale: float = 1.0
    dx: float = 0.0
    dy: float = 0.0

    def matrix(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """``(A [2,2], t [2])`` with pixel = A @ face + t (pixel centres at integers)."""
        a = np.deg2rad(self.angle)
        s = self.scale * BASE_SCALE * size
        rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])  # y down: ccw on screen
        t = np.array([(BASE_CENTRE[0] + self.dx) * size - 0.5, (BASE_CENTRE[1] + self.dy) * size - 0.5])
        return s * rot, t


@dataclass(frozen=True)
class Occluder:
    """A flat patch over part of the face, in face units (moves with the pose and the expression)."""

    anchor: int  # the landmark it is centred near (17-67: brows, nose, eyes, mouth)
    offset: tuple[float, float]  # centre = landmarks[anchor] + offset
    half: tuple[float, float]
    angle: float  # radians, in face coordinates
    ellipse: bool
    colour: tuple[float, float, float]


@dataclass(frozen=True)
class Scene:
    """Background, lighting, camera blur and noise of one image, plus an optional occluder."""

    bg_kind: int = 0  # 0 flat/gradient, 1 smooth noise, 2 stripes, 3 tiles
    bg_colours: np.ndarray = field(default_factory=lambda: np.full((2, 3), 128.0))
    bg_grid: np.ndarray | None = None  # [g, g] in [0, 1] for kinds 1 and 3: mixing weight of the two colours
    bg_freq: float = 0.0  # stripes: cycles per image
    bg_angle: float = 0.0
    bg_phase: float = 0.0
    light_angle: float = 0.0
    light: float = 0.0  # relative brightness change from one side of the image to the other
    gain: float = 1.0
    blur: float = 0.0  # Gaussian sigma in pixels of a 64-pixel image (scaled with the size)
    noise: float = 0.0  # Gaussian noise sigma in grey levels
    noise_seed: int = 0  # picks the noise window in a fixed bank, so rendering is a pure function of the scene
    occluder: Occluder | None = None


def plain_scene(colour: tuple[float, float, float] = (128.0, 128.0, 128.0)) -> Scene:
    """A flat background of ``colour``, no lighting, blur, noise or occluder (tests, previews)."""
    return Scene(bg_colours=np.array([colour, colour], float))


def _unsaturated(rng: np.random.Generator) -> np.ndarray:
    rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.35), rng.uniform(0.2, 0.95))
    return np.array(rgb) * 255.0


def sample_pose(rng: np.random.Generator) -> Pose:
    """In-plane rotation ±12°, scale ×0.9–1.1, shift ±4% of the size."""
    return Pose(
        angle=rng.uniform(-12.0, 12.0),
        scale=rng.uniform(0.9, 1.1),
        dx=rng.uniform(-0.04, 0.04),
        dy=rng.uniform(-0.04, 0.04),
    )


def sample_scene(rng: np.random.Generator, occluder_p: float) -> Scene:
    """Draw a scene; an occluder (probability ``occluder_p``) is centred near a random face landmark."""
    kind = int(rng.integers(4))
    colours = np.stack([_unsaturated(rng), _unsaturated(rng)])
    g = int(rng.integers(3, 9))
    grid = rng.random((g, g)) if kind in (1, 3) else None
    occ = None
    if rng.random() < occluder_p:
        anchor, offset = int(rng.integers(17, 68)), rng.normal(0.0, 0.1, 2)
        occ = Occluder(
            anchor=anchor,
            offset=(float(offset[0]), float(offset[1])),
            half=(float(rng.uniform(0.15, 0.4)), float(rng.uniform(0.1, 0.3))),
            angle=float(rng.uniform(0, np.pi)),
            ellipse=bool(rng.random() < 0.5),
            colour=tuple(float(v) for v in _unsaturated(rng)),
        )
    return Scene(
        bg_kind=kind,
        bg_colours=colours,
        bg_grid=grid,
        bg_freq=float(rng.uniform(2.0, 9.0)),
        bg_angle=float(rng.uniform(0, np.pi)),
        bg_phase=float(rng.uniform(0, 2 * np.pi)),
        light_angle=float(rng.uniform(0, 2 * np.pi)),
        light=float(rng.uniform(0.0, 0.6)),
        gain=float(rng.uniform(0.8, 1.15)),
        blur=float(rng.uniform(0.0, 0.9)) if rng.random() < 0.6 else 0.0,
        noise=float(rng.uniform(0.0, 8.0)),
        noise_seed=int(rng.integers(2**63)),
        occluder=occ,
    )


def _upsample(grid: np.ndarray, size: int, resample: int) -> np.ndarray:
    """``[g, g]`` in [0, 1] → ``[size, size, 1]`` float32 in [0, 1]."""
    img = Image.fromarray(np.round(grid * 255).astype(np.uint8)).resize((size, size), resample)
    return np.asarray(img, np.float32)[..., None] / 255.0


def background(scene: Scene, size: int) -> np.ndarray:
    """Background ``[size, size, 3]`` float32 in grey levels (0–255)."""
    c0, c1 = scene.bg_colours.astype(np.float32)
    if scene.bg_kind in (1, 3):
        resample = Image.Resampling.BICUBIC if scene.bg_kind == 1 else Image.Resampling.NEAREST
        w = _upsample(scene.bg_grid, size, resample)
        if scene.bg_kind == 1:
            w = 0.25 + 0.5 * w  # softer
        return c0 + (c1 - c0) * w
    r = (np.arange(size, dtype=np.float32) + 0.5) / size
    ca, sa = math.cos(scene.bg_angle), math.sin(scene.bg_angle)  # Python floats keep the maps float32
    proj = ca * r[None, :] + sa * r[:, None]  # [size, size]
    if scene.bg_kind == 2:
        w = 0.5 + 0.5 * np.sin(2 * math.pi * scene.bg_freq * proj + scene.bg_phase)
    else:
        w = proj / max(abs(ca) + abs(sa), 1e-6)
    return c0 + (c1 - c0) * w[..., None]


def light_field(scene: Scene, size: int) -> np.ndarray:
    """Multiplicative lighting ``[size, size, 1]``: a linear gradient of relative strength ``light``."""
    r = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    g = math.cos(scene.light_angle) * r[None, :] + math.sin(scene.light_angle) * r[:, None]
    return (scene.gain * (1.0 + scene.light * g))[..., None]


@lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """A fixed bank of 2^21 standard normal float32 values; each image reads a window at its own offset
    (drawing fresh normals per image costs more than rendering the face)."""
    return np.random.default_rng(20220821).standard_normal(1 << 21, dtype=np.float32)


def finish(img: np.ndarray, scene: Scene, size: int) -> np.ndarray:
    """Camera blur and noise on a float image ``[H, W, 3]``; returns uint8 ``[H, W, 3]``."""
    if scene.blur > 0:
        sigma = scene.blur * size / 64.0
        img = gaussian_filter(img, sigma=(sigma, sigma, 0), mode="nearest", truncate=2.5)
    if scene.noise > 0:
        n, bank = img.size, _noise_bank()
        if n < len(bank) // 2:
            start = scene.noise_seed % (len(bank) - n)
            z = bank[start : start + n]
        else:  # very large images: fresh normals
            z = np.random.default_rng(scene.noise_seed).standard_normal(n, dtype=np.float32)
        img = img + scene.noise * z.reshape(img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
