"""pal_loss against a plain per-sample Pearson correlation (numpy), every strategy, several c1."""

import numpy as np
import pytest
import torch

from palbench.errors import ConfigError
from palbench.loss import constrained_channels, pal_loss


def pearson_reference(attr, prior, strategy, c1):
    """-mean Pearson r with numpy.corrcoef, over samples (and channels for 'all')."""
    b, c = attr.shape[:2]
    c1n = max(1, int(round(c1 * c)))
    rs = []
    for s in range(b):
        maps = [attr[s, :c1n].mean(0)] if strategy == "mean" else list(attr[s, :c1n])
        for m in maps:
            rs.append(np.corrcoef(m.ravel(), prior[s].ravel())[0, 1])
    return -float(np.mean(rs))


@pytest.mark.parametrize("strategy", ["mean", "all"])
@pytest.mark.parametrize("c1", [0.25, 0.5, 0.75, 1.0, 0.1])
def test_pal_loss_is_minus_mean_pearson(strategy, c1):
    rng = np.random.default_rng(7)
    attr = rng.normal(size=(5, 8, 6, 7)) ** 2
    prior = rng.uniform(size=(5, 6, 7))
    got = pal_loss(torch.from_numpy(attr), torch.from_numpy(prior), strategy, c1)
    assert got.item() == pytest.approx(pearson_reference(attr, prior, strategy, c1), abs=1e-6)
    assert -1 <= got.item() <= 1


def test_bounds_reached():
    prior = torch.rand(3, 5, 5)
    attr = (2 * prior + 1).unsqueeze(1).repeat(1, 4, 1, 1)
    assert pal_loss(attr, prior, "all", 1.0).item() == pytest.approx(-1.0, abs=1e-6)
    assert pal_loss(-attr, prior, "mean", 1.0).item() == pytest.approx(1.0, abs=1e-6)


def test_constrained_channels_rounding_and_range():
    assert [constrained_channels(512, c) for c in (0.25, 0.5, 0.75, 1.0)] == [128, 256, 384, 512]
    assert constrained_channels(3, 0.1) == 1
    for bad in (0, -0.5, 1.5, float("nan")):
        with pytest.raises(ConfigError, match=r"c1 must be in \(0, 1\]"):
            pal_loss(torch.rand(1, 4, 3, 3), torch.rand(1, 3, 3), "mean", bad)


def test_degenerate_samples_are_masked_and_finite():
    rng = np.random.default_rng(0)
    attr = torch.from_numpy(rng.uniform(size=(4, 2, 5, 5))).requires_grad_(True)
    prior = torch.from_numpy(rng.uniform(size=(4, 5, 5)))
    prior[1] = 0.0  # no face
    with torch.no_grad():
        attr[2] = 3.0  # constant attribution map
    loss = pal_loss(attr, prior, "mean", 1.0)
    keep = [0, 3]
    expect = pearson_reference(attr.detach().numpy()[keep], prior.numpy()[keep], "mean", 1.0)
    assert loss.item() == pytest.approx(expect, abs=1e-6)
    loss.backward()
    assert torch.isfinite(attr.grad).all()
    assert torch.all(attr.grad[1] == 0) and torch.all(attr.grad[2] == 0)


@pytest.mark.parametrize("strategy", ["mean", "all"])
def test_all_masked_is_zero_finite_and_connected(strategy):
    attr = torch.ones(2, 3, 4, 4, requires_grad=True)
    loss = pal_loss(attr, torch.zeros(2, 4, 4), strategy, 0.5)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(attr.grad).all()


def test_half_precision_input_standardised_in_float32():
    attr = torch.rand(2, 4, 7, 7).half()
    prior = torch.rand(2, 7, 7).half()
    loss = pal_loss(attr, prior)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_bad_strategy_and_shape():
    with pytest.raises(ConfigError, match="unknown channel strategy"):
        pal_loss(torch.rand(1, 2, 3, 3), torch.rand(1, 3, 3), "median")
    with pytest.raises(ConfigError, match="prior has shape"):
        pal_loss(torch.rand(1, 2, 3, 3), torch.rand(1, 4, 4))
