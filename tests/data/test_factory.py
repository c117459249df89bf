"""get_adapter: names, arguments, errors; the package exports."""

from __future__ import annotations

import pytest

import monai_explain.data as data_pkg
from monai_explain.data import (
    ADAPTERS,
    CheXlocalizeAdapter,
    GenericCSVAdapter,
    LUNA16Adapter,
    MSCXRAdapter,
    NIHChestXray14Adapter,
    RSNAPneumoniaAdapter,
    SIIMPneumothoraxAdapter,
    VinDrCXRAdapter,
    get_adapter,
)


@pytest.mark.parametrize(
    "name,cls,kwargs",
    [
        ("vindr", VinDrCXRAdapter, {}),
        ("RSNA", RSNAPneumoniaAdapter, {}),
        ("nih", NIHChestXray14Adapter, {}),
        ("siim", SIIMPneumothoraxAdapter, {}),
        ("chexlocalize", CheXlocalizeAdapter, {}),
        ("mscxr", MSCXRAdapter, {}),
        (" luna16 ", LUNA16Adapter, {}),
        ("csv", GenericCSVAdapter, {"annotation_file": "list.csv"}),
    ],
)
def test_get_adapter(tmp_path, name, cls, kwargs):
    adapter = get_adapter(name, dataset_dir=tmp_path, check_files=False, **kwargs)
    assert type(adapter) is cls and adapter.dataset_dir == str(tmp_path)


def test_registry_and_errors(tmp_path):
    assert sorted(ADAPTERS) == ["chexlocalize", "csv", "luna16", "mscxr", "nih", "rsna", "siim", "vindr"]
    with pytest.raises(ValueError, match=r"unknown dataset adapter 'padchest'; available: \['chexlocalize'"):
        get_adapter("padchest", dataset_dir=tmp_path)
    with pytest.raises(TypeError):
        get_adapter("vindr", dataset_dir=tmp_path, label_rules="any")


def test_adapter_is_callable(tmp_path):
    (tmp_path / "stage_2_train_labels.csv").write_text("patientId,x,y,width,height,Target\np,,,,,0\n")
    adapter = get_adapter("rsna", dataset_dir=tmp_path, check_files=False)
    assert adapter()[0]["id"] == "p" and "RSNAPneumoniaAdapter(dataset_dir=" in repr(adapter)


def test_exports():
    for name in data_pkg.__all__:
        assert hasattr(data_pkg, name), name
