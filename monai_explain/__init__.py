"""monai_explain: explanation-supervised training of medical image classifiers, as MONAI components.

Sub-packages, one MONAI concept each:

- :mod:`monai_explain.saliency` - differentiable saliency maps (CAM, Grad-CAM, HiResCAM, input gradients).
- :mod:`monai_explain.losses` - :class:`ExplanationLoss` comparing a saliency map with an annotation mask.
- :mod:`monai_explain.metrics` - saliency/annotation alignment metrics (coverage, precision, ...).
- :mod:`monai_explain.transforms` - annotations (boxes, polygons, RLE, points, ellipses) to masks.
- :mod:`monai_explain.handlers` - Ignite handlers for MONAI engines.
- :mod:`monai_explain.data` - dataset adapters and synthetic data generators.
- :mod:`monai_explain.analysis` - lambda x design studies, statistics and reports.
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import analysis, data, handlers, losses, metrics, saliency, transforms, utils

__all__ = ["__version__", "analysis", "data", "handlers", "losses", "metrics", "saliency", "transforms", "utils"]
