"""``palbench protocol new NAME --folder LABELS.csv``: a protocol for a folder of labelled photos.

The protocol it writes (``benchmarks/protocols/NAME.yaml`` of the project the user stands in) is the whole
flow, so that ``palbench protocol NAME && dvc repro`` needs no hand edit:

- ``data``: ``palbench import folder`` of the CSV with ``--align dlib`` (each photo cropped to its face from
  its 68 landmarks, eye line levelled; :mod:`palbench.data.align`), subject-disjoint splits when the CSV has
  a ``subject`` column (shares sized so that val and test each get subjects), and ``data.input`` the folder
  holding the CSV and the images, so that DVC re-imports when an image changes;
- ``landmarks``: the moved landmarks of the alignment (``file``), or dlib on the whole photos without it;
- ``priors``: the landmarks as found (the comparison study needs no noise set);
- ``train``: the backbone asked for (``--backbone``: any ``--arch`` name of ``palbench train``, with its
  ``--width``, ``--size`` and ``--layer``; :func:`backbone_settings`), started from ``--weights`` (any state dict)
  or, by default, from the built-in benchmark's pretraining on synthetic faces (``pretraining: synth-faces``),
  with a number of epochs sized to a CPU budget from the number of training images;
- ``studies``: the comparison (baseline vs PAL); others (:data:`STUDIES`) on request.

Nothing here imports torch; the CSV is read with the ``csv`` module (a header and one pass over the rows).
"""

from __future__ import annotations

import csv
import datetime
import math
import os
import re
from pathlib import Path
from typing import Any

from palbench.config.names import ARCHS, CROP_SIZE, FACE_ARCHS, MARGIN, check_size, check_width, dlib_model_file, width_family
from palbench.config.protocol import NAME_PATTERN, expand_runs, validate_protocol
from palbench.errors import ConfigError, DataError

#: Backbones ``protocol new`` sizes: width (channels x width; a narrow network for CPUs), input size, PAL layer
#: (the last conv block before the 1/8-resolution pooling, like the paper's conv10 of VGG16). 48 px: the
#: built-in benchmark's pretraining recipe (12 epochs at lr 1e-3) learns there (val 67.8-71.2% on two
#: machines); at 64 px the same recipe stayed at chance (train CE 1.945 after 12 epochs,
#: benchmarks/calibration/photos_start_64px.md), so the photos are trained at the size their start learned.
BACKBONES: dict[str, dict[str, Any]] = {
    "vgg16_bn": {"width": 0.125, "size": 48, "layer": "conv10"},
    "vgg16": {"width": 0.125, "size": 48, "layer": "conv10"},
    "resnet50": {"width": 0.25, "size": 48, "layer": "layer2.3"},
    # dlib's face ResNet takes no side under 103 px (DLIB_FACE_MIN_SIZE): the crops' own 112; its last block at
    # the ~1/8 resolution, like resnet50's layer2.3 (13×13 at 112 px, 17×17 at dlib's 150). It starts from dlib's
    # own file (trained on ~3M real faces), not from a synthetic pretraining (benchmarks/calibration/photos_start.md).
    # Its lr: Adam steps of 2e-4 (the default for given weights) are larger than many of dlib's conv weights
    # (layer5's average |w| is 5e-4) and training stayed at chance; 2e-5 fine-tunes it (photos_start.md).
    "dlib_face_resnet": {"width": 1.0, "size": CROP_SIZE, "layer": "layer2.3", "lr": 2e-5},
}
#: Seconds per training image and epoch (forward, PAL backward, one val pass) at width 0.25 and 112 px on a
#: 2-core CPU (benchmarks/speed/results/train_step_*.md: CE+PAL steps of 14 ms/image for VGG16, 22 for
#: ResNet-50, plus val); the cost scales with width² and size², with a floor for decoding and augmentation.
SECONDS_PER_IMAGE = {"vgg16_bn": 0.018, "vgg16": 0.016, "resnet50": 0.028,
                     # at its only width, 1: 7 s a PAL epoch over 560 crops at 112 px (photos_start.md)
                     "dlib_face_resnet": 0.013}
