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
baseline is the same with ``pal_weight = 0``. ``landmark_noise`` is a setting like any other (a
:class:`~palbench.config.TrainConfig` field): a run reads the landmark set of its σ from the priors stage's
folder, and records the σ in its ``config.json``. A configuration is identified by its
*canonical* form — with PAL off, the PAL settings are reset to the defaults because they change nothing —
so a configuration shared by several studies (the baseline; Grad Mean-of-half at the default layer in
Fig. 3 and Table I; …) is one run per seed, trained once.

``palbench protocol NAME`` writes ``params.yaml`` from the protocol, with ``runs`` expanded (one entry per
configuration, with its ``seeds``): ``dvc.yaml``'s ``train`` stage iterates over ``runs`` with ``foreach``,
one stage per configuration training its seeds in one process (an interpreter start with torch costs ~5 s
on 2 cores, and the dataset is decoded once) (DVC cannot expand a grid of studies itself, and a
generated, committed ``runs`` makes every stage instance visible in ``dvc status`` and ``dvc.lock``).
:func:`check_params` refuses a ``params.yaml`` whose ``runs`` no longer match its studies.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from palbench.config.files import read_yaml
from palbench.config.names import PRETEXTS, check_renamed, config_name, run_name
from palbench.config.run import PalConfig, TrainConfig
from palbench.errors import ConfigError

PROTOCOLS_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "protocols"
#: How a train stage starts ``palbench``: e.g. ``torchrun --nproc_per_node 8 -m palbench.cli`` for DDP.
DEFAULT_LAUNCHER = "palbench"
#: How many runs a train stage trains side by side, each in a single-threaded worker (:mod:`palbench.workers`);
#: 1 = one at a time in the stage's process, with all its threads (GPU, torchrun).
DEFAULT_JOBS = 1
#: Settings that change nothing when PAL is off (pal_weight = 0).
PAL_KEYS = ("method", "strategy", "c1", "prior_sigma", "landmark_noise")
#: What a dataset, pretraining or transfer name may be: it becomes a folder under data/ (and a DVC stage key).
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
#: Keys a protocol must have.
SECTIONS = ("protocol", "data", "landmarks", "priors", "train", "evaluate", "seeds", "studies")
#: Keys of a study: ``set`` and ``vary`` (its configurations), ``title``; ``seeds`` (default: the protocol's) and
#: ``regime`` (``{start, shortcut}``: the study is a cell of the regime map, :mod:`palbench.regimes`).
STUDY_KEYS = ("title", "set", "vary", "seeds", "regime")
#: ``palbench synth`` options a data variant may change: its shortcuts. Everything else — and so every face,
#: label, split and landmark — is the protocol's data, so a variant's runs read the protocol's priors.
SHORTCUT_OPTIONS = ("decoy_p", "decoy_p_test", "decoy_strength", "decoy_size", "stripes_p", "stripes_p_test",
                    "stripes_strength", "shortcut_test")
#: Defaults of the protocol's optional ``reports`` section (parameters of the notebooks, :mod:`palbench.reports`).
REPORT_DEFAULTS: dict[str, Any] = {"landmark_noise": None, "n_images": 7}


def protocol_dirs() -> list[Path]:
    """Where bare protocol names are looked up, first match wins: the current project's
    ``benchmarks/protocols`` (the folder a user runs ``palbench protocol`` in), then palbench's own."""
    here = Path.cwd() / "benchmarks" / "protocols"
    return [here] + ([PROTOCOLS_DIR] if here.resolve() != PROTOCOLS_DIR else [])


