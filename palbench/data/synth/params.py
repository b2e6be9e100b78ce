"""What one synthetic image is made of: :class:`SampleParams`, and how it is drawn from a seed.

Rendering (:func:`palbench.data.synth.render.render_sample`) is a pure function of these parameters and the
image size, so an image can be re-rendered at another size or without nuisances (:meth:`SampleParams.clean`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from palbench.data.synth.decoy import Decoy, sample_decoy
from palbench.data.synth.expressions import sample_expression
from palbench.data.synth.face import Identity, sample_identity
from palbench.data.synth.nuisance import Pose, Scene, plain_scene, sample_pose, sample_scene
from palbench.data.synth.stripes import Stripes, sample_stripes

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class SampleParams:
    """Everything that determines one image.

    Attributes:
        label: class index (RAF-DB order).
        intensity: expression intensity in [0, 1] (0 for neutral).
        au: action-unit activations ``[len(AUS)]`` (see :mod:`.expressions`).
        identity: the person.
        pose: in-plane rotation, scale, shift.
        scene: background, lighting, blur, noise, occluder.
        decoy: the class-coded corner square, or ``None``.
        stripes: the class-coded background stripes, or ``None``.
    """

    label: int
    intensity: float
    au: np.ndarray
    identity: Identity
    pose: Pose
    scene: Scene
    decoy: Decoy | None = None
    stripes: Stripes | None = None

    def clean(self, background: tuple[float, float, float] = (128.0, 128.0, 128.0)) -> SampleParams:
        """The same face and expression, frontal and centred, on a flat background, without shortcuts."""
        return replace(self, pose=Pose(), scene=plain_scene(background), decoy=None, stripes=None)


def identity_rng(seed: int, subject: int) -> np.random.Generator:
    """Generator of subject ``subject``'s identity (independent of splits and sample counts)."""
    return np.random.default_rng([seed, 7, subject])


def sample_rngs(seed: int, split: str, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """(face/nuisance generator, shortcut generator) of the ``index``-th image of ``split``."""
    code = SPLIT_CODES[split]
    return np.random.default_rng([seed, code, index, 0]), np.random.default_rng([seed, code, index, 1])


def sample_params(
    rng: np.random.Generator,
    decoy_rng: np.random.Generator,
    label: int,
    identity: Identity,
    split: str = "train",
    *,
    decoy_p: float = 0.0,
    decoy_p_test: float = 1.0,
    decoy_size: float = 0.125,
    decoy_strength: float = 1.0,
    stripes_p: float = 0.0,
    stripes_p_test: float = 0.0,
    stripes_strength: float = 0.5,
    shortcut_test: str = "random",
    occluder_p: float = 0.15,
    low_intensity_share: float = 0.15,
) -> SampleParams:
    """Draw one image's parameters: expression, pose and scene from ``rng``; the decoy, then the stripes, from
    ``decoy_rng`` (each always consumes the same numbers, so shortcut options change no face and no other
    shortcut)."""
    au, intensity = sample_expression(rng, label, low_share=low_intensity_share)
    pose = sample_pose(rng)
    scene = sample_scene(rng, occluder_p)
    decoy = sample_decoy(decoy_rng, label, split, decoy_p, decoy_p_test, decoy_size, decoy_strength, shortcut_test)
    stripes = sample_stripes(decoy_rng, label, split, stripes_p, stripes_p_test, stripes_strength, shortcut_test)
    return SampleParams(label, intensity, au, identity, pose, scene, decoy, stripes)


def example_params(label: int, seed: int = 0, subject: int = 0, index: int = 0, **kw) -> SampleParams:
    """Parameters of one example image (tests, previews): identity ``subject``, image ``index`` of train."""
    rng, drng = sample_rngs(seed, "train", index)
    return sample_params(rng, drng, label, sample_identity(identity_rng(seed, subject)), "train", **kw)