#: The width at which :data:`SECONDS_PER_IMAGE` was measured, where it is not 0.25.
REFERENCE_WIDTH = {"dlib_face_resnet": 1.0}
#: The start ``protocol new`` trains when no ``--backbone`` is given: the one with the higher test accuracy in
#: benchmarks/calibration/photos_start.csv (dlib's face network, fine-tuned, over the synthetic-faces
#: pretraining of VGG16-BN ×0.125 and over training from scratch; tests/test_photos_pipeline.py checks the two agree).
DEFAULT_BACKBONE = "dlib_face_resnet"
#: Any other builder name of ``ARCHS``: width ×0.25 where its family has a width knob (as synthetic-backbones'
#: ResNet18, ConvNeXt-T and Swin-T), else 1; 48 px; the PAL layer from ``--layer``; and ResNet-50's cost per
#: image, the highest of the three measured, so that the estimate errs towards fewer epochs.
OTHER_WIDTH, OTHER_SIZE, OTHER_SECONDS_PER_IMAGE = 0.25, 48, SECONDS_PER_IMAGE["resnet50"]
FLOOR_SECONDS_PER_IMAGE = 0.003
#: The studies ``--studies`` may add, as ``protocol`` studies sections (``layers`` lists VGG layers only).
STUDIES: dict[str, dict[str, Any]] = {
    "comparison": {"title": "Baseline vs PAL", "vary": {"pal_weight": [1.0]}},
    "ablation": {"title": "Attribution method x channel strategy", "vary": [
        {"method": "grad", "strategy": "all", "c1": 1.0}, {"method": "grad", "strategy": "mean", "c1": 1.0},
        {"method": "grad_input", "strategy": "mean", "c1": 1.0}, {"method": "grad", "strategy": "mean", "c1": 0.5},
        {"method": "grad_input", "strategy": "mean", "c1": 0.5}]},
    "channels": {"title": "Constrained channels C1 (Mean of C1)", "vary": {"c1": [0.25, 0.5, 0.75, 1.0]}},
    "noise": {"title": "Landmark noise σ (pixels of a 224 crop)", "vary": {"landmark_noise": [0, 1, 2, 3, 4, 5]}},
    "layers": {"title": "PAL at each VGG conv layer (Grad, Mean of half)", "set": {"method": "grad", "c1": 0.5},
               "vary": {"layer": [f"conv{i}" for i in range(1, 14)]}},
}
#: The built-in benchmark's pretraining (synthetic faces of other people, their expression labels), the faces
#: rendered at 128 px and cropped from their exact landmarks as the photos are (``synth --align``): the
#: default starting point when no ``--weights`` is given (its arch, width and size follow ``train``). Framed
#: like the photos it beats the faces as rendered by 18 points of test accuracy, and training from scratch
#: by 58, on photos made from other synthetic faces (benchmarks/calibration/photos_start.md).
SYNTH_PRETRAINING = {
    "command": "synth",
    "args": {"n_train": 4000, "n_val": 400, "n_test": 7, "seed": 1, "decoy_p": 0.0, "decoy_p_test": 0.0,
             "size": 128, "align": True, "crop_size": CROP_SIZE, "margin": MARGIN},
    "labels": "label",
    "train": {"epochs": 12, "batch_size": 32, "lr": 0.001, "lr_power": 0.9, "augment": True, "max_rotation": 0.0,
              "seed": 0},
}


