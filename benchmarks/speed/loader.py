"""Data loader vs training step throughput: the loader must not be the bottleneck (goal ≥ 2×).

    .venv/bin/python benchmarks/speed/loader.py --data data/synth --config benchmarks/protocols/synthetic-cpu.yaml

Measures, in one process, images/s of (a) the augmented training DataLoader alone (decode, rotation,
flip, resize, normalise) with 0, 1 and 2 workers, and (b) CE+PAL training steps on pre-loaded batches.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, publish  # noqa: E402

from palbench.config import TrainConfig, load_config_file  # noqa: E402
from palbench.data.dataset import FaceDataset  # noqa: E402
from palbench.objective import pal_objective  # noqa: E402
from palbench.train import prepare  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/synth")
    ap.add_argument("--config", default="benchmarks/protocols/synthetic-cpu.yaml", help="protocol YAML (its train section)")
    ap.add_argument("--batches", type=int, default=30)
    args = ap.parse_args()
    values = load_config_file(args.config) if args.config else {}
    values = dict(values.get("train", values))  # a protocol file has a `train` section
    values["data"] = args.data
    cfg = TrainConfig.from_dict(values)
    data, landmarks, model = prepare(cfg)
    ds = FaceDataset(data, "train", cfg.size, landmarks, True, model.input_normalization, cfg.seed)
    n = min(len(ds), args.batches * cfg.batch_size)
    rows = []
    for workers in (0, 1, 2):
        loader = DataLoader(torch.utils.data.Subset(ds, range(n)), batch_size=cfg.batch_size, num_workers=workers)
        t0 = time.perf_counter()
        for _ in loader:
            pass
        rows.append([f"DataLoader, {workers} worker(s)", f"{n / (time.perf_counter() - t0):,.0f}"])
    batches = list(DataLoader(torch.utils.data.Subset(ds, range(n)), batch_size=cfg.batch_size))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    model.train()
    for i, b in enumerate(batches):
        if i == 2:
            t0 = time.perf_counter()
        out = pal_objective(model, b["image"], b["label"], b["landmarks"], cfg.pal)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    step_rate = (n - 2 * cfg.batch_size) / (time.perf_counter() - t0)
    rows.append([f"CE+PAL train steps ({cfg.arch} ×{cfg.width}, {cfg.size} px, {cfg.layer})", f"{step_rate:,.0f}"])
    best0 = float(rows[0][1].replace(",", ""))
    body = (f"{n} training images, batch {cfg.batch_size}, {torch.get_num_threads()} torch threads. "
            f"Loader (0 workers) / training = {best0 / step_rate:.1f}×.\n\n"
            + markdown_table(["what", "images/s"], rows))
    publish("loader", "Data loader vs training throughput (CPU)", body)


if __name__ == "__main__":
    main()