def protocol_path(name: str | Path) -> Path:
    """For a bare name, ``<dir>/<name>.yaml`` in the first of :func:`protocol_dirs` that has it (the current
    project's when none has it); else the path itself."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml"):
        return p
    found = [d / f"{name}.yaml" for d in protocol_dirs() if (d / f"{name}.yaml").is_file()]
    return found[0] if found else protocol_dirs()[0] / f"{name}.yaml"


def available_protocols() -> list[str]:
    """Every bare name :func:`protocol_path` resolves (the current project's and palbench's protocols)."""
    return sorted({p.stem for d in protocol_dirs() for p in d.glob("*.yaml")})


def load_protocol(name: str | Path) -> dict:
    """Read and validate a protocol (see the module docstring). Raises :class:`ConfigError` naming the key."""
    path = protocol_path(name)
    proto = read_yaml(path, f"protocol not found; available: {', '.join(available_protocols())}",
                      f"a mapping with keys {', '.join(SECTIONS)}")
    validate_protocol(proto, str(path))
    return proto


def validate_protocol(proto: Any, where: str) -> None:
    """Check every section of a protocol (or params.yaml) before anything runs: a typo in ``reports`` or a
    study fails here, not after the grid has trained. Raises :class:`ConfigError` naming the key."""
    if not isinstance(proto, dict):
        raise ConfigError(f"{where}: expected a mapping with keys {', '.join(SECTIONS)}")
    missing = [k for k in SECTIONS if k not in proto]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    if not isinstance(proto.get("launcher", DEFAULT_LAUNCHER), str):
        raise ConfigError(f"{where}: launcher: expected a command string such as 'palbench' or "
                          f"'torchrun --nproc_per_node 8 -m palbench.cli'")
    jobs = proto.get("jobs", DEFAULT_JOBS)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"{where}: jobs: expected an integer >= 1 (runs trained side by side), got {jobs!r}")
    if jobs > 1 and "torchrun" in str(proto.get("launcher", DEFAULT_LAUNCHER)):
        raise ConfigError(f"{where}: jobs: {jobs} side-by-side workers and a torchrun launcher do not mix; use jobs: 1")
    _check_data(proto["data"], where)
    _check_variants(proto, where)
    _check_pretraining(proto, where)
    _check_transfer(proto, where)
    _check_seeds(proto["seeds"], where)
    for section in ("priors", "train", "reports"):
        if not isinstance(proto.get(section) or {}, dict):
            raise ConfigError(f"{where}: {section}: expected a mapping")
    check_renamed(proto["priors"] or {}, f"{where}: priors", "priors")
    check_renamed(proto["train"], f"{where}: train")
    noise = _check_noise(proto["priors"] or {}, where)
    _check_studies(proto, where, noise)
    _check_weights(proto, where)
    check_reports_section(proto.get("reports"), where, noise)


def _check_data(data: Any, where: str) -> None:
    for key in ("name", "command", "input", "args"):
        if not isinstance(data, dict) or key not in data:
            raise ConfigError(f"{where}: data.{key} missing (data needs name, command, input, args)")
    if not NAME_PATTERN.fullmatch(str(data["name"])):
        raise ConfigError(f"{where}: data.name {data['name']!r}: expected letters, digits, '-' or '_'")


def _check_variants(proto: Mapping, where: str) -> None:
    """The optional ``variants`` section: ``{dataset name: {synth option: value}}`` — the protocol's data with
    other shortcuts (:data:`SHORTCUT_OPTIONS`), one ``variant_data`` DVC stage each writing ``data/<name>``. A
    study trains on one with ``set: {data: data/<name>}``. In ``params.yaml`` each entry holds the whole
    argument list (``data.args`` with the entry's changes, :func:`variant_args`)."""
    variants = proto.get("variants") or {}
    if not isinstance(variants, dict):
        raise ConfigError(f"{where}: variants: expected a mapping of dataset name -> {{synth option: value}}")
    if variants and proto["data"]["command"] != "synth":
        raise ConfigError(f"{where}: variants: only `synth` data have shortcut options (data.command is "
                          f"{proto['data']['command']!r})")
    taken = {proto["data"]["name"], *(proto.get("pretraining") or {}), *(proto.get("transfer") or {})}
    base = proto["data"]["args"] or {}
    for name, entry in variants.items():
        key = f"{where}: variants.{name}"
        if not NAME_PATTERN.fullmatch(str(name)) or name in taken:
            raise ConfigError(f"{key}: expected a dataset name of letters, digits, '-' or '_' other than "
                              f"{', '.join(sorted(taken))}")
        if not isinstance(entry, dict):
            raise ConfigError(f"{key}: expected a mapping of synth options ({', '.join(SHORTCUT_OPTIONS)})")
        other = sorted(k for k, v in entry.items() if k not in SHORTCUT_OPTIONS and base.get(k) != v)
        if other:
            raise ConfigError(f"{key}: {', '.join(other)} differ from data.args; a variant changes only the "
                              f"shortcuts ({', '.join(SHORTCUT_OPTIONS)}), so its faces and landmarks are the data's")


def variant_args(proto: Mapping, name: str) -> dict:
    """The whole ``palbench synth`` argument list of variant ``name``: ``data.args`` with its changes."""
    return {**(proto["data"]["args"] or {}), **proto["variants"][name]}


def dataset_paths(proto: Mapping) -> list[str]:
    """The datasets a run may train on: ``data/<data.name>`` (the default, first), then each variant's."""
    return [f"data/{proto['data']['name']}"] + [f"data/{name}" for name in proto.get("variants") or {}]


#: ``pretraining.<name>`` keys: how its dataset is made (as ``data``) and how the backbone is trained on it.
PRETRAINING_KEYS = ("command", "args", "labels", "train")


def _check_pretraining(proto: Mapping, where: str) -> None:
    """The optional ``pretraining`` section — ``{dataset name: {command, args, labels, train}}``, one DVC
    ``pretrain_data`` + ``pretrain`` stage per entry writing ``pretrain/<name>/weights.pt`` — and that
    ``train.weights`` is set. Which configurations load which weights is checked by :func:`_check_weights`."""
    pre = proto.get("pretraining") or {}
    if not isinstance(pre, dict):
        raise ConfigError(f"{where}: pretraining: expected a mapping of dataset name -> {{{', '.join(PRETRAINING_KEYS)}}}")
    for name, entry in pre.items():
        key = f"{where}: pretraining.{name}"
        if not NAME_PATTERN.fullmatch(str(name)):
            raise ConfigError(f"{key}: expected a dataset name of letters, digits, '-' or '_'")
        if name == proto["data"]["name"]:
            raise ConfigError(f"{key}: the expression set itself; pretrain on other faces (its images, landmarks "
                              "or labels would leak into the baseline what PAL is meant to add)")
        if not isinstance(entry, dict) or sorted(entry) != sorted(PRETRAINING_KEYS):
            raise ConfigError(f"{key}: expected exactly the keys {', '.join(PRETRAINING_KEYS)}")
        if entry["labels"] not in PRETEXTS:
            raise ConfigError(f"{key}.labels: {entry['labels']!r}; expected one of {', '.join(PRETEXTS)}")
        if not isinstance(entry["train"], dict):
            raise ConfigError(f"{key}.train: expected a mapping of training settings")
        TrainConfig.from_dict({**entry["train"], "data": "-", "pal_weight": 0.0}, where=f"{key}.train")
    if not proto["train"].get("weights"):
        raise ConfigError(f"{where}: train.weights: not set; PAL fine-tunes a pretrained network (paper §IV-B): "
                          "name a weights file, or pretrain/<name>/weights.pt of a `pretraining` entry")


#: Where a pretraining entry writes its weights (``pretrain/<name>/weights.pt``): the folder the train stage
#: depends on as a whole, with ``train.weights``, so a run reruns when any weights it may load change.
PRETRAIN_DIR = "pretrain"
#: The backbone settings a pretraining's weights fix: a configuration that loads them must have the same.
BACKBONE_KEYS = ("arch", "width")


def pretrain_weights(name: str) -> str:
    """The weights file of pretraining entry ``name``: ``pretrain/<name>/weights.pt``."""
    return f"{PRETRAIN_DIR}/{name}/weights.pt"


def _train_default(key: str) -> Any:
    return next(f.default for f in dataclasses.fields(TrainConfig) if f.name == key)


def _check_weights(proto: Mapping, where: str) -> None:
    """Every configuration — ``train``'s defaults and each of every study's (its baseline included) — loads
    weights the train stage depends on (``train.weights``, or a file under ``pretrain/``), and a pretraining's
    weights only with that pretraining's ``arch`` and ``width``: a protocol may compare backbones, each study
    fine-tuning its own pretraining (``set: {arch, width, weights: pretrain/<name>/weights.pt}``)."""
    pre = proto.get("pretraining") or {}
    made = {pretrain_weights(name): name for name in pre}
    default = proto["train"].get("weights")
    checked = [("train", "train.", train_settings(proto))]
    checked += [(f"studies.{s}", "the study's ", conf) for s in proto["studies"] for conf in study_configs(proto, s)]
    for key, owner, conf in checked:
        weights = conf.get("weights")
        if not weights:
            continue
        weights = str(weights)
        if weights.startswith(f"{PRETRAIN_DIR}/") and weights not in made:
            raise ConfigError(f"{where}: {key}.weights {weights!r}: no pretraining writes it; expected one of "
                              f"{', '.join(sorted(made)) or '(no pretraining entry)'}")
        if weights not in made:
            if weights != default:
                raise ConfigError(f"{where}: {key}.weights {weights!r}: the train stage depends only on train.weights "
                                  f"and {PRETRAIN_DIR}/; use train.weights or a pretraining entry's weights")
            continue
        name = made[weights]
        for k in BACKBONE_KEYS:
            trained, used = pre[name]["train"].get(k, _train_default(k)), conf.get(k, _train_default(k))
            if trained != used:
                raise ConfigError(f"{where}: {key}: weights {weights!r} are pretraining.{name}'s ({k} {trained!r}), "
                                  f"but {owner}{k} is {used!r}; a run loads weights of its own {k} only")


#: ``transfer.<name>`` keys: how dataset B is made (as ``data``), and optionally the study whose runs are tested
#: on it and the split (:mod:`palbench.transfer`).
TRANSFER_KEYS = ("command", "input", "args")
TRANSFER_OPTIONAL = {"study": "comparison", "split": "test"}


def _check_transfer(proto: Mapping, where: str) -> None:
    """The optional ``transfer`` section: ``{dataset name: {command, input, args[, study][, split]}}``, one
    ``transfer_data`` + ``transfer`` stage per entry (train on the protocol's data, test on this one)."""
    entries = proto.get("transfer") or {}
    if not isinstance(entries, dict):
        raise ConfigError(f"{where}: transfer: expected a mapping of dataset name -> {{{', '.join(TRANSFER_KEYS)}}}")
    taken = {proto["data"]["name"], *(proto.get("pretraining") or {})}
    for name, entry in entries.items():
        key = f"{where}: transfer.{name}"
        if not NAME_PATTERN.fullmatch(str(name)) or name in taken:
            raise ConfigError(f"{key}: expected a dataset name of letters, digits, '-' or '_' other than "
                              f"{', '.join(sorted(taken))}")
        if not isinstance(entry, dict) or not set(TRANSFER_KEYS) <= set(entry) or \
                set(entry) - set(TRANSFER_KEYS) - set(TRANSFER_OPTIONAL):
            raise ConfigError(f"{key}: expected the keys {', '.join(TRANSFER_KEYS)} and optionally "
                              f"{', '.join(TRANSFER_OPTIONAL)}")
        study = entry.get("study", TRANSFER_OPTIONAL["study"])
        if study not in (proto.get("studies") or {}):
            raise ConfigError(f"{key}.study: {study!r} is not a study of this protocol "
                              f"({', '.join(proto.get('studies') or {}) or 'none'})")
        if entry.get("split", "test") not in ("train", "val", "test"):
            raise ConfigError(f"{key}.split: {entry['split']!r}; expected train, val or test")


def _check_seeds(seeds: Any, where: str) -> None:
    if not isinstance(seeds, list) or not seeds or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ConfigError(f"{where}: seeds: expected a non-empty list of integers >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{where}: seeds: repeated seed in {seeds}")


def _check_noise(priors: dict, where: str) -> list:
    """``priors.landmark_noise``: the σ the priors stage draws (0 = the landmarks as detected) — must hold 0."""
    noise = priors.get("landmark_noise", [0])
    if not isinstance(noise, list) or 0 not in noise:
        raise ConfigError(f"{where}: priors.landmark_noise must be a list containing 0 (the landmarks as "
                          f"detected), got {noise!r}")
    return noise


def _check_studies(proto: Mapping, where: str, noise: list) -> None:
    if not isinstance(proto["studies"], dict) or not proto["studies"]:
        raise ConfigError(f"{where}: studies: expected a mapping of study name -> {{set, vary}}")
    datasets = dataset_paths(proto)
    for name, study in proto["studies"].items():
        if not isinstance(study, dict) or set(study) - set(STUDY_KEYS):
            raise ConfigError(f"{where}: studies.{name}: expected keys among {', '.join(STUDY_KEYS)}")
        if "seeds" in study:
            _check_seeds(study["seeds"], f"{where}: studies.{name}")
        regime = study.get("regime")
        if regime is not None and (not isinstance(regime, dict) or sorted(regime) != ["shortcut", "start"]
                                   or not all(isinstance(v, str) and v for v in regime.values())):
            raise ConfigError(f"{where}: studies.{name}.regime: expected {{start: NAME, shortcut: NAME}} (a cell of "
                              f"the regime map), got {regime!r}")
        try:
            for conf in study_configs(proto, name):
                if conf.get("landmark_noise", 0) not in noise:
                    raise ConfigError(f"landmark_noise {conf['landmark_noise']} is not among priors.landmark_noise "
                                      f"{noise}; add it there")
                if conf.get("data", datasets[0]) not in datasets:
                    raise ConfigError(f"data {conf['data']!r}: not a dataset of this protocol; expected one of "
                                      f"{', '.join(datasets)} (data/<data.name> or data/<a variants entry>)")
                TrainConfig.from_dict({"data": "-", **conf}, where="train")
        except ConfigError as e:
            raise ConfigError(f"{where}: studies.{name}: {e}") from None


def check_reports_section(section: Any, where: str | Path, noise: list | None = None) -> None:
    """``reports``: optional mapping of ``landmark_noise`` (the σ Fig. 4-5 highlight; one the priors stage
    draws) and ``n_images`` (Fig. 7's test images, an integer >= 1)."""
    if section is None:
        return
    check_renamed(section if isinstance(section, dict) else {}, f"{where}: reports", "reports")
    if not isinstance(section, dict) or set(section) - set(REPORT_DEFAULTS):
        raise ConfigError(f"{where}: reports: expected a mapping with keys among {', '.join(REPORT_DEFAULTS)}, "
                          f"got {section!r}")
    sigma, n = section.get("landmark_noise"), section.get("n_images", 1)
    if sigma is not None and (isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or sigma < 0):
        raise ConfigError(f"{where}: reports.landmark_noise: expected a landmark-noise σ >= 0, got {sigma!r}")
    if sigma is not None and noise is not None and sigma not in noise:
        raise ConfigError(f"{where}: reports.landmark_noise {sigma} is not among priors.landmark_noise {noise}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"{where}: reports.n_images: expected an integer >= 1, got {n!r}")


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
    """The configuration with PAL settings reset to the defaults (:func:`train_settings`) when PAL is off (they
    change nothing)."""
    conf = dict(conf)
    if conf.get("pal_weight", defaults.get("pal_weight", PalConfig.pal_weight)) == 0:
        for key in PAL_KEYS:
            if key in defaults:
                conf[key] = defaults[key]
            else:
                conf.pop(key, None)
    return conf


def train_settings(proto: Mapping) -> dict:
    """A protocol's (or ``params.yaml``'s) effective training settings: the settings of every configuration that
    a study does not change. Its ``train`` section, with the landmark noise σ (a setting the noise study varies;
    0, the landmarks as detected, unless ``train`` sets it); any other key a run leaves out takes
    :class:`~palbench.config.TrainConfig`'s default."""
    return {"landmark_noise": 0, **proto["train"]}


def study_configs(proto: Mapping, study: str) -> list[dict]:
    """The canonical configurations of a study, its baseline first."""
    spec = proto["studies"][study]
    defaults = train_settings(proto)
    base = {**defaults, **(spec.get("set") or {})}
    confs = [canonical({**base, "pal_weight": 0}, defaults)]
    for point in _points(spec.get("vary") or {}):
        conf = canonical({**base, **point}, defaults)
        if conf not in confs:
            confs.append(conf)
    return confs


def study_seeds(proto: Mapping, study: str) -> list[int]:
    """The seeds of a study: its own ``seeds``, or the protocol's."""
    return list(proto["studies"][study].get("seeds") or proto["seeds"])


def grid(proto: Mapping) -> list[dict]:
    """Every (study, configuration) pair: ``study, config, baseline (bool), settings`` — the settings being
    the canonical configuration, ``config`` its name (:func:`~palbench.config.config_name`); a configuration
    appears once per study that uses it."""
    defaults = train_settings(proto)
    rows = []
    for study in proto["studies"]:
        for i, conf in enumerate(study_configs(proto, study)):
            rows.append({"study": study, "config": config_name(conf, defaults), "baseline": i == 0, "settings": conf})
    return rows


#: The group of the baseline configurations (``pal_weight`` 0), which every study compares against.
BASELINE_GROUP = "baseline"


def expand_runs(proto: Mapping) -> dict[str, dict[str, dict]]:
    """``{group: {configuration name: train overrides}}``: every distinct configuration once, in the group of
    the first study that uses it, the baselines in :data:`BASELINE_GROUP`.

    One DVC stage per group trains its configurations × the protocol's ``seeds`` in one process (into
    ``runs/<group>/<config>/s<seed>``, :func:`~palbench.config.run_name`): an interpreter start with torch and
    the decoding of the images cost ~7 s per process on 2 cores, which one stage per configuration paid
    25 times in the built-in benchmark. A study edited reruns its own group (and a group it adds
    configurations to), not the others. Overrides hold only what differs from ``train`` (``landmark_noise``
    included), so ``dvc exp run -S train.epochs=…`` still reaches every run. A configuration that some study
    runs with other seeds than the protocol's gets ``seeds``: every seed of the studies that use it
    (:func:`config_seeds` reads them back)."""
    defaults = train_settings(proto)
    runs: dict[str, dict[str, dict]] = {}
    seen: dict[str, dict] = {}
    seeds: dict[str, list[int]] = {}
    for row in grid(proto):
        conf, name = row["settings"], row["config"]
        seeds[name] = seeds.get(name, []) + [s for s in study_seeds(proto, row["study"]) if s not in seeds.get(name, [])]
        if name in seen:
            if seen[name] != conf:  # two configurations with one name would share run folders
                raise ConfigError(f"configurations {seen[name]} and {conf} have the same name {name!r}")
            continue
        seen[name] = conf
        group = BASELINE_GROUP if row["baseline"] else row["study"]
        runs.setdefault(group, {})[name] = {k: v for k, v in conf.items() if v != defaults.get(k)}
    for confs in runs.values():
        for name, overrides in confs.items():
            if seeds[name] != list(proto["seeds"]):
                overrides["seeds"] = seeds[name]
    return dict(sorted(runs.items(), key=lambda kv: kv[0] != BASELINE_GROUP))  # the baselines first


def config_seeds(params: Mapping, config: str, group: str | None = None) -> list[int]:
    """The seeds configuration ``config`` (of ``group``, default: looked up) is trained with: its ``runs`` entry's
    ``seeds``, or the protocol's."""
    group = group if group is not None else run_configs(params)[config]
    return list(params["runs"][group][config].get("seeds") or params["seeds"])


def run_configs(params: Mapping) -> dict[str, str]:
    """``{configuration name: its group}`` of ``params["runs"]``, in order."""
    return {config: group for group, confs in params["runs"].items() for config in confs}


def run_names(params: Mapping) -> list[str]:
    """Every run of the grid (``<group>/<config>/s<seed>``), configurations in ``runs`` order, then seeds."""
    return [run_name(config, seed, group) for config, group in run_configs(params).items()
            for seed in config_seeds(params, config, group)]


def params_from_protocol(proto: Mapping) -> dict:
    """The content of ``params.yaml`` for a protocol: its sections, ``launcher`` and the expanded ``runs``."""
    body = {k: proto[k] for k in proto if k != "runs"}
    body.setdefault("launcher", DEFAULT_LAUNCHER)
    body.setdefault("jobs", DEFAULT_JOBS)  # dvc.yaml's train stages: --jobs
    body.setdefault("pretraining", {})  # dvc.yaml's pretrain stages iterate over it (none for an empty one)
    body.setdefault("transfer", {})  # and its transfer stages
    body["variants"] = {name: variant_args(proto, name) for name in proto.get("variants") or {}}  # variant_data
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
    body = yaml.safe_dump(params_from_protocol(proto), sort_keys=False, default_flow_style=None, width=110,
                          allow_unicode=True)
    path = Path(path)
    write_text(path, header + body)
    return path


def read_params(path: str | Path = "params.yaml", check: bool = True) -> dict:
    """Read ``params.yaml`` — the one reader, for the CLI, ``aggregate`` and the notebooks — and (``check``)
    validate every section and verify that ``runs`` is the expansion of its studies."""
    path = Path(path)
    params = read_yaml(path, "not found; write it with `palbench protocol NAME` (e.g. synthetic-cpu)",
                       f"a mapping with keys {', '.join(SECTIONS)}")
    if check:
        check_params(params, str(path))
    return params


def check_params(params: Any, where: str) -> None:
    """:func:`validate_protocol` and ``runs`` == the expansion of ``studies``."""
    validate_protocol(params, where)
    expected = expand_runs(params)
    if params.get("runs") != expected:
        have = params.get("runs") if isinstance(params.get("runs"), dict) else {}
        stale = sorted(set(have) ^ set(expected)) or sorted(k for k in expected if have.get(k) != expected[k])
        raise ConfigError(f"{where}: runs do not match studies (e.g. {', '.join(stale[:3])}); "
                          f"regenerate them with `palbench protocol --refresh`")
