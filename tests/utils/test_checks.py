"""Value checks without host synchronisation: clear errors on the CPU, switchable."""

from __future__ import annotations

import pytest
import torch

from monai_explain.utils import check_tensor, set_value_checks, value_checks, value_checks_enabled


def test_check_tensor_raises_on_cpu_with_the_message():
    check_tensor(torch.tensor([True, True]), "never")
    with pytest.raises(ValueError, match="bad values in x"):
        check_tensor(torch.tensor([True, False]), "bad values in x")
    with pytest.raises(TypeError, match="typed"):
        check_tensor(torch.tensor(False), "typed", error=TypeError)


def test_value_checks_switch_restores_previous_setting():
    assert value_checks_enabled()
    with value_checks(False):
        assert not value_checks_enabled()
        check_tensor(torch.tensor([False]), "not raised while switched off")
    assert value_checks_enabled()
    set_value_checks(False)
    try:
        check_tensor(torch.tensor([False]), "not raised")
    finally:
        set_value_checks(True)
    with pytest.raises(ValueError):
        check_tensor(torch.tensor([False]), "raised again")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_check_tensor_is_asynchronous_on_cuda():
    torch.cuda.set_sync_debug_mode("error")
    try:
        check_tensor(torch.tensor([True], device="cuda"), "never")
    finally:
        torch.cuda.set_sync_debug_mode("default")
