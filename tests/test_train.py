"""The training engine: resume after a kill gives the uninterrupted result; DDP (2 gloo processes) equals
one process on the same global batch; bad configurations fail with one line and overwrite nothing."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from palbench.checkpoint import load_checkpoint
from palbench.cli import main
from palbench.config import TrainConfig
from palbench.train import epoch_order, train

from conftest import write_tiny_dataset

BIN = Path(sys.executable).parent
TINY = ["--arch", "vgg16", "--width", "0.125", "--size", "32", "--layer", "conv10", "--no-progress"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train") / "data"
    write_tiny_dataset(root, n=60, size=(32, 32))  # 30 train, 10 val, 20 test; one train row without face
    return root


def run_cli(*args, env=None):
    return subprocess.Popen([str(BIN / "palbench"), "train", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, text=True)


def assert_same_run(a: Path, b: Path):
    ma, mb = (json.loads((p / "metrics.json").read_text()) for p in (a, b))
    for k in ("best_val_accuracy", "best_epoch", "epochs", "steps"):
        assert ma[k] == mb[k], k
    assert (a / "history.csv").read_text().split("\n")[0] == (b / "history.csv").read_text().split("\n")[0]
    ha = np.genfromtxt(a / "history.csv", delimiter=",", names=True)
    hb = np.genfromtxt(b / "history.csv", delimiter=",", names=True)
    for k in ("train_ce", "train_pal", "val_accuracy", "lr"):
        np.testing.assert_allclose(ha[k], hb[k], rtol=1e-5, err_msg=k)
    wa, wb = (load_checkpoint(p / "state.pt")["model"] for p in (a, b))
    for k, v in wa.items():
        if isinstance(v, torch.Tensor):
            torch.testing.assert_close(v, wb[k], rtol=1e-5, atol=1e-7, msg=k)


def test_resume_after_kill_mid_epoch_matches_uninterrupted_run(data, tmp_path):
    common = ["--data", str(data), *TINY, "--epochs", "3", "--batch-size", "4", "--checkpoint-every", "3", "--seed", "5"]
    full = run_cli(str(tmp_path / "full"), *common)
    assert full.wait(timeout=300) == 0, full.stderr.read()
    proc = run_cli(str(tmp_path / "killed"), *common)
    state = tmp_path / "killed" / "state.pt"
    deadline = time.time() + 240
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        if state.exists():
            try:
                ckpt = torch.load(state, weights_only=True)
            except Exception:  # noqa: BLE001 - file being replaced
                ckpt = None
            if ckpt and ckpt["step_in_epoch"] > 0:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                killed_at = (ckpt["epoch"], ckpt["step_in_epoch"])
                break
        time.sleep(0.01)
    assert killed_at is not None, "the run finished before it could be killed mid-epoch"
    assert not (tmp_path / "killed" / "metrics.json").exists()
    resumed = run_cli(str(tmp_path / "killed"), *common, "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert_same_run(tmp_path / "full", tmp_path / "killed")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_gloo_processes_equal_one_process(tmp_path):
    root = tmp_path / "data"
    lm = write_tiny_dataset(root, n=60, size=(32, 32))
    lm[1] = lm[0]  # every landmark row valid: the PAL mean is then the same per rank and globally
    np.save(root / "landmarks.npy", lm)
    common = ["--data", str(root), *TINY, "--epochs", "1", "--max-steps", "1", "--batch-size", "8",
              "--dropout", "0", "--seed", "3"]
    single = run_cli(str(tmp_path / "one"), *common)
    assert single.wait(timeout=300) == 0, single.stderr.read()
    ddp = subprocess.run(
        [str(BIN / "torchrun"), "--nnodes", "1", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(free_port()), "-m", "palbench.cli", "train", str(tmp_path / "two"), *common],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    a = load_checkpoint(tmp_path / "one" / "state.pt")["model"]
    b = load_checkpoint(tmp_path / "two" / "state.pt")["model"]
    init = TrainConfig(data=str(root), arch="vgg16", width=0.125, seed=3)
    changed = 0
    for k, v in a.items():
        if isinstance(v, torch.Tensor):
            torch.testing.assert_close(b[k], v, rtol=1e-4, atol=1e-6, msg=k)
    torch.manual_seed(init.seed)
    from palbench.models import build_model

    fresh = build_model("vgg16", width=0.125).state_dict()
    changed = sum(not torch.equal(fresh[k], v) for k, v in a.items() if isinstance(v, torch.Tensor))
    assert changed > 10  # the step really moved the weights


def test_epoch_order_seeded_and_balanced():
    labels = np.array([0] * 90 + [1] * 10)
    a, b = epoch_order(labels, 2, 7, False), epoch_order(labels, 2, 7, False)
    assert torch.equal(a, b) and sorted(a.tolist()) == list(range(100))
    assert not torch.equal(a, epoch_order(labels, 3, 7, False))
    drawn = torch.cat([epoch_order(labels, e, 7, True) for e in range(40)])
    assert abs(float((torch.from_numpy(labels)[drawn] == 1).float().mean()) - 0.5) < 0.03


@pytest.mark.parametrize(
    "extra,msg",
    [
        (["--layer", "conv99"], "layer 'conv99': no such layer or module path; expected one of conv1, conv2"),
        (["--c1", "1.5"], "c1 must be in (0, 1]"),
        (["--c1", "0"], "c1 must be in (0, 1]"),
        (["--method", "saliency"], "unknown attribution method 'saliency'"),
        (["--strategy", "max"], "unknown channel strategy 'max'"),
        (["--amp", "fp8"], "amp: expected one of none, bf16, fp16"),
    ],
)
def test_bad_config_one_line_exit_2(data, tmp_path, capsys, extra, msg):
    assert main(["train", str(tmp_path / "run"), "--data", str(data), *TINY, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_missing_dataset_and_folder_protection(data, tmp_path, capsys):
    assert main(["train", str(tmp_path / "r"), "--data", str(tmp_path / "nope"), *TINY]) == 2
    assert "dataset folder not found" in capsys.readouterr().err
    run = tmp_path / "run"
    args = ["train", str(run), "--data", str(data), *TINY, "--epochs", "1", "--max-steps", "2", "--batch-size", "4"]
    assert main(args) == 0
    capsys.readouterr()
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    assert main(args) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main([*args, "--resume", "--lr", "1e-3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--resume with a different config: lr (run has 5e-05, asked 0.001)" in err and len(err.splitlines()) == 1
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before


def test_bf16_autocast_keeps_pal_finite(data, tmp_path):
    cfg = TrainConfig(data=str(data), arch="vgg16", width=0.125, size=32, layer="conv10", epochs=1, max_steps=2,
                      batch_size=4, amp="bf16", progress=False)
    m = train(cfg, tmp_path / "bf16")
    hist = np.genfromtxt(tmp_path / "bf16" / "history.csv", delimiter=",", names=True)
    assert np.isfinite(hist["train_pal"]) and np.isfinite(hist["train_ce"]) and m["steps"] == 2
