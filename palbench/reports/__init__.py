"""Notebook reports: every figure and table of the paper, drawn from ``results/``, ``runs/`` and ``priors/``.

The notebooks in ``notebooks/`` (run by papermill: ``palbench report`` in the DVC pipeline, or by hand)
keep their cells short and call these functions, which the tests call too:

* :mod:`~palbench.reports.project` — the project root, params, provenance header, the reading at the end,
  where figures (``reports/figures/*.png``) and tables (``reports/tables/*.csv``) are written;
* :mod:`~palbench.reports.tables` — the study tables of ``results/`` formatted as the paper's tables, and
  the sentences that read them (PAL − baseline, 95% CI, paired p);
* :mod:`~palbench.reports.comparison` — Table III: the paper's published rows (cited) beside ours;
* :mod:`~palbench.reports.confusion` — Fig. 6: the confusion matrices pooled over seeds, recall per class;
* :mod:`~palbench.reports.attention` — Fig. 7: the predictions on the images shown, alignment with the prior;
* :mod:`~palbench.reports.transfer` — the tests on another dataset (the protocol's ``transfer`` section);
* :mod:`~palbench.reports.backbones` — Table III on several backbones side by side (``comparison`` and
  ``comparison-<name>`` studies);
* :mod:`~palbench.reports.regimes` — the regime map: PAL − baseline by start × shortcut (the studies with a
  ``regime``, ``results/regimes.csv``);
* :mod:`~palbench.reports.figures` — the figures (matplotlib);
* :mod:`~palbench.reports.maps` — the layer catalogue and attribution maps (imports torch when called);
* the claims report (``notebooks/claims.ipynb``) computes its verdicts with :mod:`palbench.claims` and draws
  them with :func:`~palbench.claims.figure.plot_claims` (re-exported here);
* :mod:`~palbench.reports.render` — executing the notebooks (papermill), HTML (nbconvert), ``index.html``
  (not imported here: notebooks do not need papermill).

No report trains anything or recomputes a statistic that ``palbench aggregate`` wrote.
"""

from palbench.claims.figure import plot_claims
from palbench.reports.attention import attention_headline, prediction_table
from palbench.reports.backbones import (backbone_summary, backbone_table, backbones_headline, comparison_reading,
                                        show_backbones)
from palbench.reports.comparison import (PAPER_TABLE_III, comparison_headline, comparison_pair, comparison_table,
                                         dataset_column, paper_improvement)
from palbench.reports.confusion import (confusion_counts, confusion_headline, confusion_titles, recall_table,
                                        row_normalise)
from palbench.reports.figures import (plot_attributions, plot_backbones, plot_confusions, plot_layers, plot_noise,
                                      plot_noisy_priors)
from palbench.reports.maps import (attribution_maps, backbone_maps, layer_map, layer_positions, select_images,
                                   study_catalogue)
from palbench.reports.project import (
    NOTEBOOKS,
    Project,
    ReportError,
    chance_levels,
    class_names,
    comparison_studies,
    find_root,
    header_markdown,
    notebook_studies,
    open_project,
    require_study,
    save_figure,
    save_table,
    show_header,
    show_headline,
    sigma_parameter,
    split_size,
)
from palbench.reports.tables import (
    at_chance,
    best_and_worst,
    comparison_text,
    noise_headline,
    noise_row,
    noise_table,
    paper_style_table,
    per_seed,
    read_runs,
    read_preview,
    read_study,
    stats_columns,
    study_backbone,
    study_title,
    versus_clean,
)
from palbench.reports.regimes import (absent_cells, plot_regimes, read_regimes, regime_summary, regimes_headline,
                                      require_regimes)
from palbench.reports.transfer import show_transfer, transfer_tables

__all__ = [
    "at_chance", "chance_levels", "stats_columns",
    "attention_headline", "attribution_maps", "best_and_worst", "class_names", "comparison_headline",
    "comparison_pair", "comparison_table", "comparison_text", "confusion_counts", "confusion_headline",
    "confusion_titles", "dataset_column", "find_root", "header_markdown", "layer_positions", "noise_headline",
    "noise_row", "noise_table", "notebook_studies", "NOTEBOOKS", "open_project", "paper_improvement",
    "paper_style_table", "PAPER_TABLE_III", "per_seed", "plot_attributions", "plot_claims", "plot_confusions",
    "plot_layers", "plot_noise", "plot_noisy_priors", "prediction_table", "Project", "read_preview", "read_runs",
    "read_study", "recall_table", "ReportError", "require_study", "row_normalise", "save_figure",
    "save_table", "select_images", "sigma_parameter", "show_header", "show_headline", "split_size", "study_backbone",
    "study_catalogue", "study_title", "versus_clean", "show_transfer", "transfer_tables",
    "backbone_maps", "backbone_summary", "backbone_table", "backbones_headline", "comparison_reading",
    "comparison_studies", "layer_map", "plot_backbones", "show_backbones",
    "absent_cells", "plot_regimes", "read_regimes", "regime_summary", "regimes_headline", "require_regimes",
]  # fmt: skip
