"""palbench's attributions against captum (independent oracle) on narrow VGG16 and ResNet50 layers."""

import pytest
import torch
from captum.attr import IntegratedGradients, LayerGradCam, LayerGradientXActivation
from torch import nn

from palbench.attribution import integrated_gradients, layer_attribution
from palbench.models import build_model, capture, resolve_layer

CASES = [("vgg16", "conv10"), ("vgg16", "conv13"), ("vgg16_bn", "conv7"), ("resnet50", "layer3.1"), ("resnet50", "layer4")]


def setup(arch, seed=0):
    torch.manual_seed(seed)
    model = build_model(arch, width=0.125).eval()
    x = torch.randn(3, 3, 64, 64)
    return model, x


def ours(model, x, layer, method):
    with capture(model, layer) as cap:
        logits = model(x)
    return layer_attribution(logits, cap.features, method), cap.features


def sum_of_logits(model):
    return lambda inp: model(inp).sum(dim=1)  # Σ_o f_o, one scalar per sample


@pytest.mark.parametrize("arch,layer", CASES)
def test_grad_input_equals_captum_gradient_x_activation(arch, layer):
    model, x = setup(arch)
    got, features = ours(model, x, layer, "grad_input")
    assert (features >= 0).all()  # post-ReLU: |g|·f = |g·f|
    ref = LayerGradientXActivation(sum_of_logits(model), resolve_layer(model, layer)).attribute(x)
    torch.testing.assert_close(got, ref.abs(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("arch,layer", CASES)
def test_grad_equals_captum_layer_gradient_abs(arch, layer):
    model, x = setup(arch, 1)
    got, _ = ours(model, x, layer, "grad")
    lg = LayerGradientXActivation(sum_of_logits(model), resolve_layer(model, layer), multiply_by_inputs=False)
    torch.testing.assert_close(got, lg.attribute(x).abs(), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("arch,layer", [("vgg16", "conv13"), ("resnet50", "layer4")])
def test_gradcam_channel_sum_equals_captum_layer_gradcam(arch, layer):
    model, x = setup(arch, 2)
    got, _ = ours(model, x, layer, "gradcam")
    ref = LayerGradCam(sum_of_logits(model), resolve_layer(model, layer)).attribute(x, relu_attributions=False)
    torch.testing.assert_close(got.sum(dim=1, keepdim=True), ref, rtol=1e-4, atol=1e-6)


def test_integrated_gradients_equals_captum_on_vgg_head():
    model, x = setup("vgg16", 3)
    features_module = resolve_layer(model, "conv10")
    k = next(i for i, m in enumerate(model.features) if m is features_module)
    below = model.features[: k + 1]
    head = nn.Sequential(model.features[k + 1 :], model.avgpool, nn.Flatten(1), model.classifier)
    features = below(x)
    got = integrated_gradients(head, features, steps=8)
    ref = IntegratedGradients(lambda f: head(f).sum(dim=1)).attribute(
        features.detach(), baselines=torch.zeros_like(features), n_steps=8, method="riemann_middle"
    )
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-6)
