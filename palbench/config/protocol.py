"""Protocols and the experiment grid: the paper's studies expanded into DVC runs, each configuration once.

A protocol (``benchmarks/protocols/<name>.yaml``) says where the data come from, the defaults of every
run (``train``), the seeds, and the studies of the paper::

    studies:
      layers:                       # Fig. 3
        set: {method: grad, strategy: mean, c1: 0.5}
        vary: {layer: [conv4, conv7, conv10, conv13]}
      ablation:                     # Table I: a list of points instead of a product
        vary:
          - {method: grad, strategy: all, c1: 1.0}
          - {method: grad, strategy: mean, c1: 1.0}
          - ...

A study's configurations are ``train`` defaults + ``set`` + one point of the product of ``vary``; its
baseline is the same with ``pal_weight = 0``. ``landmark_noise`` (σ of the priors stage) selects the
jittered landmark set ``priors/<data>/landmarks_noise<σ>.npy``. A configuration is identified by its
*canonical* form — with PAL off, the PAL settings are reset to the defaults because they change nothing —
so a configuration shared by several studies (the baseline; Grad Mean-of-half at the default layer in
Fig. 3 and Table I; …) is one run per seed, trained once.

``palbench protocol NAME`` writes ``params.yaml`` from the protocol, with ``runs`` expanded: ``dvc.yaml``'s
``train`` stage iterates over ``runs`` with ``foreach`` (DVC cannot expand a grid of studies itself, and a
generated, committed ``runs`` makes every stage instance visible in ``dvc status`` and ``dvc.lock``).
:func:`check_params` refuses a ``params.yaml`` whose ``runs`` no longer match its studies.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from palbench.config import TrainConfig
from palbench.errors import ConfigError

PROTOCOLS_DIR = Path(__file__).resolve().parent.parent / "benchmarks" / "protocols"
#: How a train stage starts ``palbench``: e.g. ``torchrun --nproc_per_node 8 -m palbench.cli`` for DDP.
DEFAULT_LAUNCHER = "palbench"
#: Settings that change nothing when PAL is off (pal_weight = 0).
PAL_KEYS = ("method", "strategy", "c1", "prior_sigma", "landmark_noise")
#: Keys a protocol must have.
SECTIONS = ("protocol", "data", "landmarks", "priors", "train", "evaluate", "seeds", "studies")
#: Order of the keys in a run name (others follow alphabetically).
NAME_ORDER = ("arch", "width", "weights", "size", "layer", "method", "strategy", "c1", "prior_sigma", "landmark_noise")
#: Values written as they are in run names; other keys are written key_value (short key names below).
BARE_KEYS = ("arch", "layer", "method", "strategy")
SHORT_KEYS = {"landmark_noise": "noise", "prior_sigma": "psigma", "pal_weight": "lambda"}


def protocol_path(name: str | Path) -> Path:
    """``benchmarks/protocols/<name>.yaml`` for a bare name, else the path itself."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml"):
        return p
    return PROTOCOLS_DIR / f"{name}.yaml"


def available_protocols() -> list[str]:
    return sorted(p.stem for p in PROTOCOLS_DIR.glob("*.yaml"))


