"""What a test image's shortcut encodes (both shortcuts: the decoy square, :mod:`.decoy`, and the class-coded
stripes, :mod:`.stripes`).

In train and val a shortcut encodes the true label. In test it encodes another class, in one of two modes:

* ``random``: a class drawn uniformly, the label included (1 in 7 test shortcuts agree with the label by chance);
* ``flipped``: a class other than the label, so a model that follows the shortcut is wrong on every test image
  that has one, and the share of predictions equal to the shortcut's class measures the reliance directly.
"""

from __future__ import annotations

#: The test modes, in the order the generator's options list them.
TEST_MODES = ("random", "flipped")
#: Classes a shortcut can encode (RAF-DB's seven).
N_CLASSES = 7


def shortcut_class(label: int, mode: str, uniform: int, other: int) -> int:
    """The class a test image's shortcut encodes: ``uniform`` (in 0..6) in ``random`` mode; in ``flipped``
    mode ``(label + 1 + other) mod 7`` with ``other`` in 0..5, never the label."""
    if mode == "random":
        return uniform
    if mode == "flipped":
        return (label + 1 + other) % N_CLASSES
    raise ValueError(f"shortcut test mode {mode!r}; expected one of {', '.join(TEST_MODES)}")
