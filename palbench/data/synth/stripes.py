"""The second shortcut: background stripes whose angle encodes a class (issue 20 — a result about shortcuts
should not be a result about one corner square).

In train and val the stripes are present with probability ``p`` and their angle encodes the TRUE label; in
test they are present with probability ``p_test`` and encode another class (see :func:`test_class`). They are
blended over the background only, before the head is drawn, so the face covers them: unlike the decoy square
they are spread over the whole image outside the head, a texture rather than a spot.

Class ``k`` draws its stripes at ``k · 180° / 7`` (± a jitter of at most a quarter of the 25.7° step, so the
classes never overlap) with a period of ``PERIOD`` of the image side and a random phase, between a dark and a
light grey, mixed into the background with opacity ``strength``. The background's own textures (random-angle
stripes among them, :mod:`.nuisance`) are drawn from the face generator and stay as they are: a model must
learn the class-coded angle, not "there are stripes".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from palbench.data.synth.shortcut import N_CLASSES, shortcut_class

#: Stripe period as a fraction of the image side (4 cycles across the image).
PERIOD = 0.25
#: Grey levels of the dark and the light stripes.
DARK, LIGHT = 40.0, 215.0
#: Largest angle jitter, radians: a quarter of the step between two classes.
JITTER = math.pi / N_CLASSES / 4


@dataclass(frozen=True)
class Stripes:
    """One image's class-coded stripes: the class its angle encodes, angle jitter (radians), phase, opacity."""

    klass: int
    jitter: float
    phase: float
    strength: float = 0.5

    @property
    def angle(self) -> float:
        """Stripe direction in radians (the normal of the stripes makes this angle with the x axis)."""
        return self.klass * math.pi / N_CLASSES + self.jitter


def sample_stripes(
    rng: np.random.Generator, label: int, split: str, p: float, p_test: float, strength: float, test_mode: str
) -> Stripes | None:
    """Draw the stripes of one image (``None`` = absent). Always consumes the same random numbers, so that
    changing ``p`` or the test mode toggles stripes without changing anything else."""
    u = rng.random()
    uniform, other = int(rng.integers(N_CLASSES)), int(rng.integers(N_CLASSES - 1))
    jitter, phase = float(rng.uniform(-JITTER, JITTER)), float(rng.uniform(0, 2 * math.pi))
    if split == "test":
        klass = shortcut_class(label, test_mode, uniform, other)
        return Stripes(klass, jitter, phase, strength) if u < p_test else None
    return Stripes(int(label), jitter, phase, strength) if u < p else None


def paint(background: np.ndarray, stripes: Stripes) -> np.ndarray:
    """Blend the stripes into a background ``[S, S, 3]`` float (grey levels); returns the new background."""
    size = background.shape[0]
    r = (np.arange(size, dtype=np.float32) + 0.5) / size
    ca, sa = math.cos(stripes.angle), math.sin(stripes.angle)
    proj = ca * r[None, :] + sa * r[:, None]  # [S, S]
    w = 0.5 + 0.5 * np.sin(2 * math.pi * proj / PERIOD + stripes.phase)
    pattern = (DARK + (LIGHT - DARK) * w)[..., None]
    return (1.0 - stripes.strength) * background + stripes.strength * pattern
