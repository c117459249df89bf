"""monai_explain.apps.study: the lambda x design x seed study of a bundle, on pandas and scipy.

The study reads only the per-image results table each evaluation writes (the contract of
:class:`monai_explain.handlers.PerImageResultsWriter`) and the bundle contract
(:data:`~monai_explain.apps.study.contract.BUNDLE_CONTRACT`, overridable in ``metadata.json``). ``pip install
monai-explain[study]``. Command line (``sweep``, ``plan``, ``report``): :mod:`monai_explain.apps.study.__main__`.
"""

from __future__ import annotations

from .compare import baseline_of, compare_per_image, compare_seeds, pareto, summarize
from .contract import BUNDLE_CONTRACT, bundle_contract
from .plan import load_plan, run_plan
from .provenance import provenance
from .recovery import recovery_overview, recovery_summary, shortcut_recovery
from .report import markdown_table, write_report
from .sweep import Progress, run_sweep, sweep_settings
from .table import add_macro, metric_columns, read_per_image, run_metrics, validate_per_image

__all__ = [
    "BUNDLE_CONTRACT", "Progress", "add_macro", "baseline_of", "bundle_contract", "compare_per_image", "compare_seeds",
    "load_plan", "markdown_table", "metric_columns", "pareto", "provenance", "read_per_image", "recovery_overview",
    "recovery_summary", "run_metrics", "run_plan", "run_sweep", "shortcut_recovery", "summarize", "sweep_settings",
    "validate_per_image", "write_report",
]  # fmt: skip
