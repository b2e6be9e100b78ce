"""Claims (d) and (e) of Fig. 3: the layers grouped by the backbone's max-pools, and what the two claims compare.

The paper's Fig. 3 puts PAL at each convolutional layer of VGG16 and marks the layers that feed a max-pool.
Claim (d) reads "the last layers rather than the first", claim (e) "layers that precede a max-pooling layer".
Both are read on the backbone's own layer catalogue (:func:`palbench.reports.maps.layer_positions` rows, or
``(name, before_pool)`` pairs, in input → output order), cut into blocks after every layer that feeds a
max-pool (VGG16's five blocks conv1–2, conv3–4, conv5–7, conv8–10, conv11–13): the *early* layers are the
first two blocks, the *late* layers the last two; a pre-pool layer's *neighbours* are the layers beside it that
feed none. The catalogue is an argument, so that the claims import no torch (the model catalogue does,
:mod:`palbench.models.catalogue`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from palbench.claims.evidence import Arm, Evidence, Part, absent, mean_arm, no_study


def _span(layers: Sequence[str]) -> str:
    return f"{layers[0]}–{layers[-1]}" if len(layers) > 1 else layers[0]


def _catalogue(catalogue: Sequence[Mapping | tuple] | None) -> list[tuple[str, bool]]:
    """``[(layer, feeds a max-pool)]`` from :func:`palbench.reports.maps.layer_positions` rows or pairs."""
    rows = []
    for row in catalogue or []:
        name, pool = (row["name"], row["before_pool"]) if isinstance(row, Mapping) else row
        rows.append((str(name), bool(pool)))
    return rows


def layer_blocks(catalogue: Sequence[Mapping | tuple]) -> list[list[str]]:
    """The catalogue cut after every layer that feeds a max-pool: VGG16's five blocks conv1–2, conv3–4,
    conv5–7, conv8–10, conv11–13 (layers after the last pool form a last block)."""
    blocks, current = [], []
    for name, pool in _catalogue(catalogue):
        current.append(name)
        if pool:
            blocks.append(current)
            current = []
    return blocks + ([current] if current else [])


def early_and_late(catalogue: Sequence[Mapping | tuple]) -> tuple[list[str], list[str]]:
    """``(early, late)`` layers: the first and the last two blocks of :func:`layer_blocks` (one block each
    with fewer than four blocks; none with fewer than two)."""
    blocks = layer_blocks(catalogue)
    k = min(2, len(blocks) // 2)
    if k == 0:
        return [], []
    return [n for b in blocks[:k] for n in b], [n for b in blocks[-k:] for n in b]


def pool_neighbours(catalogue: Sequence[Mapping | tuple], studied: Sequence[str]) -> dict[str, list[str]]:
    """``{studied pre-pool layer: its studied immediate neighbours in the catalogue that feed no max-pool}``,
    for the pre-pool layers that have at least one."""
    rows = _catalogue(catalogue)
    out = {}
    for i, (name, pool) in enumerate(rows):
        if not pool or name not in studied:
            continue
        near = [rows[j][0] for j in (i - 1, i + 1) if 0 <= j < len(rows) and not rows[j][1] and rows[j][0] in studied]
        if near:
            out[name] = near
    return out


def studied_layers(ev: Evidence) -> dict[str, dict]:
    """``{layer: configuration}`` of the layers study's PAL configurations (empty without the study)."""
    if not ev.has_study("layers"):
        return {}
    return {str(conf["layer"]): conf for conf in ev.study("layers")[1:]}


def _layers_unavailable(ev: Evidence, catalogue: Sequence | None) -> str:
    if not ev.has_study("layers"):
        return no_study("layers", ev.params.get("protocol", "?"))
    if not catalogue:
        return "no layer catalogue was given (the order of the layers and their max-pools)"
    unknown = [layer for layer in studied_layers(ev) if layer not in dict(_catalogue(catalogue))]
    if unknown:
        return f"studied layer(s) {', '.join(unknown)} not in the backbone's catalogue"
    others = {repr(sorted((k, repr(v)) for k, v in c.items() if k != "layer")) for c in ev.study("layers")[1:]}
    if len(others) > 1 or len(studied_layers(ev)) < len(ev.study("layers")) - 1:
        return "the `layers` study varies more than the layer"
    return ""


