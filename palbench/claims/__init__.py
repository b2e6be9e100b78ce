"""The paper's comparative claims (§IV-C ablation study, §IV-D comparison) as verdicts computed from the runs.

Three ideas, one module each (this package re-exports their names):

* **what the claims are** — :mod:`~palbench.claims.definitions` (the seven claims as data: id, statement,
  section, the studies that test them), and what each compares: its *parts* "A > B" (or "A < B" for a trend)
  built from the runs (:mod:`~palbench.claims.parts` for (a), (b), (c), (f), (g);
  :mod:`~palbench.claims.layers` for Fig. 3's (d) and (e); the runs of a configuration, found by its settings,
  are :mod:`~palbench.claims.evidence`);
* **the verdict statistics** — :mod:`~palbench.claims.verdicts`: each part's paired interval over the seeds,
  95% per claim (Bonferroni over its parts), and the rules that make it *supported*, *contradicted*,
  *undecided at 95%* or *not tested*;
* **the rendering** — :mod:`~palbench.claims.render` (the headline, the caveats, the readable table) and
  :mod:`~palbench.claims.figure` (the forest plot; matplotlib, not imported here).

``import palbench.claims`` imports no torch and no matplotlib: the layer catalogue that claims (d) and (e) need
(:func:`palbench.reports.maps.layer_positions`) is an argument. The names of settings in the paper's words are
:mod:`palbench.vocabulary`; the paired statistics and the at-chance rule are :mod:`palbench.results`.
"""

from palbench.claims.definitions import CLAIM_STUDIES, CLAIMS, PAPER_C1, STUDY_FIGURES, Claim
from palbench.claims.evidence import (Arm, Evidence, Part, absent, is_missing, mean_arm, no_study, same_setting,
                                      slope_arm)
from palbench.claims.layers import (claim_d, claim_e, early_and_late, layer_blocks, layer_grouping, pool_neighbours,
                                    studied_layers)
from palbench.claims.parts import claim_a, claim_b, claim_c, claim_f, claim_g, claim_parts
from palbench.claims.render import caveats, chance_configs, counts_text, format_parts, headline, tested_configs
from palbench.claims.verdicts import (COLUMNS, CONTRADICTED, FAMILY_CONFIDENCE, NOT_TESTED, SUPPORTED, UNDECIDED,
                                      VERDICTS, claim_regime, claim_summary, claims_table, combine, evaluate,
                                      evaluate_claims, verdict)

__all__ = [
    "CLAIM_STUDIES", "CLAIMS", "PAPER_C1", "STUDY_FIGURES", "Claim",
    "Arm", "Evidence", "Part", "absent", "is_missing", "mean_arm", "no_study", "same_setting", "slope_arm",
    "claim_a", "claim_b", "claim_c", "claim_d", "claim_e", "claim_f", "claim_g", "claim_parts",
    "early_and_late", "layer_blocks", "layer_grouping", "pool_neighbours", "studied_layers",
    "COLUMNS", "CONTRADICTED", "FAMILY_CONFIDENCE", "NOT_TESTED", "SUPPORTED", "UNDECIDED", "VERDICTS",
    "claim_regime", "claim_summary", "claims_table", "combine", "evaluate", "evaluate_claims", "verdict",
    "caveats", "chance_configs", "counts_text", "format_parts", "headline", "tested_configs",
]  # fmt: skip
