"""Calibrate the built-in benchmark: baseline and PAL runs over PAL weights λ and seeds, on this machine.

    .venv/bin/python benchmarks/calibrate.py --data data/synth --config benchmarks/protocols/synthetic-cpu.yaml \
        --lambdas 0 0.3 1 3 --seeds 0 1

Each run is `palbench train` + `palbench evaluate` (the library functions) with the protocol's train
settings and one λ (0 = the CE baseline). Writes ``benchmarks/calibration/<name>.csv`` and ``.md`` with
val and test accuracy, attribution-prior alignment, decoy share and seconds per run — the figures the
README and the protocol's defaults (λ, epochs, width, size) are chosen from.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent / "speed"))
from common import markdown_table, publish  # noqa: E402

from palbench.config import TrainConfig, load_config_file  # noqa: E402
from palbench.evaluate import evaluate_run  # noqa: E402
from palbench.io import write_text  # noqa: E402
from palbench.train import train  # noqa: E402

HERE = Path(__file__).resolve().parent / "calibration"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/synth")
    ap.add_argument("--landmarks", default="priors/synth", help="landmark set: a .npy, or the priors stage folder (its landmark_noise 0 set)")
    ap.add_argument("--config", default="benchmarks/protocols/synthetic-cpu.yaml")
    ap.add_argument("--lambdas", type=float, nargs="+", default=[0.0, 0.3, 1.0, 3.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--set", nargs="*", default=[], help="overrides key=value (YAML values)")
    ap.add_argument("--runs", default="/tmp/palbench-calibration", help="scratch folder for run folders")
    ap.add_argument("--name", default="lambda_sweep")
    args = ap.parse_args()
    import yaml

    proto = load_config_file(args.config)
    base = dict(proto.get("train", proto))
    base.update({k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.set)})
    base.update(data=args.data, landmarks=args.landmarks, progress=False)
    rows = []
    for lam in args.lambdas:
        for seed in args.seeds:
            cfg = TrainConfig.from_dict({**base, "pal_weight": lam, "seed": seed})
            run = Path(args.runs) / f"lam{lam:g}_seed{seed}"
            t0 = time.perf_counter()
            m = train(cfg, run, force=True)
            seconds = time.perf_counter() - t0
            ev = evaluate_run(run, run / "eval", landmarks=args.landmarks, progress=False)
            rows.append({
                "lambda": lam, "seed": seed, "val_acc": m["best_val_accuracy"], "test_acc": ev["accuracy"],
                "alignment": ev["alignment_constrained"], "decoy_share": ev["decoy_share"],
                "decoy_area": ev["decoy_area_share"], "best_epoch": m["best_epoch"], "train_s": seconds,
            })
            print({k: round(v, 4) if isinstance(v, float) else v for k, v in rows[-1].items()}, flush=True)
    df = pd.DataFrame(rows)
    HERE.mkdir(exist_ok=True)
    write_text(HERE / f"{args.name}.csv", df.to_csv(index=False))
    summary = df.groupby("lambda").agg(["mean", "std"]).drop(columns=["seed"], level=0)
    def cell(lam: float, c: str) -> str:  # mean ± std over seeds; the mean alone for a single seed
        mean, std = summary.loc[lam, (c, "mean")], summary.loc[lam, (c, "std")]
        return f"{mean:.3f}" if pd.isna(std) else f"{mean:.3f} ± {std:.3f}"

    table = [[f"{lam:g}"] + [cell(lam, c) for c in ("val_acc", "test_acc", "alignment", "decoy_share", "train_s")]
             for lam in summary.index]
    settings = ", ".join(f"{k}={v}" for k, v in sorted(base.items()) if k not in ("data", "progress"))
    publish(args.name, f"Built-in benchmark calibration: {args.name}",
            f"Settings: {settings}; seeds {args.seeds}; mean ± std over seeds.\n\n"
            + markdown_table(["λ", "val acc", "test acc", "alignment (constrained)", "decoy share", "seconds/run"], table),
            folder=HERE)


if __name__ == "__main__":
    main()
