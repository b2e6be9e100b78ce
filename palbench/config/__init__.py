"""palbench's configuration layer: every setting, its one name, its validation — and no torch.

* :mod:`~palbench.config.names` — the vocabulary: methods, strategies, backbones, renamed keys, the channel
  split ``C1 = round(c1·C)``, run/configuration names, the landmark-noise file names;
* :mod:`~palbench.config.run` — :class:`PalConfig` and :class:`TrainConfig` (one run; its ``config.json``);
* :mod:`~palbench.config.protocol` — the protocol schema (``benchmarks/protocols/*.yaml``), its expansion
  into the grid of runs, and :func:`read_params`, the one reader of ``params.yaml``;
* :mod:`~palbench.config.plots` — ``runs/dvc.yaml``, the runs' curves and confusion matrices for ``dvc plots``.

The CLI's commands that touch no model (``--help``, ``protocol``, ``aggregate``, ``report``) and the
notebooks read their configuration from here, so they start without importing torch
(``tests/test_config.py`` checks it).
"""

from palbench.config.files import read_yaml
from palbench.config.names import (
    AMP_MODES,
    ARCHS,
    DLIB_WEIGHTS,
    FACE_ARCHS,
    METHODS,
    STRATEGIES,
    TORCHVISION_ARCHS,
    WIDTH_FAMILIES,
    check_renamed,
    check_size,
    check_width,
    config_name,
    constrained_channels,
    landmark_set_path,
    noise_file,
    parse_run_name,
    PRETEXTS,
    run_name,
    seed_folder,
    width_family,
)
from palbench.config.protocol import (
    REPORT_DEFAULTS,
    available_protocols,
    check_reports_section,
    config_seeds,
    dataset_paths,
    expand_runs,
    grid,
    load_protocol,
    read_params,
    run_configs,
    run_names,
    study_configs,
    study_seeds,
    train_settings,
    validate_protocol,
    write_params,
)
from palbench.config.run import PalConfig, TrainConfig, load_config_file, planned_runs, read_config, result_diff

__all__ = [
    "AMP_MODES", "ARCHS", "DLIB_WEIGHTS", "FACE_ARCHS", "METHODS", "PRETEXTS", "REPORT_DEFAULTS", "STRATEGIES",
    "TORCHVISION_ARCHS", "WIDTH_FAMILIES", "PalConfig", "TrainConfig",
    "available_protocols", "check_renamed", "check_reports_section", "check_size", "check_width", "config_name", "constrained_channels",
    "expand_runs", "grid", "landmark_set_path", "load_config_file", "load_protocol", "noise_file", "width_family",
    "parse_run_name", "planned_runs", "read_config", "read_params", "read_yaml", "result_diff", "run_configs", "run_name",
    "run_names",
    "seed_folder", "study_configs", "train_settings", "config_seeds", "dataset_paths", "study_seeds",
    "validate_protocol", "write_params",
]  # fmt: skip
