"""The speed benchmarks' layer picker and step functions (benchmarks/speed/train_step.py); nothing is timed."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "speed"))
import train_step  # noqa: E402

from palbench.models import build_model, describe_layers  # noqa: E402


@pytest.mark.parametrize("arch", ["convnext_tiny", "efficientnet_b0", "swin_t"])
def test_late_and_middle_are_two_spatial_catalogue_layers(arch):
    model = build_model(arch, width=0.25, size=64)
    picked = train_step.pick_layers(train_step.floor_rows(model, 64), ["late", "middle"])
    names = [row["name"] for _, row in picked]
    catalogue = {r["name"]: r for r in describe_layers(model, 64)}
    assert len(set(names)) == 2 and set(names) <= set(catalogue)
    late, middle = (row for _, row in picked)
    assert late["height"] >= 3 and middle["height"] >= late["height"]  # a map, late no larger than middle
    assert 1 <= late["floor"] < middle["floor"] < 2 and abs(middle["floor"] - 1.5) < 0.1


def test_steps_run_once_on_a_narrow_vit():
    model = build_model("vit_b_16", width=0.25, size=64).train()
    (pick, row), = train_step.layer_rows(model, 64, ["middle"])
    assert pick == "middle" and row["name"].startswith("encoder.layers.")
    before = [p.detach().clone() for p in model.parameters()]
    for step in train_step.make_steps(model, row["name"], *train_step.inputs(2, 64)).values():
        step()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_arch_without_width_knob_is_built_at_width_one():
    arch, width, note = train_step.arch_width("regnet_y_800mf", 0.25)
    assert (arch, width) == ("regnet_y_800mf", 1.0) and "no width knob" in note
    assert train_step.arch_width("swin_t:0.5", 0.25) == ("swin_t", 0.5, "")


def test_side_by_side_step_is_the_default_pal_step():
    import side_by_side  # noqa: E402

    step = side_by_side.make_step(4)
    step()  # one CE+PAL step of the default configuration at 48 px runs
    assert side_by_side.SIZE == 48


def test_dlib_face_resnet_steps_at_a_middle_and_a_late_block():
    # the Makefile's `speed` times it at 150 px, batch 16, layer3.1 / layer4.2 / layer5.0; here 112 px, batch 2
    assert train_step.arch_width("dlib_face_resnet", 0.25)[:2] == ("dlib_face_resnet", 1.0)
    model = build_model("dlib_face_resnet", size=112).train()
    rows = train_step.layer_rows(model, 112, ["layer3.1", "layer4.2"])
    assert [row["name"] for _, row in rows] == ["layer3.1", "layer4.2"]
    middle, late = (row for _, row in rows)
    assert 1 < late["floor"] < middle["floor"] < 2 and (middle["height"], late["height"]) == (6, 3)
    before = [p.detach().clone() for p in model.parameters()]
    for step in train_step.make_steps(model, "layer3.1", *train_step.inputs(2, 112)).values():
        step()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
