"""monai_explain.apps.study: the lambda x design x seed study of a bundle, on pandas and scipy.

The study reads only the per-image results table that each evaluation writes (the contract of
:class:`monai_explain.handlers.PerImageResultsWriter`) and the bundle's ``metadata.json``
(:data:`~monai_explain.apps.study.sweep.BUNDLE_CONTRACT`). ``pip install monai-explain[study]``.

Command line: ``python -m monai_explain.apps.study sweep --bundle bundles/cxr_expl ...`` (runs the bundle) or
``python -m monai_explain.apps.study report --runs runs.csv ...`` (existing per-image tables).
"""

from __future__ import annotations

from .compare import baseline_of, compare_per_image, compare_seeds, dominance_counts, pareto, summarize
from .plots import plot_paired_differences, plot_pareto, plot_saliency_gallery, plot_tradeoff
from .report import HEADLINE_METRICS, markdown_table, write_report
from .stats import cohens_dz, holm, paired_test, rank_biserial, seed_test, t_interval
from .sweep import BUNDLE_CONTRACT, Progress, bundle_contract, run_sweep, sweep_settings
from .table import MACRO, RUN, add_macro, metric_columns, read_per_image, run_metrics, validate_per_image

__all__ = [
    "BUNDLE_CONTRACT",
    "HEADLINE_METRICS",
    "MACRO",
    "RUN",
    "Progress",
    "add_macro",
    "baseline_of",
    "bundle_contract",
    "cohens_dz",
    "compare_per_image",
    "compare_seeds",
    "dominance_counts",
    "holm",
    "markdown_table",
    "metric_columns",
    "paired_test",
    "pareto",
    "plot_paired_differences",
    "plot_pareto",
    "plot_saliency_gallery",
    "plot_tradeoff",
    "rank_biserial",
    "read_per_image",
    "run_metrics",
    "run_sweep",
    "seed_test",
    "summarize",
    "sweep_settings",
    "t_interval",
    "validate_per_image",
    "write_report",
]