def read_labels(csv_path: Path) -> tuple[int, int | None, list[str]]:
    """``(rows, distinct subjects or None without a subject column, columns)`` of the labels CSV."""
    try:
        with open(csv_path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = [c.strip() for c in next(reader, [])]
            if "subject" in header:
                col = header.index("subject")
                rows = [r for r in reader if any(v.strip() for v in r)]
                subjects: int | None = len({r[col].strip() for r in rows if len(r) > col})
            else:
                rows, subjects = [r for r in reader if any(v.strip() for v in r)], None
    except FileNotFoundError:
        raise DataError(f"{csv_path}: not found; expected the CSV listing the photos (path,label[,subject])") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{csv_path}: unreadable CSV ({e})") from None
    if not header or not rows:
        raise DataError(f"{csv_path}: no rows; expected a header path,label[,subject][,split] and one row per photo")
    return len(rows), subjects, header


def split_fractions(n_rows: int, subjects: int | None) -> tuple[float, float, float]:
    """Train/val/test shares: 10% each for val and test, more when there are few subjects (each of val and
    test gets at least two subjects, or 20 images without subjects), at most 20% each."""
    units, least = (subjects, 2) if subjects else (n_rows, 20)
    if units < 3 * least // 2 + 1:
        what = f"{subjects} subjects" if subjects else f"{n_rows} photos"
        raise DataError(f"{what}: too few for subject-disjoint train, val and test splits (need at least "
                        f"{3 * least // 2 + 1})")
    share = min(0.2, max(0.1, least / units))
    return round(1 - 2 * share, 3), round(share, 3), round(share, 3)


def cpu_epochs(n_train: int, backbone: str, width: float, size: int, runs: int, budget_minutes: float) -> int:
    """Epochs so that ``runs`` trainings of ``n_train`` images fit ``budget_minutes`` on a 2-core CPU
    (estimate: :data:`SECONDS_PER_IMAGE`), between 1 and 60."""
    per_image = (SECONDS_PER_IMAGE.get(backbone, OTHER_SECONDS_PER_IMAGE) * (width / REFERENCE_WIDTH.get(backbone, 0.25)) ** 2
                 * (size / 112) ** 2)
    per_image = max(FLOOR_SECONDS_PER_IMAGE, per_image)
    epochs = budget_minutes * 60 / (runs * max(n_train, 1) * per_image)
    return int(min(60, max(1, math.floor(epochs))))


def backbone_settings(backbone: str, width: float | None = None, size: int | None = None,
                      layer: str | None = None) -> dict[str, Any]:
    """``{"width", "size", "layer"}`` of the backbone ``protocol new`` trains: those given, else the sized ones of
    :data:`BACKBONES`, else ``OTHER_WIDTH`` (``1`` without a width knob) and ``OTHER_SIZE``; an arch outside
    :data:`BACKBONES` needs ``layer``. Checked without torch: a name outside ``ARCHS``, a width outside (0, 1]
    or below 1 without a width knob, or no layer raise a one-line ``ConfigError`` naming the flag."""
    if backbone not in ARCHS:
        raise ConfigError(f"--backbone {backbone!r}: expected a torchvision classification model (an --arch name of "
                          f"palbench train), one of {', '.join(ARCHS)}")
    sized = BACKBONES.get(backbone, {"width": OTHER_WIDTH if width_family(backbone) else 1.0, "size": OTHER_SIZE})
    settings = {"width": sized["width"] if width is None else width, "size": sized["size"] if size is None else size,
                "layer": sized.get("layer") if layer is None else layer}
    try:
        check_width(backbone, settings["width"])
    except ConfigError as e:
        raise ConfigError(f"--{e}") from None  # "--width: ..."
    if isinstance(settings["size"], bool) or not isinstance(settings["size"], int) or settings["size"] < 32:
        raise ConfigError(f"--size: expected an integer >= 32 (pixels), got {settings['size']!r}")
    try:
        check_size(backbone, settings["size"])
    except ConfigError as e:
        raise ConfigError(f"--{e}") from None  # "--size: vit_b_32 cuts the image into 32×32 patches; ..."
    if not settings["layer"]:
        raise ConfigError(f"--backbone {backbone}: no default PAL layer; give --layer NAME (`palbench layers --arch "
                          f"{backbone} --width {settings['width']:g} --size {settings['size']}` lists them)")
    return settings


def _project_path(path: Path, root: Path) -> str:
    """``path`` relative to the project ``root`` when inside it (portable), else absolute."""
    path = path.resolve()
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _input_folder(csv_path: Path, images_root: Path, root: Path) -> Path:
    """The one folder DVC tracks for the dataset stage: holds both the CSV and the images."""
    folder = Path(os.path.commonpath([csv_path.resolve(), images_root.resolve()]))
    if csv_path.resolve() == folder:
        folder = folder.parent
    project = root.resolve()
    if folder == project or folder in project.parents or folder == Path(folder.anchor):
        raise ConfigError(f"{csv_path} and {images_root}: their common folder {folder} holds the project itself; "
                          "put the CSV inside the images folder (e.g. external/NAME/labels.csv), so that DVC "
                          "tracks that one folder")
    return folder


def new_protocol(
    name: str,
    folder: str | os.PathLike,
    images_root: str | os.PathLike | None = None,
    backbone: str = DEFAULT_BACKBONE,
    width: float | None = None,
    size: int | None = None,
    layer: str | None = None,
    weights: str | None = None,
    studies: list[str] | None = None,
    seeds: list[int] | None = None,
    budget_minutes: float = 15.0,
    epochs: int | None = None,
    align: bool = True,
    transfer: list[str | os.PathLike] | None = None,
    root: str | os.PathLike = ".",
) -> tuple[dict, str]:
    """The protocol for the photos listed in ``folder`` (a CSV) and the comment block that heads its file.

    Args:
        name: protocol (and dataset) name.
        folder: the labels CSV (``path,label[,subject][,split]``, paths relative to ``images_root``).
        images_root: where the CSV's paths start (default: the CSV's folder).
        backbone: any builder name of ``ARCHS`` (``vgg16_bn``, ``resnet50``, ``convnext_tiny``, ...).
        width, size, layer: the backbone's settings (:func:`backbone_settings`); default: :data:`BACKBONES`'
            for its three, else width ×0.25 (×1 without a width knob) at 48 px, and ``layer`` is required.
        weights: a state dict to start from; default: the synthetic-faces pretraining (dlib_face_resnet: dlib's own
            installed file).
        studies: names from :data:`STUDIES` (default: comparison).
        seeds: default ``[0, 1, 2]``.
        budget_minutes: CPU minutes the training stages may take (sets the epochs).
        epochs: fixed epochs instead of the budget's.
        align: crop the photos to their faces (default); else train whole photos.
        transfer: labels CSVs of other photo folders to test the runs on (a ``transfer`` entry each, named
            after the CSV's folder; most of their photos go to the test split).
        root: the project folder (paths inside it are written relative to it).
    """
    if not NAME_PATTERN.fullmatch(name) or name == "new":
        raise ConfigError(f"protocol name {name!r}: expected letters, digits, '-' or '_' (and not 'new')")
    spec = backbone_settings(backbone, width, size, layer)
    if weights is None and backbone in FACE_ARCHS:  # its authors' weights: the installed file, never downloaded
        weights = str(dlib_model_file())
    studies = studies or ["comparison"]
    unknown = [s for s in studies if s not in STUDIES]
    if unknown:
        raise ConfigError(f"--studies: unknown {', '.join(unknown)}; expected some of {', '.join(STUDIES)}")
    if "layers" in studies and not backbone.startswith(("vgg16", "vgg19")):  # VGG11 / VGG13: 8 / 10 convs
        raise ConfigError("--studies layers: lists VGG layers (conv1..conv13); not for " + backbone)
    root = Path(root)
    csv_path = Path(folder)
    images = Path(images_root) if images_root is not None else csv_path.parent
    n_rows, subjects, header = read_labels(csv_path)
    if not images.is_dir():
        raise DataError(f"{images}: not a folder; expected the folder the CSV's image paths start from")
    fractions = split_fractions(n_rows, subjects) if "split" not in header else None
    seeds = seeds or [0, 1, 2]
    n_train = round(n_rows * (fractions[0] if fractions else 0.8))
    fixed = epochs is not None
    aligning = {"align": "dlib", "crop_size": CROP_SIZE, "margin": MARGIN, "drop_no_face": False} if align else {}
    args: dict[str, Any] = {}
    if images_root is not None:
        args["images_root"] = _project_path(images, root)
    if fractions:
        args["fractions"] = ",".join(str(f) for f in fractions)
    args.update({"seed": 0, "workers": 1, **aligning})
    train = {"arch": backbone, "width": spec["width"], "weights": weights or "pretrain/synth-faces/weights.pt",
             "size": spec["size"], "epochs": epochs or 1, "batch_size": 32,
             "lr": BACKBONES.get(backbone, {}).get("lr", 0.0005 if weights is None else 0.0002),
             "lr_power": 0.9, "balanced": False, "augment": True, "layer": spec["layer"], "method": "grad_input",
             "strategy": "mean", "c1": 0.5, "pal_weight": 1.0, "prior_sigma": 1.0}
    varied = [STUDIES[s]["vary"] for s in studies if isinstance(STUDIES[s]["vary"], dict)]
    noise = sorted({0, *[n for vary in varied for n in vary.get("landmark_noise", [])]})
    proto: dict[str, Any] = {
        "protocol": name,
        "data": {"name": name, "command": f"import folder {_project_path(csv_path, root)}",
                 "input": _project_path(_input_folder(csv_path, images, root), root), "args": args},
    }
    if weights is None:
        pre = {**SYNTH_PRETRAINING,
               "train": {"arch": backbone, "width": spec["width"], "size": spec["size"], **SYNTH_PRETRAINING["train"]}}
        proto["pretraining"] = {"synth-faces": pre}
    proto.update({
        "landmarks": {"backend": "file"} if align else {"backend": "dlib", "aligned": False},
        "priors": {"landmark_noise": noise, "seed": 0, "preview": 8},
        "train": train,
        "evaluate": {"split": "test"},
        "seeds": seeds,
        "studies": {s: STUDIES[s] for s in studies},
        "reports": {"n_images": 7, **({"landmark_noise": 4} if 4 in noise else {})},  # Fig. 4-5's σ
    })
    if transfer:
        proto["transfer"] = _transfer_entries(transfer, name, studies[0], aligning, root)
    n_configs = sum(len(group) for group in expand_runs(proto).values())
    if not fixed:
        epochs = train["epochs"] = cpu_epochs(n_train, backbone, spec["width"], spec["size"], n_configs * len(seeds),
                                              budget_minutes)
    sized = (f"fixed at {epochs} (--epochs)" if fixed else
             f"{epochs}, sized to a {budget_minutes:g}-minute CPU budget for {n_configs} configurations x "
             f"{len(seeds)} seeds on ~{n_train} training photos (an estimate for a 2-core CPU)")
    header_lines = [
        f"{name}: the labelled photos of {_project_path(csv_path, root)} ({n_rows} rows"
        + (f", {subjects} subjects)" if subjects else ", no subject column: one person may be in train and test)"),
        f"written by `palbench protocol new` on {datetime.date.today().isoformat()}; edit freely, then",
        f"`palbench protocol {name} && dvc repro`.",
        "import -> " + ("align (dlib, face crops) -> landmarks (the moved points)" if align else "landmarks (dlib)")
        + " -> priors -> train -> aggregate -> reports.",
        f"epochs: {sized}.",
        *([f"transfer: the comparison runs are also tested on {', '.join(proto['transfer'])} (other photos)."]
          if transfer else []),
        "Starting point: " + (f"dlib's face network, trained on ~3M real faces ({weights})." if backbone in FACE_ARCHS
                              else f"{weights}." if weights else
                              "the synthetic-faces pretraining (faces, not your photos' people or kind of image)."),
    ]
    return proto, "".join(f"# {line}\n" for line in header_lines)


def holdout_fractions(n_rows: int, subjects: int | None) -> tuple[float, float, float]:
    """Shares of a dataset only tested on (a ``transfer`` entry): most of it in test, train and val each one
    subject (or 5% of the photos without subjects), as every split must hold an image."""
    units = subjects or n_rows
    if units < 3:
        raise DataError(f"{units} {'subjects' if subjects else 'photos'}: too few for train, val and test splits")
    share = round(max(0.05, 1 / units + 1e-3), 3) if subjects else 0.05
    return share, share, round(1 - 2 * share, 3)


def _transfer_entries(csvs: list, name: str, study: str, aligning: dict, root: Path) -> dict[str, dict]:
    """``transfer`` entries for the labels CSVs ``csvs``, named after their folders."""
    entries: dict[str, dict] = {}
    for csv_path in map(Path, csvs):
        n_rows, subjects, header = read_labels(csv_path)
        key = re.sub(r"[^A-Za-z0-9_-]+", "-", csv_path.resolve().parent.name).strip("-") or "other"
        while key == name or key in entries:
            key += "-b"
        args: dict[str, Any] = {}
        if "split" not in header:
            args["fractions"] = ",".join(str(f) for f in holdout_fractions(n_rows, subjects))
        entries[key] = {"command": f"import folder {_project_path(csv_path, root)}",
                        "input": _project_path(_input_folder(csv_path, csv_path.parent, root), root),
                        "args": {**args, "seed": 0, "workers": 1, **aligning}, "study": study, "split": "test"}
    return entries


def write_new_protocol(proto: dict, header: str, root: str | os.PathLike = ".", force: bool = False) -> Path:
    """Validate ``proto`` and write ``<root>/benchmarks/protocols/<name>.yaml`` (refused when it exists,
    unless ``force``)."""
    import yaml

    from palbench.io import write_text

    path = Path(root) / "benchmarks" / "protocols" / f"{proto['protocol']}.yaml"
    validate_protocol(proto, str(path))
    if path.exists() and not force:
        raise ConfigError(f"{path}: exists; choose another NAME or pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump(proto, sort_keys=False, default_flow_style=None, width=110, allow_unicode=True)
    write_text(path, header + body)
    return path
