"""The paper's seven comparative claims as data: what each says, where the paper says it, and which studies'
runs test it.

What each claim compares (its *parts*) is built from the runs by :mod:`palbench.claims.parts` and
:mod:`palbench.claims.layers`; this module is the one place that says which claims there are and which
studies they need (:data:`CLAIM_STUDIES` is derived from :data:`CLAIMS`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Claim:
    """One claim of the paper: ``id`` (a–g), ``statement`` (in the paper's words), ``section`` (where the
    paper makes it) and the ``studies`` (protocol keys) whose runs test it."""

    id: str
    statement: str
    section: str
    studies: tuple[str, ...]


CLAIMS: dict[str, Claim] = {c.id: c for c in (
    Claim("a", "PAL improves on the baseline: the protocol's default PAL configuration beats cross-entropy alone",
          "§IV-C.3 (Tables I–II), §IV-D (Table III)", ("comparison", "ablation", "channels")),
    Claim("b", "Grad × Input works better than Grad whichever channel strategy is used",
          "§IV-C.2, Table I", ("ablation",)),
    Claim("c", "Forcing all channels to resemble the prior is too strong a constraint: All Channels is worse "
          "than Mean and than Mean of half (Grad rows)", "§IV-C.3, Table I", ("ablation",)),
    Claim("d", "PAL gives an important performance boost when applied to the last layers rather than the first",
          "§IV-C.1, Fig. 3", ("layers",)),
    Claim("e", "Layers that precede a max-pooling layer do worse than their neighbours (sparse attribution maps)",
          "§IV-C.1, Fig. 3", ("layers",)),
    Claim("f", "Correct landmarks (σ = 0) work best, accuracy decreases as σ grows, and PAL stays above the "
          "baseline at every σ", "§IV-C.4, Fig. 4", ("noise",)),
    Claim("g", "C1 = C/2 (Mean of half) gives the best results of Table II, and C1 = C/4 beats 3C/4 and C",
          "§IV-C.3, Table II", ("channels",)),
)}  # fmt: skip
#: What each study reproduces, in the paper's order (for the reasons of untested parts).
STUDY_FIGURES = {"layers": "Fig. 3", "ablation": "Table I", "channels": "Table II", "noise": "Fig. 4",
                 "comparison": "Table III"}
#: Every study some claim reads, in the paper's order (a report on the claims is worth running when the protocol
#: has any of them): the claims' ``studies``, each of which :data:`STUDY_FIGURES` names.
CLAIM_STUDIES: tuple[str, ...] = tuple(s for s in STUDY_FIGURES if any(s in c.studies for c in CLAIMS.values()))
#: The Table II values of C1 (fractions of the layer's channels C), compared by claim (g).
PAPER_C1 = (0.25, 0.5, 0.75, 1.0)
