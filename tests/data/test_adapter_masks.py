"""Integration: each adapter's record becomes the hand-computed mask through monai_explain.transforms.

Masks are in MONAI's (x, y[, z]) array layout: a dataset box (x1, y1, x2, y2) covers ``mask[x1:x2, y1:y2]``.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import LoadImaged

from monai_explain.data import (
    CHEXLOCALIZE_CLASSES,
    CheXlocalizeAdapter,
    CXRDicomReader,
    GenericCSVAdapter,
    LUNA16Adapter,
    MSCXRAdapter,
    NIHChestXray14Adapter,
    RSNAPneumoniaAdapter,
    SIIMPneumothoraxAdapter,
    VinDrCXRAdapter,
)
from monai_explain.transforms import BoxesToMask, BoxesToMaskd, PointsToMaskd, PolygonsToMask, RLEToMask
from tests.data.test_chexlocalize import coco_rle
from tests.data.test_dicom import write_dicom


def _expected(shape, *regions):
    out = np.zeros(shape, dtype=np.float32)
    for region in regions:
        out[region] = 1.0
    return out


def test_vindr_dicom_to_majority_mask(tmp_path):
    """Three readers: R1 and R2 draw overlapping boxes, R3 finds nothing; the majority (2 of 3) is their overlap."""
    (tmp_path / "train").mkdir()
    pixels = np.arange(48, dtype=np.uint16).reshape(6, 8) + 100  # 6 rows x 8 columns
    write_dicom(str(tmp_path / "train" / "img.dicom"), pixels, "MONOCHROME1")
    (tmp_path / "train.csv").write_text(
        "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n"
        "img,Cardiomegaly,3,R1,1,1,5,4\n"
        "img,Cardiomegaly,3,R2,2,1,6,4\n"
        "img,No finding,14,R3,,,,\n"
    )
    (record,) = VinDrCXRAdapter(tmp_path).load()
    load = LoadImaged("image", reader=CXRDicomReader(), ensure_channel_first=True)
    out = BoxesToMaskd(fusion="majority")(load(record))
    assert out["image"].shape == (1, 8, 6)
    # columns 2-4 (x in [2, 5)) and rows 1-3 (y in [1, 4))
    np.testing.assert_array_equal(out["mask"].numpy()[0], _expected((8, 6), (slice(2, 5), slice(1, 4))))
    union = BoxesToMaskd(fusion="union")(load(record))["mask"].numpy()[0]
    np.testing.assert_array_equal(union, _expected((8, 6), (slice(1, 6), slice(1, 4))))


def test_rsna_xywh_mask(tmp_path):
    (tmp_path / "stage_2_train_labels.csv").write_text("patientId,x,y,width,height,Target\np,1,2,3,3,1\nq,,,,,0\n")
    pos, neg = RSNAPneumoniaAdapter(tmp_path, check_files=False).load()
    to_mask = BoxesToMask()
    np.testing.assert_array_equal(
        to_mask(pos["boxes"], spatial_size=(6, 6)).numpy()[0], _expected((6, 6), (slice(1, 4), slice(2, 5)))
    )
    assert to_mask(neg["boxes"], spatial_size=(6, 6)).sum() == 0


def test_nih_float_box_per_class_mask(tmp_path):
    (tmp_path / "BBox_List_2017.csv").write_text(
        "Image Index,Finding Label,Bbox [x,y,w,h],,,\na.png,Nodule,0.5,1.2,2.0,1.8,,,\n"
    )
    (record,) = NIHChestXray14Adapter(tmp_path, check_files=False).load()
    mask = BoxesToMask(num_classes=8)(record["boxes"], labels=record["box_labels"], spatial_size=(4, 4)).numpy()
    # xyxy [0.5, 1.2, 2.5, 3.0] -> outer pixels x 0..2, y 1..2, in the Nodule channel (5) only
    expected = np.zeros((8, 4, 4), dtype=np.float32)
    expected[5, 0:3, 1:3] = 1.0
    np.testing.assert_array_equal(mask, expected)


def test_siim_rle_mask(tmp_path):
    (tmp_path / "train-rle.csv").write_text("ImageId, EncodedPixels\na, 1 2 3 1\nb, -1\n")
    pos, neg = SIIMPneumothoraxAdapter(tmp_path, image_size=(2, 4), check_files=False).load()
    # 2 rows x 4 columns image; runs over column-major flat pixels 1, 2 and 6 -> (row, col) (1, 0), (0, 1), (0, 3)
    rows_cols = np.array([[0, 1, 0, 1], [1, 0, 0, 0]], dtype=np.float32)
    mask = RLEToMask()(pos["rle"], spatial_size=(4, 2))  # MONAI layout: (columns, rows)
    np.testing.assert_array_equal(mask.numpy()[0], rows_cols.T)
    assert RLEToMask()(neg["rle"], spatial_size=(4, 2)).sum() == 0


def test_chexlocalize_polygon_and_segmentation_masks(tmp_path):
    polygons = {
        "patient1_study1_view1_frontal": {"img_size": [4, 5], "Cardiomegaly": [[[1, 1], [4, 1], [4, 3], [1, 3]]]}
    }
    (tmp_path / "gt_annotations_val.json").write_text(json.dumps(polygons))
    (record,) = CheXlocalizeAdapter(tmp_path, check_files=False).load()
    mask = PolygonsToMask(class_names=CHEXLOCALIZE_CLASSES)(record["polygons"], spatial_size=(5, 4)).numpy()
    # pixel centres x + 0.5 in [1, 4] -> x 1..3; y + 0.5 in [1, 3] -> y 1..2; channel 2 = Cardiomegaly
    expected = np.zeros((10, 5, 4), dtype=np.float32)
    expected[2, 1:4, 1:3] = 1.0
    np.testing.assert_array_equal(mask, expected)

    lesion = np.zeros((3, 4), dtype=np.uint8)  # rows x columns
    lesion[1, 1:3] = 1
    segmentations = {"patient1_study1_view1_frontal": {"Lung Lesion": coco_rle(lesion), "Edema": coco_rle(lesion * 0)}}
    (tmp_path / "gt_segmentations_val.json").write_text(json.dumps(segmentations))
    (record,) = CheXlocalizeAdapter(tmp_path, "gt_segmentations_val.json", check_files=False).load()
    mask = RLEToMask(class_names=CHEXLOCALIZE_CLASSES)(record["coco_rle"], spatial_size=(4, 3)).numpy()
    expected = np.zeros((10, 4, 3), dtype=np.float32)
    expected[6] = lesion.T
    np.testing.assert_array_equal(mask, expected)


def test_mscxr_mask(tmp_path):
    (tmp_path / "ms.csv").write_text(
        "dicom_id,category_name,label_text,path,x,y,w,h,image_width,image_height,split\n"
        "d,Edema,mild edema,f/d.jpg,3,0,2,2,6,5,train\n"
    )
    (record,) = MSCXRAdapter(tmp_path, "ms.csv", check_files=False).load()
    width, height = record["image_size"][1], record["image_size"][0]
    mask = BoxesToMask()(record["boxes"], spatial_size=(width, height)).numpy()[0]
    np.testing.assert_array_equal(mask, _expected((6, 5), (slice(3, 5), slice(0, 2))))


def test_luna16_sphere_mask(tmp_path):
    """LPS origin (-10, -20, 30), spacing (1, 1, 2) mm; the nodule centre (-6, -16, 36) is voxel (4, 4, 3); a 2.5 mm
    diameter covers the centre voxel and its four in-plane neighbours (1 mm away), not the diagonals (1.41 mm) nor
    the slices above and below (2 mm)."""
    (tmp_path / "annotations.csv").write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\nct1,-6,-16,36,2.5\n")
    (record,) = LUNA16Adapter(tmp_path, check_files=False).load()
    # the RAS affine ITKReader gives such a scan
    affine = torch.tensor([[-1.0, 0, 0, 10], [0, -1.0, 0, 20], [0, 0, 2.0, 30], [0, 0, 0, 1]], dtype=torch.float64)
    record["image"] = MetaTensor(torch.ones(1, 8, 8, 6), affine=affine, meta={"space": "RAS"})
    out = PointsToMaskd(keys="points", diameter_key="diameters_mm", world_convention="LPS")(record)
    expected = np.zeros((8, 8, 6), dtype=np.float32)
    for x, y in ((4, 4), (3, 4), (5, 4), (4, 3), (4, 5)):
        expected[x, y, 3] = 1.0
    np.testing.assert_array_equal(out["mask"].numpy()[0], expected)


def test_generic_csv_3d_box_mask(tmp_path):
    (tmp_path / "boxes.csv").write_text("image,cx,cy,cz,w,h,d\nct.nii.gz,2,2,2,2,2,2\n")
    adapter = GenericCSVAdapter(
        tmp_path, "boxes.csv", box_columns=("cx", "cy", "cz", "w", "h", "d"), box_mode="cccwhd", check_files=False
    )
    (record,) = adapter.load()
    mask = BoxesToMask()(record["boxes"], spatial_size=(4, 4, 4)).numpy()[0]
    np.testing.assert_array_equal(mask, _expected((4, 4, 4), (slice(1, 3), slice(1, 3), slice(1, 3))))
