"""render_priors against a float64 double loop of eq. 8; jitter_landmarks statistics."""

import math

import numpy as np
import pytest
import torch

from palbench.errors import ConfigError
from palbench.priors import jitter_landmarks, render_priors


def eq8_double_loop(landmarks, image_size, out_size, sigma):
    """Eq. 8 pixel by pixel, landmark by landmark, in float64 (σ in output-map pixels).

    Output pixel (i, j) has its centre at image coordinate ((j+.5)W/w - .5, (i+.5)H/h - .5); the
    distance to a landmark is measured in output-map pixels.
    """
    (H, W), (h, w) = image_size, out_size
    out = np.zeros((len(landmarks), h, w))
    for b, pts in enumerate(landmarks):
        for i in range(h):
            for j in range(w):
                cy = (i + 0.5) * H / h - 0.5
                cx = (j + 0.5) * W / w - 0.5
                total = 0.0
                for x, y in pts:
                    if math.isnan(x) or math.isnan(y):
                        continue
                    d2 = ((cy - y) * h / H) ** 2 + ((cx - x) * w / W) ** 2
                    total += math.exp(-d2 / (2 * sigma**2)) / math.sqrt(2 * math.pi * sigma**2)
                out[b, i, j] = total
    return out


@pytest.mark.parametrize(
    "image_size,out_size,sigma",
    [((16, 16), (16, 16), 1.0), ((32, 24), (8, 6), 0.7), ((20, 20), (14, 14), 3.0), ((28, 28), (7, 7), 2.0)],
)
def test_render_priors_matches_eq8(image_size, out_size, sigma):
    rng = np.random.default_rng(0)
    H, W = image_size
    lm = np.stack([rng.uniform(-2, W + 1, (3, 68)), rng.uniform(-2, H + 1, (3, 68))], axis=-1)
    lm[1, 5] = np.nan  # one missing point is ignored
    got = render_priors(torch.from_numpy(lm), image_size, out_size, sigma, dtype=torch.float64)
    assert got.shape == (3, *out_size) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), eq8_double_loop(lm, image_size, out_size, sigma), rtol=1e-10, atol=1e-12)


def test_sub_pixel_peak_and_identity_mapping():
    # One point at (x=5.25, y=3.0) on a same-size map: the peak is at pixel (3, 5), value 1/sqrt(2πσ²)·e^(-.25²/2σ²).
    lm = torch.full((1, 68, 2), float("nan"), dtype=torch.float64)
    lm[0, 0] = torch.tensor([5.25, 3.0])
    p = render_priors(lm, (10, 12), (10, 12), prior_sigma=1.0, dtype=torch.float64)[0]
    assert divmod(int(p.argmax()), 12) == (3, 5)
    assert p[3, 5].item() == pytest.approx(math.exp(-(0.25**2) / 2) / math.sqrt(2 * math.pi))


def test_sigma_in_image_pixels_scales_to_map():
    rng = np.random.default_rng(1)
    lm = torch.from_numpy(rng.uniform(0, 64, (2, 68, 2)))
    a = render_priors(lm, 64, 16, prior_sigma=8.0, sigma_unit="image", dtype=torch.float64)
    b = render_priors(lm, 64, 16, prior_sigma=2.0, sigma_unit="map", dtype=torch.float64)
    torch.testing.assert_close(a, b)


def test_all_nan_gives_zero_prior_and_numpy_input():
    lm = np.full((2, 68, 2), np.nan, dtype=np.float32)
    lm[1] = 5.0
    p = render_priors(lm, 10, 5, 1.0)
    assert torch.all(p[0] == 0) and p[1].sum() > 0 and torch.isfinite(p).all()


def test_bad_arguments():
    with pytest.raises(ConfigError, match=r"\[B, 68, 2\]"):
        render_priors(torch.zeros(2, 5, 2), 10, 10)
    with pytest.raises(ConfigError, match="sigma"):
        render_priors(torch.zeros(1, 68, 2), 10, 10, prior_sigma=0)


def test_jitter_landmarks_scale_seed_and_nan():
    lm = torch.zeros(2000, 68, 2)
    lm[0] = float("nan")
    g = torch.Generator().manual_seed(3)
    out = jitter_landmarks(lm, 2.0, g, image_size=(112, 448))
    assert torch.isnan(out[0]).all() and torch.isfinite(out[1:]).all()
    d = out[1:]
    # σ is in pixels of a 224 crop: ×2 for x on a 448-wide image, ×0.5 for y on a 112-high one.
    assert d[..., 0].std().item() == pytest.approx(4.0, rel=0.02)
    assert d[..., 1].std().item() == pytest.approx(1.0, rel=0.02)
    again = jitter_landmarks(lm, 2.0, torch.Generator().manual_seed(3), image_size=(112, 448))
    assert torch.equal(torch.nan_to_num(out), torch.nan_to_num(again))
    assert torch.equal(jitter_landmarks(lm[1:], 0.0), lm[1:])


def test_jitter_per_sample_image_size():
    lm = torch.zeros(2, 68, 2)
    sizes = np.array([[224, 224], [448, 112]])
    out = jitter_landmarks(lm, 1.0, torch.Generator().manual_seed(0), image_size=sizes)
    ref = jitter_landmarks(lm, 1.0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out[0], ref[0])
    torch.testing.assert_close(out[1], ref[1] * torch.tensor([0.5, 2.0]))
