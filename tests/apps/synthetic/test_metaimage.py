from __future__ import annotations

import numpy as np
import pytest

from monai_explain.apps.synthetic import metaimage_affine, read_metaimage, write_metaimage


def test_raw_layout_is_x_fastest(tmp_path):
    arr = np.arange(24, dtype=np.int16).reshape(2, 3, 4)  # [x, y, z], value = 12 x + 4 y + z
    write_metaimage(tmp_path / "a.mhd", arr, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    raw = np.fromfile(tmp_path / "a.raw", dtype="<i2")
    # file order: x fastest, then y, then z
    np.testing.assert_array_equal(raw[:6], [0, 12, 4, 16, 8, 20])
    assert raw[6] == 1  # z = 1 after one full x-y plane


def test_header_fields(tmp_path):
    write_metaimage(tmp_path / "b.mhd", np.ones((5, 6, 7), np.int16), (0.7, 0.7, 2.5), (-10.5, 20.0, -300.25))
    lines = (tmp_path / "b.mhd").read_text().splitlines()
    fields = dict(line.split(" = ") for line in lines)
    assert fields["DimSize"] == "5 6 7" and fields["ElementSpacing"] == "0.7 0.7 2.5"
    assert fields["Offset"] == "-10.5 20 -300.25" and fields["ElementType"] == "MET_SHORT"
    assert fields["TransformMatrix"] == "1 0 0 0 1 0 0 0 1" and fields["NDims"] == "3"
    assert lines[-1] == "ElementDataFile = b.raw"


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32])
def test_round_trip(tmp_path, dtype):
    arr = (np.random.default_rng(0).random((4, 5, 3)) * 100).astype(dtype)
    direction = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    write_metaimage(tmp_path / "c.mhd", arr, (0.5, 0.6, 2.0), (1.0, 2.0, 3.0), direction)
    back, meta = read_metaimage(tmp_path / "c.mhd")
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, arr)
    np.testing.assert_allclose(meta["direction"], direction)
    # index (1, 0, 0) moves 0.5 mm along the first axis' direction (0, 1, 0)
    np.testing.assert_allclose(meta["affine"] @ [1, 0, 0, 1], [1.0, 2.5, 3.0, 1.0])


def test_metaimage_affine_values():
    np.testing.assert_allclose(
        metaimage_affine((0.7, 0.8, 2.5), (-1.0, -2.0, -3.0)),
        [[0.7, 0, 0, -1.0], [0, 0.8, 0, -2.0], [0, 0, 2.5, -3.0], [0, 0, 0, 1]],
    )


def test_write_errors(tmp_path):
    with pytest.raises(ValueError, match=".mhd"):
        write_metaimage(tmp_path / "a.nii", np.ones((2, 2, 2), np.int16), (1, 1, 1), (0, 0, 0))
    with pytest.raises(ValueError, match="dtype"):
        write_metaimage(tmp_path / "a.mhd", np.ones((2, 2, 2), bool), (1, 1, 1), (0, 0, 0))
    with pytest.raises(ValueError, match="3 values"):
        write_metaimage(tmp_path / "a.mhd", np.ones((2, 2, 2), np.int16), (1, 1), (0, 0, 0))


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda h: h.replace("ElementType = MET_SHORT", "ElementType = MET_LONG_LONG"), "ElementType"),
        (lambda h: h.replace("DimSize = 2 2 2\n", ""), "DimSize is missing"),
        (lambda h: h.replace("DimSize = 2 2 2", "DimSize = 2 2 3"), "needs 12"),
        (lambda h: h.replace("CompressedData = False", "CompressedData = True"), "CompressedData"),
        (lambda h: h.replace("ElementDataFile = d.raw", "ElementDataFile = LOCAL"), "LOCAL"),
        (lambda h: h + "garbage line\n", "Key = Value"),
    ],
)
def test_read_errors(tmp_path, edit, match):
    write_metaimage(tmp_path / "d.mhd", np.ones((2, 2, 2), np.int16), (1, 1, 1), (0, 0, 0))
    header = tmp_path / "d.mhd"
    header.write_text(edit(header.read_text()))
    with pytest.raises(ValueError, match=match):
        read_metaimage(header)
