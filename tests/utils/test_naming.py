"""Output names from record ids: safe, unique, stable."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor

from monai_explain.utils import RECORD_ID_KEY, record_id_name, safe_file_name, set_record_id


@pytest.mark.parametrize("record_id", ["3f2a9c", "1.2.840.113654.2.55", "a-b_c", "x" * 120])
def test_plain_ids_are_kept(record_id):
    assert safe_file_name(record_id) == record_id


def test_nested_and_unsafe_ids_become_unique_safe_names():
    ids = [
        "patient64541/study1/view1_frontal", "patient64541/study1/view2_lateral", "patient64542/study1/view1_frontal",
        "p1/img", "p2/img", "p1_img", "p1\\img", "a b:c", ".hidden", "x" * 300, "x" * 301, "ü",
    ]  # fmt: skip
    names = [safe_file_name(i) for i in ids]
    assert len(set(names)) == len(ids), names
    for name in names:
        assert name and "/" not in name and "\\" not in name and not name.startswith(".") and len(name) <= 129
        assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    assert names[0] == safe_file_name(ids[0]), "stable"
    assert names[0].startswith("patient64541_study1_view1_frontal-")


def test_empty_id_is_an_error():
    with pytest.raises(ValueError, match="must not be empty"):
        safe_file_name("")


def test_set_record_id_and_formatter():
    d = {"id": "p1/img", "saliency": MetaTensor(torch.ones(1, 2, 2), meta={"filename_or_obj": "/d/p1/img.dicom"})}
    set_record_id(d, "saliency")
    assert d["saliency"].meta[RECORD_ID_KEY] == "p1/img"
    assert record_id_name(d["saliency"].meta) == {"subject": safe_file_name("p1/img"), "idx": None}
    with pytest.raises(KeyError, match="has no 'id'"):
        set_record_id({"saliency": d["saliency"]}, "saliency")
    with pytest.raises(TypeError, match="'saliency' has no meta"):
        set_record_id({"id": "a", "saliency": torch.ones(1)}, "saliency")
    with pytest.raises(KeyError, match="run set_record_id before SaveImaged"):
        record_id_name({"filename_or_obj": "x"})