def _layer_mean(ev: Evidence, label: str, layers: Sequence[str]) -> Arm:
    confs = studied_layers(ev)
    return mean_arm(label, [ev.arm(f"PAL at {layer}", confs[layer]) for layer in layers])


def claim_d(ev: Evidence, catalogue: Sequence | None) -> list[Part]:
    """(d) Per seed, the mean over the studied late layers − the mean over the studied early layers."""
    name = "late − early layers"
    why = _layers_unavailable(ev, catalogue)
    if why:
        return [Part("d", name, absent("late layers", why), absent("early layers", why))]
    early, late = early_and_late(catalogue)
    arms = []
    for group, layers in (("late", late), ("early", early)):
        studied = [layer for layer in layers if layer in studied_layers(ev)]
        label = f"{group} layers ({_span(layers) if layers else 'none'})"
        if not layers:
            arms.append(absent(label, "the catalogue has fewer than two max-pool blocks: no early and late layers"))
        elif not studied:
            arms.append(absent(label, f"no {group} layer ({', '.join(layers)}) studied; add one to "
                                      "studies.layers.vary.layer"))
        else:
            arms.append(_layer_mean(ev, f"{label}, mean of studied {', '.join(studied)}", studied))
    return [Part("d", name, *arms)]


def claim_e(ev: Evidence, catalogue: Sequence | None) -> list[Part]:
    """(e) Per seed, the mean over studied pre-pool layers − the mean over their studied neighbours."""
    name = "pre-pool − neighbouring layers"
    why = _layers_unavailable(ev, catalogue)
    if why:
        return [Part("e", name, absent("pre-pool layers", why), absent("neighbours", why), claimed="<")]
    rows = _catalogue(catalogue)
    studied = list(studied_layers(ev))
    pairs = pool_neighbours(catalogue, studied)
    if not pairs:
        pre = [n for n, pool in rows if pool and n in studied]
        index = {n: i for i, (n, _) in enumerate(rows)}
        wanted = [rows[j][0] for p in pre for j in (index[p] - 1, index[p] + 1)
                  if 0 <= j < len(rows) and not rows[j][1]]
        why = (f"no studied neighbour of the studied pre-pool layers {', '.join(pre)}: add one of "
               f"{', '.join(dict.fromkeys(wanted))} to studies.layers.vary.layer" if pre else
               f"no studied layer feeds a max-pool ({', '.join(n for n, pool in rows if pool)})")
        return [Part("e", name, absent("pre-pool layers", why), absent("neighbours", why), claimed="<")]
    near = [n for n, _ in rows if any(n in v for v in pairs.values())]
    return [Part("e", name, _layer_mean(ev, f"pre-pool layers, mean of {', '.join(pairs)}", list(pairs)),
                 _layer_mean(ev, f"their neighbours, mean of {', '.join(near)}", near), claimed="<")]


def layer_grouping(params: Mapping, catalogue: Sequence[Mapping | tuple] | None) -> pd.DataFrame:
    """The grouping claims (d) and (e) use, one row per catalogue layer: ``layer, block, feeds max-pool,
    (d) group`` (early / late / ''), ``(e) role`` (pre-pool / neighbour / ''), ``studied``."""
    ev = Evidence(pd.DataFrame(), params)
    studied = list(studied_layers(ev))
    early, late = early_and_late(catalogue or [])
    pairs = pool_neighbours(catalogue or [], studied)
    near = {n for v in pairs.values() for n in v}
    pools, rows = dict(_catalogue(catalogue)), []
    for b, block in enumerate(layer_blocks(catalogue or []), start=1):
        for layer in block:
            rows.append({"layer": layer, "block": b, "feeds max-pool": pools[layer],
                         "(d) group": "early" if layer in early else "late" if layer in late else "",
                         "(e) role": _role(layer, pools[layer], layer in studied, pairs, near),
                         "studied": layer in studied})
    return pd.DataFrame(rows, columns=["layer", "block", "feeds max-pool", "(d) group", "(e) role", "studied"])


def _role(layer: str, pool: bool, studied: bool, pairs: Mapping[str, list[str]], near: set[str]) -> str:
    if layer in pairs:
        return "pre-pool"
    if pool and studied:
        return "pre-pool, no studied neighbour (left out)"
    return "neighbour" if layer in near else ""