def _read_yaml(path: Path, missing: str) -> Any:
    import yaml

    if not path.is_file():
        raise ConfigError(f"{path}: {missing}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None


def load_protocol(name: str | Path) -> dict:
    """Read and validate a protocol (see the module docstring). Raises :class:`ConfigError` naming the key."""
    path = protocol_path(name)
    proto = _read_yaml(path, f"protocol not found; available: {', '.join(available_protocols())}")
    validate_protocol(proto, str(path))
    return proto


def validate_protocol(proto: Any, where: str) -> None:
    if not isinstance(proto, dict):
        raise ConfigError(f"{where}: expected a mapping with keys {', '.join(SECTIONS)}")
    missing = [k for k in SECTIONS if k not in proto]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    if not isinstance(proto.get("launcher", DEFAULT_LAUNCHER), str):
        raise ConfigError(f"{where}: launcher: expected a command string such as 'palbench' or "
                          f"'torchrun --nproc_per_node 8 -m palbench.cli'")
    data = proto["data"]
    for key in ("name", "command", "input", "args"):
        if not isinstance(data, dict) or key not in data:
            raise ConfigError(f"{where}: data.{key} missing (data needs name, command, input, args)")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", str(data["name"])):
        raise ConfigError(f"{where}: data.name {data['name']!r}: expected letters, digits, '-' or '_'")
    seeds = proto["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ConfigError(f"{where}: seeds: expected a non-empty list of integers >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{where}: seeds: repeated seed in {seeds}")
    if not isinstance(proto["studies"], dict) or not proto["studies"]:
        raise ConfigError(f"{where}: studies: expected a mapping of study name -> {{set, vary}}")
    sigmas = proto["priors"].get("noise_sigmas", [0])
    for name, study in proto["studies"].items():
        if not isinstance(study, dict) or set(study) - {"set", "vary", "title"}:
            raise ConfigError(f"{where}: studies.{name}: expected keys among title, set, vary")
        try:
            for conf in study_configs(proto, name):
                noise = conf.get("landmark_noise", 0)
                if noise not in sigmas:
                    raise ConfigError(f"landmark_noise {noise} is not among priors.noise_sigmas {sigmas}; add it there")
                TrainConfig.from_dict({**_train_keys(conf), "data": "-"}, where="train")
        except ConfigError as e:
            raise ConfigError(f"{where}: studies.{name}: {e}") from None
    if 0 not in sigmas:
        raise ConfigError(f"{where}: priors.noise_sigmas must contain 0 (the landmarks as detected), got {sigmas}")


def _points(vary: Mapping[str, list] | list[dict]) -> list[dict]:
    """The product of ``vary``; a list item that is a mapping contributes all of its keys. A list of mappings
    instead of a mapping lists the points themselves (e.g. the five PAL rows of the paper's Table I)."""
    if isinstance(vary, list):
        if not vary or not all(isinstance(p, dict) and p for p in vary):
            raise ConfigError(f"vary: expected a mapping of lists or a non-empty list of mappings, got {vary!r}")
        return [dict(p) for p in vary]
    if not isinstance(vary, dict):
        raise ConfigError(f"vary: expected a mapping of lists or a non-empty list of mappings, got {vary!r}")
    for key, values in vary.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"vary.{key}: expected a non-empty list, got {values!r}")
    points = []
    for combo in itertools.product(*vary.values()):
        point: dict = {}
        for key, value in zip(vary, combo):
            point.update(value if isinstance(value, dict) else {key: value})
        points.append(point)
    return points


def canonical(conf: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict:
    """The configuration with PAL settings reset to the defaults when PAL is off (they change nothing)."""
    conf = dict(conf)
    if conf.get("pal_weight", defaults.get("pal_weight", 1.0)) == 0:
        for key in PAL_KEYS:
            if key in defaults:
                conf[key] = defaults[key]
            else:
                conf.pop(key, None)
    return conf


def _defaults(proto: Mapping) -> dict:
    return {"landmark_noise": 0, **proto["train"]}


def study_configs(proto: Mapping, study: str) -> list[dict]:
    """The canonical configurations of a study, its baseline first."""
    spec = proto["studies"][study]
    defaults = _defaults(proto)
    base = {**defaults, **(spec.get("set") or {})}
    confs = [canonical({**base, "pal_weight": 0}, defaults)]
    for point in _points(spec.get("vary") or {}):
        conf = canonical({**base, **point}, defaults)
        if conf not in confs:
            confs.append(conf)
    return confs


def config_name(conf: Mapping[str, Any], defaults: Mapping[str, Any]) -> str:
    """A readable, unique name: ``base`` or ``pal`` and the settings that differ from the defaults.

    Names are DVC stage keys: letters, digits, ``-`` and ``_`` only (a ``.`` becomes ``p``).
    """
    diff = {k: v for k, v in conf.items() if k != "pal_weight" and v != defaults.get(k)}
    keys = [k for k in NAME_ORDER if k in diff] + sorted(k for k in diff if k not in NAME_ORDER)
    parts = ["base" if conf.get("pal_weight") == 0 else "pal"]
    if conf.get("pal_weight") not in (0, defaults.get("pal_weight")):
        keys.insert(0, "pal_weight")
        diff["pal_weight"] = conf["pal_weight"]
    for k in keys:
        v = diff[k]
        text = f"{v:g}" if isinstance(v, float) else str(v)
        parts.append(text if k in BARE_KEYS else f"{SHORT_KEYS.get(k, k)}_{text}")
    name = "-".join(parts)
    return re.sub(r"[^A-Za-z0-9_-]", "", name.replace(".", "p"))


def _train_keys(conf: Mapping[str, Any]) -> dict:
    return {k: v for k, v in conf.items() if k != "landmark_noise"}


def grid(proto: Mapping) -> list[dict]:
    """Every (study, configuration) pair: ``study, config, baseline (bool), settings`` — the settings being
    the canonical configuration; a configuration appears once per study that uses it."""
    defaults = _defaults(proto)
    rows = []
    for study in proto["studies"]:
        for i, conf in enumerate(study_configs(proto, study)):
            rows.append({"study": study, "config": config_name(conf, defaults), "baseline": i == 0, "settings": conf})
    return rows


def expand_runs(proto: Mapping) -> dict[str, dict]:
    """``{run name: train overrides}`` for every distinct configuration × seed; the run name is
    ``<config>-s<seed>``. Overrides hold only what differs from ``train`` (plus the seed and the landmark
    file), so ``dvc exp run -S train.epochs=…`` still reaches every run."""
    defaults = _defaults(proto)
    noise_file = "priors/{name}/landmarks_noise{sigma:g}.npy"
    runs: dict[str, dict] = {}
    seen: dict[str, dict] = {}
    for row in grid(proto):
        conf = row["settings"]
        name = row["config"]
        if name in seen:
            if seen[name] != conf:  # two configurations with one name would share run folders
                raise ConfigError(f"configurations {seen[name]} and {conf} have the same name {name!r}")
            continue
        seen[name] = conf
        overrides = {k: v for k, v in _train_keys(conf).items() if v != proto["train"].get(k)}
        overrides["landmarks"] = noise_file.format(name=proto["data"]["name"], sigma=conf.get("landmark_noise", 0))
        for seed in proto["seeds"]:
            runs[f"{name}-s{seed}"] = {**overrides, "seed": seed}
    return runs


def params_from_protocol(proto: Mapping) -> dict:
    """The content of ``params.yaml`` for a protocol: its sections, ``launcher`` and the expanded ``runs``."""
    body = {k: proto[k] for k in proto if k != "runs"}
    body.setdefault("launcher", DEFAULT_LAUNCHER)
    body.setdefault("reports", {})  # notebook parameters (palbench.reports); dvc.yaml's reports stage reads it
    return {**body, "runs": expand_runs(proto)}


def write_params(proto: Mapping, path: str | Path = "params.yaml", source: str = "") -> Path:
    """Write ``params.yaml`` (atomically) with a header saying where it comes from."""
    import yaml

    from palbench.io import write_text

    header = (
        f"# Generated by `palbench protocol {source or proto['protocol']}` from the protocol file; edit the protocol\n"
        "# (or this file and run `palbench protocol --refresh`), not `runs`: it is the expansion of `studies`.\n"
    )
    body = yaml.safe_dump(params_from_protocol(proto), sort_keys=False, default_flow_style=None, width=110)
    path = Path(path)
    write_text(path, header + body)
    return path


def read_params(path: str | Path = "params.yaml", check: bool = True) -> dict:
    """Read ``params.yaml`` and (``check``) verify that ``runs`` is the expansion of its studies."""
    path = Path(path)
    params = _read_yaml(path, "not found; write it with `palbench protocol synthetic-cpu`")
    if check:
        check_params(params, str(path))
    return params


def check_params(params: Any, where: str) -> None:
    validate_protocol(params, where)
    expected = expand_runs(params)
    if params.get("runs") != expected:
        stale = sorted(set(params.get("runs") or {}) ^ set(expected)) or sorted(
            k for k in expected if params["runs"].get(k) != expected[k])
        raise ConfigError(f"{where}: runs do not match studies (e.g. {', '.join(stale[:3])}); "
                          f"regenerate them with `palbench protocol --refresh`")
