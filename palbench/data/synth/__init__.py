"""``palbench synth``: the built-in benchmark — procedurally rendered faces with exact iBUG-68 landmarks,
seven expressions made of action-unit-like landmark deformations, class-independent nuisances, and a
class-coded decoy square outside the face (correlated with the label in train/val, random in test).

Modules: :mod:`.face` (identity and landmark geometry), :mod:`.expressions` (action units per class),
:mod:`.shapes` (features as affine functions of the landmarks), :mod:`.nuisance` (pose, background, lighting,
blur, noise, occluders), :mod:`.decoy`, :mod:`.params` (what one image is made of), :mod:`.render`
(anti-aliased rasterisation), :mod:`.generator` (the dataset on disk), :mod:`.preview` (the docs figure).
"""

from palbench.data.synth.decoy import PALETTE, decoy_masks
from palbench.data.synth.generator import DEFAULTS, GENERATOR_VERSION, generate
from palbench.data.synth.params import SampleParams, example_params, sample_params
from palbench.data.synth.render import render_face, render_sample

__all__ = [
    "DEFAULTS",
    "GENERATOR_VERSION",
    "PALETTE",
    "SampleParams",
    "decoy_masks",
    "example_params",
    "generate",
    "render_face",
    "render_sample",
    "sample_params",
]
