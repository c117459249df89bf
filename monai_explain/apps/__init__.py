"""monai_explain.apps: applications built on the core library (MONAI's ``monai.apps`` pattern).

- :mod:`monai_explain.apps.synthetic` - synthetic shortcut data sets in published formats (VinDr-CXR, LUNA16),
  needs ``pydicom`` and ``nibabel`` (``pip install monai-explain[dicom,nifti]``).
- :mod:`monai_explain.apps.study` - the lambda x design x seed study of a bundle: per-image table, statistics,
  plots and report (``pip install monai-explain[study]``).

The core (``saliency``, ``losses``, ``metrics``, ``transforms``, ``data``, ``handlers``) never imports this package;
import a sub-package explicitly, e.g. ``import monai_explain.apps.synthetic``.
"""

from __future__ import annotations

__all__: list[str] = []
