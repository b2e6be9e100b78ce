"""How much of the grid's accuracy comes from pretraining? Pretrained weights on the expression set, untouched.

    .venv/bin/python benchmarks/pretrain_transfer.py pretrain/synth-faces /tmp/sw_* --data data/synth \
        --grid results/runs.csv --name pretraining_transfer

Each PRETRAIN folder is a ``palbench pretrain`` output (``weights.pt``, ``pretrain.json``). With the ``label``
pretext the weights keep their 7-class head, so they classify the expression set as they are: this script
gives each one's pretext validation accuracy (what ``palbench pretrain`` selects on) beside its accuracy on
the expression set's val and test splits *before any fine-tuning* ("zero-shot"). ``--grid``: the
``results/runs.csv`` of a finished grid, whose baseline (``pal_weight`` 0) test accuracy after the protocol's
fine-tuning is shown for comparison. Writes ``benchmarks/calibration/<name>.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "speed"))
from common import markdown_table, publish  # noqa: E402

from palbench.data.canonical import read_dataset  # noqa: E402
from palbench.data.dataset import FaceDataset  # noqa: E402
from palbench.evaluate import predict  # noqa: E402
from palbench.models import build_model  # noqa: E402
from palbench.models.weights import load_weights  # noqa: E402

HERE = Path(__file__).resolve().parent / "calibration"


def zero_shot(folder: Path, data, split: str) -> float:
    """Accuracy of ``folder/weights.pt`` (head kept) on ``split`` of ``data``, in %."""
    info = json.loads((folder / "pretrain.json").read_text())
    if not info.get("head"):
        raise SystemExit(f"{folder}: pretext {info.get('pretext')!r} has no head; nothing to classify with")
    cfg = info["config"]
    model = build_model(cfg["arch"], num_classes=info["classes"], width=cfg["width"])
    load_weights(model, folder / "weights.pt")
    ds = FaceDataset(data, split, cfg["size"], normalization=model.input_normalization)
    logits, labels = predict(model, ds)
    return 100 * float((logits.argmax(1) == labels).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pretrain", nargs="+", help="palbench pretrain output folders")
    ap.add_argument("--data", default="data/synth", help="the expression set (the grid's dataset)")
    ap.add_argument("--grid", help="results/runs.csv of a finished grid (its baseline's fine-tuned accuracy)")
    ap.add_argument("--name", default="pretraining_transfer")
    args = ap.parse_args()
    data = read_dataset(args.data)
    rows, zero = [], {}
    for folder in map(Path, args.pretrain):
        info = json.loads((folder / "pretrain.json").read_text())
        cfg, m = info["config"], info["metrics"]
        key = (folder / "weights.pt").as_posix()
        zero[key] = (zero_shot(folder, data, "val"), zero_shot(folder, data, "test"))
        rows.append([str(folder), cfg["seed"], cfg["lr"], cfg["epochs"], f"{100 * m['best_val_accuracy']:.1f}",
                     m["best_epoch"], f"{m['seconds']:.0f}", *(f"{a:.1f}" for a in zero[key])])
        print(*rows[-1], flush=True)
    body = [f"Expression set: `{args.data}` ({len(data)} images). Each row is one `palbench pretrain` run "
            "(label pretext, decoy-free faces of other synthetic people); its weights are evaluated on the "
            "expression set as they are, before any fine-tuning.", "",
            markdown_table(["pretraining", "seed", "lr", "epochs", "pretext val %", "best epoch", "seconds",
                            "zero-shot val %", "zero-shot test %"], rows)]
    if args.grid:
        runs = pd.read_csv(args.grid)
        base = runs[runs["pal_weight"] == 0]
        val, test = 100 * base["val_accuracy"], 100 * base["test_accuracy"]
        body += ["", f"The grid's baseline after fine-tuning (`{args.grid}`, pal_weight 0): val {val.mean():.1f}%, "
                 f"test {test.mean():.1f} ± {test.std():.1f}% over {len(base)} seeds."]
        start = Path(str(base["weights"].iloc[0])).as_posix()
        if start in zero:
            body += [f"It starts from `{start}`, which scores {zero[start][0]:.1f}% (val) and {zero[start][1]:.1f}% "
                     f"(test) untouched: fine-tuning changes val accuracy by {val.mean() - zero[start][0]:+.1f} and "
                     f"test accuracy by {test.mean() - zero[start][1]:+.1f} points."]
    publish(args.name, "Pretraining and what it transfers, before fine-tuning", "\n".join(body), HERE)


if __name__ == "__main__":
    main()
