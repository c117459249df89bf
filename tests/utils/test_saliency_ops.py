"""resize_saliency / normalize_saliency: clear errors for empty grids and >3D resampling, no overflow for huge maps."""

from __future__ import annotations

import pytest
import torch

from monai_explain.utils import normalize_saliency, resize_saliency


@pytest.mark.parametrize(
    "shape, size, match",
    [
        ((1, 1, 0, 4), (4, 4), r"saliency map of shape \(1, 1, 0, 4\) has an empty spatial grid"),
        ((1, 1, 4, 4), (0, 4), r"target grid \(mask / image spatial size\) \(0, 4\) is empty"),
        ((2, 1, 2, 2, 2, 2), (3, 3, 3, 3), r"4D saliency map of shape \(2, 1, 2, 2, 2, 2\) to \(3, 3, 3, 3\): only 1D"),
        ((1, 1, 4, 4), (4, 4, 4), r"cannot resample a 2D saliency map of shape \(1, 1, 4, 4\) to a 3D size"),
    ],
)
def test_bad_grids_are_clear_errors(shape, size, match):
    """Before: `IndexError` from amax on an empty grid, `KeyError: 4` for a 4D resize."""
    with pytest.raises(ValueError, match=match):
        resize_saliency(torch.rand(shape, generator=torch.Generator().manual_seed(0)), size)


def test_4d_grid_of_the_same_size_passes_through():
    s = torch.rand(1, 1, 2, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    assert resize_saliency(s, (2, 3, 2, 2)) is s


@pytest.mark.parametrize("mode", ["minmax", "sum", "max"])
def test_normalisation_of_a_huge_finite_map_is_finite_and_exact(mode):
    g = torch.Generator().manual_seed(3)
    small = torch.rand(2, 1, 5, 6, generator=g) * 2 - 0.5
    huge = small * 2e38  # finite in float32 (|values| <= 3e38); its sum and max - min overflow
    assert torch.isfinite(huge).all()
    out = normalize_saliency(huge, mode)
    expected = normalize_saliency(small.double(), mode).float()
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
