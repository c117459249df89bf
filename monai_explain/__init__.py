"""monai_explain: explanation-supervised training of medical image classifiers, as MONAI components.

Sub-packages, one MONAI concept each:

- :mod:`monai_explain.saliency` - differentiable saliency maps (CAM, Grad-CAM, HiResCAM, input gradients).
- :mod:`monai_explain.losses` - :class:`ExplanationLoss` comparing a saliency map with an annotation mask.
- :mod:`monai_explain.metrics` - saliency/annotation alignment metrics (coverage, precision, ...).
- :mod:`monai_explain.transforms` - annotations (boxes, polygons, RLE, points, ellipses) to masks.
- :mod:`monai_explain.handlers` - Ignite handlers for MONAI engines.
- :mod:`monai_explain.data` - dataset adapters, readers and data lists.

Applications built on the core live in :mod:`monai_explain.apps` and are imported on demand, never by the core:
:mod:`monai_explain.apps.synthetic` (synthetic shortcut data sets) and :mod:`monai_explain.apps.study` (the
lambda x design x seed study; ``pip install monai-explain[study]``).
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import data, handlers, losses, metrics, saliency, transforms, utils

__all__ = ["__version__", "data", "handlers", "losses", "metrics", "saliency", "transforms", "utils"]
