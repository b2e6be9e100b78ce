"""Shared fixtures: tiny canonical datasets written by the tests."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from palbench.data.canonical import dataset_writer, save_npy, write_tables

TINY_SPLITS = ["train", "train", "train", "val", "test", "test"]


def write_tiny_dataset(root, n=6, size=(24, 32), with_landmarks=True):
    """n flat-colour PNGs (H, W = size), labels i % 7, splits TINY_SPLITS; row 1 has no face."""
    with dataset_writer(root) as tmp:
        rows = []
        for i in range(n):
            Image.fromarray(np.full((*size, 3), (20 * i) % 256, np.uint8)).save(tmp / "images" / f"{i}.png")
            rows.append({"path": f"{i}.png", "label": i % 7, "split": TINY_SPLITS[i % len(TINY_SPLITS)]})
        write_tables(tmp, pd.DataFrame(rows), {"source": "test", "image_size": list(size)})
        lm = np.random.default_rng(0).uniform(0, min(size), (n, 68, 2)).astype(np.float32)
        lm[1] = np.nan
        if with_landmarks:
            save_npy(tmp / "landmarks.npy", lm)
    return lm


@pytest.fixture
def tiny_dataset(tmp_path):
    root = tmp_path / "tiny"
    landmarks = write_tiny_dataset(root)
    return root, landmarks


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny models run 50-100× faster on one thread than on two oversubscribed ones (2-core CI)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def smoke_project(tmp_path_factory):
    """The whole DVC pipeline of the ``smoke`` protocol, run once per test session in a throw-away project
    (tests/pipeline_project.py): data, landmarks, priors, 10 tiny runs, aggregate (and the reports).

    Returns ``(root, stdout of dvc repro)``.
    """
    import pipeline_project as pp

    root = pp.make_project(tmp_path_factory.mktemp("smoke") / "project")
    pp.protocol(root, "smoke")
    res = pp.run([str(pp.BIN / "dvc"), "repro"], root)
    return root, res.stdout


def pytest_collection_modifyitems(config, items):
    """`make test` runs the suite on two workers (pytest-xdist, ``--dist loadgroup``) without running an expensive
    fixture twice: every test that uses the session's smoke pipeline is one group, scheduled first (it is the
    longest chain), and each other test module is a group of its own, so its module-scoped fixtures run once.
    Without xdist the marks are inert and the order is unchanged apart from the smoke tests coming first."""
    smoke = [item for item in items if "smoke_project" in getattr(item, "fixturenames", ())]
    for item in items:
        group = "smoke" if item in smoke else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))
    if config.pluginmanager.hasplugin("xdist"):
        rest = [item for item in items if item not in smoke]
        items[:] = smoke + rest
