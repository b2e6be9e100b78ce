"""The partial start (issue 20): which parameters a run keeps from its weights, which start as from scratch."""

import pytest
import torch

from palbench.config import TrainConfig
from palbench.data.synth import generate
from palbench.errors import ConfigError
from palbench.models import build_model
from palbench.models.partial import kept_and_reset
from palbench.train import prepare


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("partial")
    generate(root / "data", n_train=14, n_val=7, n_test=7, size=32, progress=False)
    torch.manual_seed(123)
    pretrained = build_model("vgg16_bn", num_classes=7, width=0.125)
    with torch.no_grad():
        for v in pretrained.state_dict().values():
            if isinstance(v, torch.Tensor) and v.is_floating_point():
                v.add_(1.0)  # unlike any initialisation
    torch.save(pretrained.state_dict(), root / "weights.pt")
    return root, pretrained.state_dict()


def _cfg(root, **kw):
    return TrainConfig.from_dict({"data": str(root / "data"), "arch": "vgg16_bn", "width": 0.125, "size": 32,
                                  "pal_weight": 0.0, "seed": 4, "progress": False, **kw})


def test_layers_up_to_the_cut_are_kept_and_the_rest_is_the_scratch_initialisation(setup):
    root, pretrained = setup
    _, _, partial = prepare(_cfg(root, weights=str(root / "weights.pt"), keep_up_to="conv4"))
    _, _, scratch = prepare(_cfg(root))  # same seed, no weights
    model = build_model("vgg16_bn", num_classes=7, width=0.125)
    convs = [k for k, v in model.state_dict().items() if k.startswith("features.") and v.dim() == 4]
    kept, reset = kept_and_reset(model, "conv4", 32)
    assert [k for k in convs if k in kept] == convs[:4] and [k for k in convs if k in reset] == convs[4:]
    assert all(k.startswith("features.") for k in kept) and any(k.startswith("classifier.") for k in reset)
    bn4 = [k for k in kept if k.endswith("running_mean")]
    assert len(bn4) == 4  # the BatchNorm statistics of the kept layers come with them
    state, fresh = partial.state_dict(), scratch.state_dict()
    for k in kept:
        torch.testing.assert_close(state[k], pretrained[k], rtol=0, atol=0)
    for k in reset:
        torch.testing.assert_close(state[k], fresh[k], rtol=0, atol=0)
    assert sorted(kept + reset) == sorted(k for k in state if not k.endswith("_extra_state"))


def test_keep_up_to_the_last_layer_keeps_the_features_and_resets_the_head(setup):
    root, pretrained = setup
    _, _, model = prepare(_cfg(root, weights=str(root / "weights.pt"), keep_up_to="conv13"))
    _, _, full = prepare(_cfg(root, weights=str(root / "weights.pt")))
    state = model.state_dict()
    assert all(torch.equal(state[k], pretrained[k]) for k in state if k.startswith("features."))
    assert not torch.equal(state["classifier.6.weight"], pretrained["classifier.6.weight"])
    assert torch.equal(full.state_dict()["classifier.6.weight"], pretrained["classifier.6.weight"])


def test_bad_partial_settings_name_the_key(setup):
    root, _ = setup
    with pytest.raises(ConfigError, match="keep_up_to.*weights is null"):
        _cfg(root, keep_up_to="conv4")
    with pytest.raises(ConfigError, match="conv99"):
        prepare(_cfg(root, weights=str(root / "weights.pt"), keep_up_to="conv99"))
