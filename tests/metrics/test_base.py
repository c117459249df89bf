from __future__ import annotations

import pytest
import torch

from monai_explain.metrics import SaliencyCoverage, SaliencyPrecision


def test_list_of_same_shape_items_equals_batch():
    s = torch.rand(3, 2, 6, 6)
    m = (torch.rand(3, 2, 6, 6) > 0.6).float()
    from_batch = SaliencyPrecision()(y_pred=s, y=m)
    from_list = SaliencyPrecision()(y_pred=list(s), y=list(m))
    torch.testing.assert_close(from_batch, from_list)


def test_list_of_different_sizes_is_computed_per_item():
    s = [torch.rand(1, 4, 4), torch.rand(1, 6, 6)]
    m = [(torch.rand(1, 4, 4) > 0.5).float(), (torch.rand(1, 6, 6) > 0.5).float()]
    metric = SaliencyCoverage(reduction="none")
    out = metric(y_pred=s, y=m)
    assert out.shape == (2, 1)
    for i in range(2):
        torch.testing.assert_close(out[i : i + 1], SaliencyCoverage()(y_pred=s[i][None], y=m[i][None]))


def test_aggregate_before_data():
    with pytest.raises(ValueError, match="nothing to aggregate"):
        SaliencyPrecision().aggregate()


def test_missing_mask():
    with pytest.raises(ValueError, match="needs the annotation mask"):
        SaliencyPrecision()(y_pred=torch.rand(1, 1, 2, 2))


def test_reset_clears_buffer():
    metric = SaliencyPrecision()
    metric(y_pred=torch.rand(2, 1, 4, 4), y=torch.ones(2, 1, 4, 4))
    metric.reset()
    with pytest.raises(ValueError, match="nothing to aggregate"):
        metric.aggregate()
