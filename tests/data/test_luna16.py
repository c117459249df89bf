"""LUNA16 adapter: annotations.csv (world mm centres + diameters) and <seriesuid>.mhd under subset folders."""

from __future__ import annotations

import numpy as np
import pytest

from monai_explain.data import AnnotationFormatError, LUNA16Adapter

U1 = "1.3.6.1.4.1.14519.5.2.1.6279.6001.100225287222365663678666836860"
U2 = "1.3.6.1.4.1.14519.5.2.1.6279.6001.100398138793540579077826395208"
U3 = "1.3.6.1.4.1.14519.5.2.1.6279.6001.100530488926682752765845212286"
CSV = (
    "seriesuid,coordX,coordY,coordZ,diameter_mm\n"
    f"{U1},-128.6994211,-175.3192718,-298.3875064,5.651470635\n"
    f"{U1},103.7836509,-211.9251487,-227.12125,4.224708481\n"
    f"{U2},69.63901724,-140.9445859,876.3744957,5.786347814\n"
)


def _dataset(tmp_path):
    (tmp_path / "annotations.csv").write_text(CSV)
    for folder, uid in (("subset0", U1), ("subset3", U2), ("subset3", U3), ("seg-lungs-LUNA16", U1)):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / f"{uid}.mhd").write_bytes(b"")
    return tmp_path


def test_records(tmp_path):
    adapter = LUNA16Adapter(_dataset(tmp_path))
    data = adapter.load()
    assert adapter.box_mode == "xyzxyz" and adapter.binary
    assert [(d["id"], d["label"]) for d in data] == [(U1, 1), (U2, 1), (U3, 0)]  # U3: on disk, no nodule
    assert data[0]["image"] == str(tmp_path / "subset0" / f"{U1}.mhd")  # not the lung mask of the same name
    assert data[1]["image"] == str(tmp_path / "subset3" / f"{U2}.mhd")
    points = np.array([[-128.6994211, -175.3192718, -298.3875064], [103.7836509, -211.9251487, -227.12125]], np.float32)
    np.testing.assert_array_equal(data[0]["points"], points)
    assert data[0]["points"].dtype == np.float32
    np.testing.assert_array_equal(data[0]["diameters_mm"], np.array([5.651470635, 4.224708481], np.float32))
    half = np.array([5.651470635, 4.224708481])[:, None] / 2
    boxes = np.concatenate([points - half, points + half], axis=1)
    np.testing.assert_allclose(data[0]["boxes"], boxes, rtol=0, atol=1e-4)
    assert data[0]["boxes"].shape == (2, 6) and data[0]["box_labels"].tolist() == [0, 0]
    assert data[2]["boxes"].shape == (0, 6) and data[2]["points"].shape == (0, 3)
    assert data[2]["diameters_mm"].shape == (0,)
    assert adapter.stats["negatives"] == 1


def test_ras_space_and_no_unannotated(tmp_path):
    data = LUNA16Adapter(_dataset(tmp_path), space="RAS", include_unannotated=False).load()
    assert [d["id"] for d in data] == [U1, U2]
    np.testing.assert_array_equal(data[1]["points"], np.array([[-69.63901724, 140.9445859, 876.3744957]], np.float32))


def test_flat_folder_without_check(tmp_path):
    (tmp_path / "annotations.csv").write_text(CSV)
    data = LUNA16Adapter(tmp_path, image_dir="scans", check_files=False).load()
    assert data[0]["image"] == str(tmp_path / "scans" / f"{U1}.mhd") and len(data) == 2


@pytest.mark.parametrize(
    "row,match",
    [
        ("x,1,2,3,0", r"line 2 \(data row 1\): diameter_mm must be positive, got 0\.0"),
        ("x,1,2,,4", r"line 2 \(data row 1\): column 'coordZ': '' is not a number"),
        ("x,1,2,3", r"line 2 \(data row 1\): truncated row"),
    ],
)
def test_malformed_rows(tmp_path, row, match):
    (tmp_path / "annotations.csv").write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n" + row + "\n")
    with pytest.raises(AnnotationFormatError, match=match):
        LUNA16Adapter(tmp_path, check_files=False).load()
