"""Cross-dataset tests: the runs of a study, trained on the protocol's dataset A, evaluated on a dataset B.

A protocol's optional ``transfer`` section names the datasets B, each made like ``data`` (``command``,
``input``, ``args``) and tested with the runs of one study (``study``, default ``comparison``) on one of its
splits (``split``, default ``test``)::

    transfer:
      other-photos:
        command: import folder external/other/labels.csv
        input: external/other
        args: {align: dlib, seed: 0}
        study: comparison
        split: test

dvc.yaml's ``transfer_data`` stage imports each (``data/<name>``), and its ``transfer`` stage runs
``palbench transfer NAME`` (:func:`transfer_study`): every run of the study × seed is evaluated on B's split
(:func:`palbench.evaluate.evaluate_run`: images of classes the run never trained on are dropped and counted,
classes B lacks are listed absent) into ``transfer/<name>/<run>/``, and ``transfer/<name>/runs.csv`` (one
row per run: accuracy on A's test split and on B) and ``transfer/<name>/summary.csv`` (per configuration:
mean, std, 95% interval over seeds on B, and the paired difference to the baseline) are written. The
comparison report shows them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from palbench.config import PalConfig, run_configs, run_name
from palbench.config.protocol import grid, study_seeds
from palbench.errors import ConfigError, DataError
from palbench.io import atomic_dir

#: Per-run metrics of the evaluation on B kept in ``runs.csv`` (prefixed ``transfer_``).
METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "alignment_constrained", "alignment_free")


def transfer_runs(params: Mapping, name: str) -> list[dict]:
    """The runs of the study that ``transfer.<name>`` tests, × the seeds: ``{run, config, seed, settings}``
    each (``run`` the folder under ``runs/``, ``settings`` the canonical configuration)."""
    entry = (params.get("transfer") or {}).get(name)
    if entry is None:
        have = ", ".join(params.get("transfer") or {}) or "none"
        raise ConfigError(f"transfer {name!r}: not in the protocol's transfer section (it has: {have})")
    study = entry.get("study", "comparison")
    groups = run_configs(params)
    rows = [r for r in grid(params) if r["study"] == study]
    return [{"run": run_name(r["config"], seed, groups[r["config"]]), "config": r["config"], "seed": seed,
             "settings": r["settings"]} for r in rows for seed in study_seeds(params, study)]


def transfer_study(params: Mapping, name: str, runs_dir: str | Path = "runs", data: str | Path | None = None,
                   out: str | Path | None = None, progress: bool = False) -> pd.DataFrame:
    """Evaluate the runs of ``transfer.<name>``'s study on dataset ``data`` (default ``data/<name>``); write
    ``out`` (default ``transfer/<name>``) atomically; return the summary table.

    Returns:
        One row per configuration: ``config``, ``mean, std, n, ci_low, ci_high`` of the accuracy on B,
        ``diff, diff_ci_low, diff_ci_high, t, p, n_pairs`` against the baseline, and the means of the
        accuracy on A's test split (``test_accuracy_mean``) and of B's balanced accuracy.
    """
    from palbench.data.canonical import read_dataset
    from palbench.evaluate import evaluate_run
    from palbench.results import study_table

    runs = transfer_runs(params, name)  # raises for a name the transfer section lacks
    split = params["transfer"][name].get("split", "test")
    data = Path(data) if data is not None else Path("data") / name
    out = Path(out) if out is not None else Path("transfer") / name
    dataset = read_dataset(data, load_landmarks=False)
    provided = data / "provided_landmarks.npy"
    landmarks = provided if provided.is_file() else None  # the moved points of an aligned import
    rows = []
    with atomic_dir(out) as tmp:
        for r in runs:
            run, folder = r["run"], Path(runs_dir) / r["run"]
            if not (folder / "best.pt").is_file():
                raise DataError(f"{folder / 'best.pt'}: not found; train the grid first (dvc repro)")
            m = evaluate_run(folder, tmp / run, split, data=dataset, landmarks=landmarks, progress=progress)
            source = json.loads((folder / "test" / "metrics.json").read_text()) \
                if (folder / "test" / "metrics.json").is_file() else {}
            rows.append({"run": run, "config": r["config"], "seed": r["seed"],
                         "pal_weight": r["settings"].get("pal_weight", PalConfig.pal_weight),
                         "test_accuracy": source.get("accuracy"),
                         **{f"transfer_{k}": m.get(k) for k in METRICS}, "n": m["n"],
                         "dropped_untrained": sum((m.get("dropped_untrained") or {}).values()),
                         "absent_classes": " ".join(m.get("absent_classes") or [])})
        table = pd.DataFrame(rows)
        table.to_csv(tmp / "runs.csv", index=False)
        summary = study_table(table, ["config"], {"pal_weight": 0.0}, metric="transfer_accuracy",
                              extra=["test_accuracy", "transfer_balanced_accuracy"])
        summary.insert(0, "dataset", name)
        summary.insert(1, "split", split)
        summary.to_csv(tmp / "summary.csv", index=False)
    return summary
