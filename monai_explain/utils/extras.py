"""Optional dependencies: imported lazily, with an error naming the ``pip install`` extra that provides them."""

from __future__ import annotations

from typing import Any

from monai.utils import optional_import

__all__ = ["EXTRAS", "optional_import_extra"]

#: the ``setup.cfg`` extra providing each optional top-level module.
EXTRAS: dict[str, str] = {
    "pydicom": "dicom",
    "nibabel": "nifti",
    "mlflow": "mlflow",
    "matplotlib": "masks",
    "scipy": "masks",
    "pandas": "study",
}


def optional_import_extra(module: str, extra: str, name: str = "") -> tuple[Any, bool]:
    """``monai.utils.optional_import`` whose error, raised on first use, names the extra to install.

    Args:
        module: the module to import, e.g. ``"scipy.ndimage"``.
        extra: the ``monai-explain`` extra that installs it, e.g. ``"study"``.
        name: an attribute of the module to return instead of the module.

    Returns:
        ``(module_or_attribute, True)`` when importable, else ``(placeholder, False)``: the placeholder raises
        ``monai.utils.OptionalImportError`` ("... pip install 'monai-explain[<extra>]'") when used.

    Example:
        >>> pd, has_pandas = optional_import_extra("pandas", "study")
    """
    descriptor = "{} failed: it is an optional dependency, install it with pip install 'monai-explain[" + extra + "]'"
    return optional_import(module, name=name, descriptor=descriptor)
