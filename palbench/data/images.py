"""Image decoding to 8-bit RGB, the one conversion every reader uses (importers, landmarks, training).

PIL's ``Image.convert("RGB")`` clips high-bit-depth images: a 16-bit TIFF or PNG (modes ``I;16*``, ``I``)
becomes almost all white, since every value above 255 saturates. :func:`to_rgb` rescales them instead:
16-bit data by the full 16-bit range (value / 257), so that the same file gives the same pixels on every
machine and a darker-than-white 12-bit capture stays as dark as it was recorded (no per-image stretching,
which would change the brightness a model sees from one image to the next). Float images (``F``) in
[0, 1] are scaled by 255. Every other mode (L, P, LA, RGBA, CMYK, ...) goes through PIL's own conversion.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: PIL modes holding more than 8 bits per sample.
HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def to_rgb(im: Image.Image) -> Image.Image:
    """``im`` as an 8-bit RGB image (see the module docstring for high-bit-depth modes)."""
    if im.mode not in HIGH_BIT_MODES:
        return im if im.mode == "RGB" else im.convert("RGB")
    values = np.asarray(im, dtype=np.float64)
    if im.mode == "F" and np.nanmax(values, initial=0.0) <= 1.0:
        values = values * 255.0
    elif np.nanmax(values, initial=0.0) > 255:
        values = values / 257.0  # 65535 -> 255
    gray = np.clip(np.nan_to_num(np.rint(values)), 0, 255).astype(np.uint8)
    return Image.fromarray(gray, mode="L").convert("RGB")
