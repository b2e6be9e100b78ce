"""Attributions (eq. 2-3) against captum, and the PAL term's parameter gradients against float64 finite
differences: which layers the PAL term reaches, with and without create_graph."""

import pytest
import torch
from torch import nn

from palbench.attribution import integrated_gradients, layer_attribution
from palbench.errors import ConfigError
from palbench.loss import pal_loss


class Tiny(nn.Module):
    """Conv net split at the PAL layer: ``below`` gives the features, ``above`` is piecewise linear
    (max-pool, ReLU, eval-mode BatchNorm, Linear)."""

    def __init__(self):
        super().__init__()
        self.below = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU())
        self.above = nn.Sequential(
            nn.MaxPool2d(2), nn.Conv2d(6, 5, 3, padding=1), nn.BatchNorm2d(5), nn.ReLU(), nn.Flatten(), nn.Linear(80, 3)
        )

    def forward(self, x):
        features = self.below(x)
        return self.above(features), features


def tiny_setup(seed=0):
    torch.manual_seed(seed)
    model = Tiny().double().eval()
    with torch.no_grad():  # non-trivial BN statistics
        model.above[2].running_mean.uniform_(-0.2, 0.2)
        model.above[2].running_var.uniform_(0.5, 1.5)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    prior = torch.rand(4, 8, 8, dtype=torch.float64)
    return model, x, prior


def pal_term(model, x, prior, method, create_graph=True):
    logits, features = model(x)
    return pal_loss(layer_attribution(logits, features, method, create_graph), prior, "mean", 0.5)


def finite_difference(model, x, prior, method, param, index, eps=1e-6):
    old = param[index].item()
    values = []
    for value in (old + eps, old - eps, old):
        with torch.no_grad():
            param[index] = value
        values.append(pal_term(model, x, prior, method).item())
    return (values[0] - values[1]) / (2 * eps)


def sample_indices(param, n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    flat = torch.randperm(param.numel(), generator=g)[:n]
    return [tuple(int(v) for v in torch.unravel_index(i, param.shape)) for i in flat]


@pytest.mark.parametrize("method", ["grad", "grad_input"])
def test_pal_gradients_match_float64_finite_differences(method):
    model, x, prior = tiny_setup()
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(pal_term(model, x, prior, method), list(params.values()), allow_unused=True)
    auto = {n: torch.zeros_like(p) if g is None else g for (n, p), g in zip(params.items(), grads)}
    for name, p in params.items():
        for idx in sample_indices(p):
            fd = finite_difference(model, x, prior, method, p, idx)
            assert auto[name][idx].item() == pytest.approx(fd, rel=1e-5, abs=1e-9), (name, idx)


def grads_by_side(method, create_graph=True):
    model, x, prior = tiny_setup(1)
    loss = pal_term(model, x, prior, method, create_graph)
    below, above = list(model.below.parameters()), list(model.above.parameters())
    if not loss.requires_grad:
        return None, None
    g = torch.autograd.grad(loss, below + above, allow_unused=True)
    norm = lambda gs: sum(0.0 if t is None else t.abs().sum().item() for t in gs)  # noqa: E731
    return norm(g[: len(below)]), norm(g[len(below) :])


def test_grad_input_reaches_layers_below_and_above():
    below, above = grads_by_side("grad_input")
    assert below > 1e-6 and above > 1e-6


def test_grad_reaches_only_layers_above_in_piecewise_linear_head():
    below, above = grads_by_side("grad")
    assert above > 1e-6
    assert below == 0.0  # the Grad map is piecewise constant in the layers below
    # and the finite differences agree: nudging a weight below leaves the Grad PAL term unchanged
    model, x, prior = tiny_setup(1)
    w = model.below[0].weight
    for idx in sample_indices(w):
        assert finite_difference(model, x, prior, "grad", w, idx) == pytest.approx(0.0, abs=1e-8)


def test_without_create_graph_grad_gives_no_pal_gradient():
    """The bug public reproductions have: no create_graph → the Grad PAL term is a constant."""
    model, x, prior = tiny_setup(2)
    logits, features = model(x)
    attribution = layer_attribution(logits, features, "grad", create_graph=False)
    loss = pal_loss(attribution, prior)
    assert not attribution.requires_grad and not loss.requires_grad
    # CE + λ·PAL trains exactly like CE alone
    y = torch.tensor([0, 1, 2, 0])
    ce = nn.functional.cross_entropy(logits, y)
    g_ce = torch.autograd.grad(ce, list(model.parameters()), retain_graph=True)
    g_total = torch.autograd.grad(ce + 10.0 * loss, list(model.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(g_ce, g_total))
    # whereas with create_graph=True the same term changes the gradient of the layers above
    assert grads_by_side("grad", create_graph=True)[1] > 1e-6


def test_without_create_graph_grad_input_misses_second_order_path():
    model, x, prior = tiny_setup(3)
    logits, features = model(x)
    loss = pal_loss(layer_attribution(logits, features, "grad_input", create_graph=False), prior)
    g = torch.autograd.grad(loss, list(model.above.parameters()), allow_unused=True)
    assert all(t is None or torch.all(t == 0) for t in g)


def test_unknown_method_and_detached_features():
    model, x, _ = tiny_setup()
    logits, features = model(x)
    with pytest.raises(ConfigError, match="unknown attribution method"):
        layer_attribution(logits, features, "saliency")
    with pytest.raises(ConfigError, match="not part of the autograd graph"):
        layer_attribution(logits, features.detach())


def test_integrated_gradients_completeness_and_differentiable():
    """IG at a layer sums to head(f) - head(0) as steps grow (completeness), and is differentiable."""
    model, x, prior = tiny_setup(4)
    logits, features = model(x)
    ig = integrated_gradients(model.above, features, steps=256)
    gap = model.above(features).sum(1) - model.above(torch.zeros_like(features)).sum(1)
    torch.testing.assert_close(ig.sum(dim=(1, 2, 3)), gap, rtol=2e-2, atol=2e-2)
    loss = pal_loss(integrated_gradients(model.above, features, steps=4), prior)
    g = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
    assert sum(0 if t is None else t.abs().sum().item() for t in g) > 0
