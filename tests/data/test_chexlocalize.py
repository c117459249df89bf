"""CheXlocalize adapter on gt_annotations (polygons) and gt_segmentations (COCO RLE) JSON files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from monai_explain.data import CHEXLOCALIZE_CLASSES, AnnotationFormatError, CheXlocalizeAdapter, decode_coco_rle_counts


def coco_rle(mask: np.ndarray) -> dict:
    """Compressed COCO RLE of a binary mask (column-major runs, pycocotools' string form), for the tests."""
    flat = np.asarray(mask, dtype=np.uint8).ravel(order="F")
    runs, current, length = [], 0, 0
    for v in flat:
        if v != current:
            runs.append(length)
            current, length = v, 0
        length += 1
    runs.append(length)
    chars = []
    for i, x in enumerate(runs):
        if i > 2:
            x -= runs[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            chars.append(chr((c | 0x20 if more else c) + 48))
    return {"size": list(mask.shape), "counts": "".join(chars)}


def test_coco_rle_reference_vector():
    """pycocotools encodes a 100 x 100 mask with mask[:50, 50:] = 1 as 'Xl4b1b1' followed by 98 zeros."""
    mask = np.zeros((100, 100), dtype=np.uint8)
    mask[:50, 50:] = 1
    reference = "Xl4b1b1" + "0" * 98
    assert coco_rle(mask)["counts"] == reference
    assert decode_coco_rle_counts(reference) == [5000] + [50] * 100


@pytest.mark.parametrize(
    "counts,expected",
    [("52203", [5, 2, 2, 2, 5]), ([3, 1, 2], [3, 1, 2]), ("", []), ("0", [0])],
)
def test_decode_counts(counts, expected):
    assert decode_coco_rle_counts(counts) == expected


@pytest.mark.parametrize("counts,match", [("5b", "truncated"), ("5 ", "invalid character"), ([2, -1], "negative")])
def test_decode_counts_errors(counts, match):
    with pytest.raises(ValueError, match=match):
        decode_coco_rle_counts(counts)


POLYGONS = {
    "patient64541_study1_view1_frontal": {
        "img_size": [2320, 2828],
        "Cardiomegaly": [[[1000, 1200], [1800.5, 1210], [1750, 1900], [1020, 1850]]],
        "Support Devices": [[[10, 20], [30, 20], [30, 40]], [[100, 100], [120, 100], [110, 130]]],
        "Edema": [],
    },
    "patient64542_study2_view2_lateral": {"img_size": [320, 390]},
}


def _write(tmp_path, name, content):
    (tmp_path / name).write_text(json.dumps(content) if not isinstance(content, str) else content)
    return name


def test_polygons(tmp_path):
    name = _write(tmp_path, "gt_annotations_val.json", POLYGONS)
    adapter = CheXlocalizeAdapter(tmp_path, name, check_files=False)
    first, second = adapter.load()
    assert adapter.class_names == CHEXLOCALIZE_CLASSES
    assert first["id"] == "patient64541_study1_view1_frontal"
    assert first["image"] == str(tmp_path / "valid" / "patient64541" / "study1" / "view1_frontal.jpg")
    assert first["image_size"] == [2320, 2828]
    # Cardiomegaly = 2, Support Devices = 9; Edema has no polygon
    assert first["label"] == [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    assert first["polygons"] == {
        "Cardiomegaly": [[[1000.0, 1200.0], [1800.5, 1210.0], [1750.0, 1900.0], [1020.0, 1850.0]]],
        "Support Devices": [
            [[10.0, 20.0], [30.0, 20.0], [30.0, 40.0]],
            [[100.0, 100.0], [120.0, 100.0], [110.0, 130.0]],
        ],
    }
    assert second["label"] == [0.0] * 10 and second["polygons"] == {} and second["image_size"] == [320, 390]
    assert second["image"].endswith("valid/patient64542/study2/view2_lateral.jpg")
    assert "boxes" not in first
    assert adapter.stats["negatives"] == 1 and adapter.stats["rows"] == 2


def test_segmentations(tmp_path):
    lesion = np.zeros((3, 4), dtype=np.uint8)
    lesion[1, 1:3] = 1
    empty = np.zeros((3, 4), dtype=np.uint8)
    content = {
        "patient1_study1_view1_frontal": {"Lung Lesion": coco_rle(lesion), "Edema": coco_rle(empty)},
        "patient2_study1_view1_frontal": {"Lung Lesion": coco_rle(empty), "Edema": coco_rle(empty)},
    }
    name = _write(tmp_path, "gt_segmentations_val.json", content)
    first, second = CheXlocalizeAdapter(tmp_path, name, check_files=False).load()
    assert first["coco_rle"] == {"Lung Lesion": coco_rle(lesion)}
    assert first["label"] == [0.0] * 6 + [1.0] + [0.0] * 3
    assert first["image_size"] == [3, 4]
    assert second["coco_rle"] == {} and second["label"] == [0.0] * 10


@pytest.mark.parametrize(
    "content,match",
    [
        (
            {"patient1_study1_view1_frontal": {"img_size": [3, 4], "Fracture": []}},
            r"key patient1_study1_view1_frontal/Fracture: unknown pathology 'Fracture'",
        ),
        (
            {"patient1_study1_view1_frontal": {"img_size": [3, 4], "Edema": [[[1, 2], [3, 4]]]}},
            r"key patient1_study1_view1_frontal/Edema/0: a polygon must be a list of at least 3",
        ),
        (
            {"patient1_study1_view1_frontal": {"img_size": [3, 4], "Edema": [[[1, 2], [3, 4], [5, "x"]]]}},
            r"Edema/0: invalid point \[5, 'x'\]",
        ),
        ({"patient1_study1_view1_frontal": {"Edema": []}}, r"key patient1_study1_view1_frontal: missing 'img_size'"),
        (
            {"patient1_study1_view1_frontal": {"img_size": [3], "Edema": []}},
            r"img_size: image size must be \[rows, columns\]",
        ),
        ({"image_001": {"img_size": [3, 4]}}, r"key image_001: cxr_id is not of the form"),
        (
            {"patient1_study1_view1_frontal": {"Edema": {"size": [3, 4], "counts": "52"}}},
            r"Edema: runs cover 7 pixels, the size \[3, 4\] has 12",
        ),
        ({"patient1_study1_view1_frontal": {"Edema": {"size": [3, 4], "counts": "5 "}}}, r"Edema: invalid counts"),
        (
            {
                "patient1_study1_view1_frontal": {
                    "Edema": {"size": [3, 4], "counts": [12]},
                    "Atelectasis": {"size": [2, 6], "counts": [12]},
                }
            },
            r"Atelectasis: size \[2, 6\] differs from \[3, 4\]",
        ),
    ],
)
def test_malformed(tmp_path, content, match):
    name = _write(tmp_path, "gt.json", content)
    with pytest.raises(AnnotationFormatError, match=match):
        CheXlocalizeAdapter(tmp_path, name, check_files=False).load()


def test_invalid_json_names_line(tmp_path):
    name = _write(tmp_path, "gt.json", '{\n  "patient1_study1_view1_frontal": {\n    "img_size": [3, 4],\n  }\n}')
    with pytest.raises(AnnotationFormatError, match=r"gt\.json, line 4: invalid JSON"):
        CheXlocalizeAdapter(tmp_path, name, check_files=False).load()


def test_duplicate_key_is_an_error(tmp_path):
    text = (
        '{"patient1_study1_view1_frontal": {"img_size": [3, 4]}, "patient1_study1_view1_frontal": {"img_size": [3, 4]}}'
    )
    name = _write(tmp_path, "gt.json", text)
    with pytest.raises(AnnotationFormatError, match=r"key patient1_study1_view1_frontal: the key appears twice"):
        CheXlocalizeAdapter(tmp_path, name, check_files=False).load()


def test_forced_format_and_image_check(tmp_path):
    name = _write(tmp_path, "gt.json", {"patient1_study1_view1_frontal": {"img_size": [3, 4]}})
    with pytest.raises(AnnotationFormatError, match="unknown pathology 'img_size'"):
        CheXlocalizeAdapter(tmp_path, name, format="segmentations", check_files=False).load()
    with pytest.raises(FileNotFoundError, match=r"gt\.json, key patient1_study1_view1_frontal: image .* not found"):
        CheXlocalizeAdapter(tmp_path, name).load()
