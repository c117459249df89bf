"""inference.json writes one saliency map per input, named by the record id, also for nested layouts whose images
share a file name (CheXlocalize ``patient*/study1/view1_frontal``, a CSV with ``p1/img.dicom``, ``p2/img.dicom``)."""

from __future__ import annotations

import csv
import shutil

import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow

from monai_explain.utils import safe_file_name

from .conftest import CONFIGS, TINY

pytestmark = pytest.mark.slow


def _nested_csv_set(root, tiny_dataset, layout):
    """Copy tiny-set DICOMs into ``layout`` (relative paths, all with the same file name) + a generic CSV."""
    sources = sorted((tiny_dataset / "train").glob("*.dicom"))[: len(layout)]
    rows = []
    for src, rel in zip(sources, layout):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, root / rel)
        rows.append({"id": rel.rsplit(".", 1)[0], "image": rel, "finding": "Nodule/Mass", "split": "test"})
    with open(root / "labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "image", "finding", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return [r["id"] for r in rows]


LAYOUTS = {
    "chexlocalize-like": ["patient1/study1/view1_frontal.dicom", "patient2/study1/view1_frontal.dicom",
                          "patient3/study1/view1_frontal.dicom", "patient3/study2/view1_frontal.dicom"],
    "generic-csv": ["p1/img.dicom", "p2/img.dicom", "p3/img.dicom"],
}  # fmt: skip


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_one_saliency_map_per_input_named_by_id(tmp_path, tiny_dataset, layout):
    data = tmp_path / "data"
    ids = _nested_csv_set(data, tiny_dataset, LAYOUTS[layout])
    bundle = tmp_path / "bundle"
    common = {
        **TINY, "bundle_root": str(bundle), "dataset": "csv", "dataset_dir": str(data),
        "adapter_kwargs": {"annotation_file": "labels.csv", "image_column": "image", "id_column": "id",
                           "class_column": "finding", "split_column": "split", "image_dir": ".", "box_columns": None},
        "saliency": "input_gradient", "saliency_kwargs": {},
    }  # fmt: skip
    # an untrained network is enough to name outputs: model.pt from the bundle's own network definition
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "inference.json"))
    parser.update(common)
    torch.manual_seed(0)
    (bundle / "models").mkdir(parents=True)
    torch.save(parser.get_parsed_content("network_def").state_dict(), bundle / "models" / "model.pt")

    wf = ConfigWorkflow(
        config_file=str(CONFIGS / "inference.json"), logging_file=False,
        meta_file=str(CONFIGS / "metadata.json"), workflow_type=None, **common,
    )  # fmt: skip
    wf.initialize()
    wf.run()
    wf.finalize()
    out = bundle / "eval" / "inference"
    with open(out / "predictions.csv") as f:
        assert sorted(r["id"] for r in csv.DictReader(f)) == sorted(ids)
    maps = sorted(p.name for p in out.glob("*_saliency.nii.gz"))
    assert maps == sorted(f"{safe_file_name(i)}_saliency.nii.gz" for i in ids), "one map per input, named by id"
    assert len(maps) == len(ids)
