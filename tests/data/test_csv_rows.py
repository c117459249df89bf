"""The shared CSV reader: exact header names, row shapes, locations in errors, blank lines, duplicates."""

from __future__ import annotations

import logging

import pytest

from monai_explain.data import AnnotationFormatError, CSVAnnotationReader


def _write(tmp_path, text, name="a.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def _rows(path, required=("id", "v"), **kwargs):
    return [(r.line, r.row, r.cells) for r in CSVAnnotationReader(path, required, **kwargs)]


def test_rows_lines_and_stripping(tmp_path):
    path = _write(tmp_path, "id,v\n a , 1 \n\n,,\nb,2\n")
    reader = CSVAnnotationReader(path, ["id", "v"])
    got = [(r.line, r.row, r["id"], r.float("v")) for r in reader]
    # line 3 is blank, line 4 has only separators: both skipped, not counted as data rows
    assert got == [(2, 1, "a", 1.0), (5, 2, "b", 2.0)]
    assert reader.blank_lines == [3, 4]
    assert reader.num_rows == 2


def test_byte_order_mark_is_ignored(tmp_path):
    path = _write(tmp_path, "id,v\nx,1\n", encoding="utf-8-sig")
    assert _rows(path) == [(2, 1, ["x", "1"])]


@pytest.mark.parametrize(
    "header,required,match",
    [
        (
            "ImageId,encodedpixels",
            ["ImageId", " EncodedPixels"],
            r"missing column\(s\) \[' EncodedPixels'\].*~ found 'encodedpixels'",
        ),
        ("id, v ,v", ["id"], "column 'v' appears twice"),
        ("image_id,x", ["image_id", "y"], r"a\.csv, line 1: missing column\(s\) \['y'\]"),
        ("id,id,v", ["id"], "column 'id' appears twice"),
    ],
)
def test_header_errors(tmp_path, header, required, match):
    path = _write(tmp_path, header + "\n")
    with pytest.raises(AnnotationFormatError, match=match):
        list(CSVAnnotationReader(path, required))


def test_empty_file(tmp_path):
    with pytest.raises(AnnotationFormatError, match="empty file"):
        list(CSVAnnotationReader(_write(tmp_path, ""), ["id"]))


@pytest.mark.parametrize(
    "text,match",
    [
        (
            "id,v,w\na,1,2\nb,1\n",
            r"a\.csv, line 3 \(data row 2\): truncated row: 2 field\(s\) where the header has 3; missing \['w'\]",
        ),
        ("id,v\na,1,9\n", r"line 2 \(data row 1\): row has 3 fields where the header has 2, extra values \['9'\]"),
        ('id,v\na,1\nb,"2\n', r"line 3: malformed CSV \(unexpected end of data\)"),
    ],
)
def test_row_shape_errors(tmp_path, text, match):
    with pytest.raises(AnnotationFormatError, match=match):
        _rows(_write(tmp_path, text), required=("id",))


def test_unnamed_trailing_columns_optional_and_extra_empty_fields(tmp_path):
    # NIH style: the header ends with empty names; rows may carry or omit those fields, or add empty ones
    path = _write(tmp_path, "id,v,,,\na,1,,,\nb,2\nc,3,,,,,\n")
    assert _rows(path) == [
        (2, 1, ["a", "1", "", "", ""]),
        (3, 2, ["b", "2", "", "", ""]),
        (4, 3, ["c", "3", "", "", ""]),
    ]


@pytest.mark.parametrize(
    "policy,expected",
    [("drop", [(2, 1), (4, 3)]), ("keep", [(2, 1), (3, 2), (4, 3)])],
)
def test_duplicates(tmp_path, caplog, policy, expected):
    path = _write(tmp_path, "id,v\na,1\na,1\nb,1\n")
    with caplog.at_level(logging.WARNING):
        reader = CSVAnnotationReader(path, ["id", "v"], duplicates=policy)
        assert [(r.line, r.row) for r in reader] == expected
    if policy == "drop":
        assert reader.duplicate_lines == [3]
        assert "dropped 1 duplicate row(s) at line(s) 3" in caplog.text
    else:
        assert reader.duplicate_lines == []


def test_duplicates_error(tmp_path):
    path = _write(tmp_path, "id,v\na,1\nb,2\na,1\n")
    with pytest.raises(AnnotationFormatError, match=r"line 4 \(data row 3\): duplicate of line 2"):
        list(CSVAnnotationReader(path, ["id", "v"], duplicates="error"))


@pytest.mark.parametrize(
    "value,method,expected",
    [("1.5", "float", 1.5), ("-3", "float", -3.0), ("1e3", "float", 1000.0), ("7", "int", 7), ("7.0", "int", 7)],
)
def test_numbers(tmp_path, value, method, expected):
    (row,) = list(CSVAnnotationReader(_write(tmp_path, f"id,v\na,{value}\n"), ["id", "v"]))
    assert getattr(row, method)("v") == expected


@pytest.mark.parametrize(
    "value,method,match",
    [
        ("abc", "float", r"line 2 \(data row 1\): column 'v': 'abc' is not a number"),
        ("", "float", r"column 'v': '' is not a number"),
        ("nan", "float", "not a finite number"),
        ("inf", "float", "not a finite number"),
        ("7.5", "int", "not an integer"),
    ],
)
def test_number_errors(tmp_path, value, method, match):
    (row,) = list(CSVAnnotationReader(_write(tmp_path, f"id,v\na,{value}\n"), ["id", "v"]))
    with pytest.raises(AnnotationFormatError, match=match):
        getattr(row, method)("v")


def test_optional_columns_and_require(tmp_path):
    (row,) = list(CSVAnnotationReader(_write(tmp_path, "id,v\na,\n"), ["id"], optional_columns=["w"]))
    assert row.get("w") == "" and row.get(None, "d") == "d" and row.get("id") == "a"
    with pytest.raises(AnnotationFormatError, match="empty value in column 'v'"):
        row.require("v")
    err = row.error("custom")
    assert (err.file, err.line, err.row, err.reason) == (str(tmp_path / "a.csv"), 2, 1, "custom")


def test_header_names_are_stripped(tmp_path):
    """A header written with spaces after the commas reads as the published one, both ways round."""
    path = _write(tmp_path, "ImageId, EncodedPixels , Extra\nx,1 2,e\n")
    reader = CSVAnnotationReader(path, ["ImageId", " EncodedPixels", "EncodedPixels"])
    (row,) = list(reader)
    assert row[" EncodedPixels"] == row["EncodedPixels"] == "1 2" and row.get("Extra") == "e"
    assert reader.has(" Extra") and row.path == str(path)


def test_missing_hint_is_appended(tmp_path):
    path = _write(tmp_path, "a,b\n1,2\n")
    reader = CSVAnnotationReader(path, ["c"], missing_hint=lambda header: f"try {header[::-1]}")
    with pytest.raises(AnnotationFormatError, match=r"missing column\(s\) \['c'\].* try \['b', 'a'\]"):
        list(reader)
