"""The examples in the transforms' docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["annotation_mask", "boxes", "ellipses", "functional", "geometry", "points", "polygons", "rle", "rle_codec"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"monai_explain.transforms.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    if name != "annotation_mask":
        assert result.attempted > 0
