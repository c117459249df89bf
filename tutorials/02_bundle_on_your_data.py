# %% [markdown]
# # Run the cxr_expl bundle on your own VinDr-CXR, RSNA Pneumonia or SIIM-ACR copy
#
# The `cxr_expl` bundle trains out of the box on a synthetic set it generates itself. To train it on a real data
# set you point it at your copy, exactly as published, and override a few knobs on the command line:
#
# | data set | what you downloaded | bundle overrides |
# |---|---|---|
# | VinDr-CXR | `train.csv` + `train/<image_id>.dicom` | `--dataset vindr` |
# | RSNA Pneumonia Detection | `stage_2_train_labels.csv` + `stage_2_train_images/<patientId>.dcm` | `--dataset rsna --classes "['Lung Opacity']"` |
# | SIIM-ACR Pneumothorax | `train-rle.csv` + `dicom-images-train/<study>/<series>/<ImageId>.dcm` | `--dataset siim --classes "['Pneumothorax']"` + a mask override file |
#
# plus `--dataset_dir /path/to/it` (train.json reads it as it is; only `prepare_data.json` generates data). None of these data sets can be downloaded inside
# this tutorial, so it first writes a small stand-in of each, in the exact published format (file names, columns,
# coordinate conventions), from the synthetic images. Replace the stand-in folder by your own copy and the
# commands stay the same.
#
# The one data set that needs more than overrides is SIIM-ACR: its annotations are run-length encoded masks, not
# boxes, so the bundle's mask transform (`BoxesToMaskd`) must be swapped for `RLEToMaskd`. That is a one-entry
# config override file, shown below.
#
# Run: `.venv/bin/python tutorials/02_bundle_on_your_data.py` (`--quick` for tiny settings).

# %% [markdown]
# ## Setup imports

# %%
from __future__ import annotations

import argparse
import csv
import json
import shlex
import shutil
import tempfile
import uuid
from pathlib import Path

import mlflow
import monai.bundle
import numpy as np

from monai_explain.apps.synthetic import generate_shortcut_cxr
from monai_explain.data import build_datalist, get_adapter
from monai_explain.transforms import encode_siim_rle

# %% [markdown]
# ## Settings and paths
#
# The bundle lives in `bundles/cxr_expl` of the repository. Every run writes its checkpoints, overlays and
# evaluation outputs under its own `bundle_root` inside the work folder (`--bundle_root` is an ordinary override),
# and all runs log to one MLflow store, `<workdir>/mlruns.db`.

# %%
parser = argparse.ArgumentParser(description="Run the cxr_expl bundle on VinDr-CXR / RSNA / SIIM-format data.")
parser.add_argument("--quick", action="store_true", help="tiny settings, for a smoke test")
parser.add_argument("--workdir", default=None, help="output folder (default: a new temporary folder)")
args, _ = parser.parse_known_args()

if args.quick:
    S = {"n_train": 24, "n_val": 8, "n_test": 8, "image_size": 64, "epochs": 1, "batch_size": 8}
else:
    S = {"n_train": 200, "n_val": 40, "n_test": 40, "image_size": 128, "epochs": 3, "batch_size": 16}
workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="monai_explain_02_"))
workdir.mkdir(parents=True, exist_ok=True)
REPO = Path(__file__).resolve().parents[1] if "__file__" in globals() else Path.cwd()
BUNDLE = REPO / "bundles" / "cxr_expl"
TRAIN_CONFIG = BUNDLE / "configs" / "train.json"
TRACKING_URI = f"sqlite:///{workdir / 'mlruns.db'}"
print(f"workdir: {workdir}\nbundle: {BUNDLE}\nsettings: {S}")

# %% [markdown]
# ## VinDr-CXR
#
# The synthetic generator already writes VinDr-CXR's format: `train.csv` with one row per box per radiologist
# (`image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max`, corners in DICOM pixels, x = column) and "No
# finding" rows (class 14, empty coordinates), and `train/<image_id>.dicom`. Your VinDr-CXR download has the
# same layout. Its `splits.json` (`{image_id: split}`) is optional: without it the bundle makes a seeded,
# label-stratified 80/10/10 split, which is what happens for the two other stand-ins below.

# %%
vindr_dir = generate_shortcut_cxr(
    workdir / "vindr-cxr",
    n_train=S["n_train"],
    n_val=S["n_val"],
    n_test=S["n_test"],
    n_test_shifted=0,
    image_size=S["image_size"],
    seed=0,
)
with open(vindr_dir / "train.csv") as f:
    vindr_rows = list(csv.DictReader(f))
print(f"{vindr_dir / 'train.csv'}: {len(vindr_rows)} rows, e.g.")
for row in vindr_rows[:2] + [next(r for r in vindr_rows if r["x_min"])]:
    print("   ", ",".join(row.values()))
image_ids = list(dict.fromkeys(r["image_id"] for r in vindr_rows))


# %% [markdown]
# ## An RSNA Pneumonia stand-in
#
# RSNA publishes `stage_2_train_labels.csv` with the columns `patientId,x,y,width,height,Target`: one row per box,
# `(x, y)` the top-left corner and `width, height` in pixels of the 1024 x 1024 DICOMs, and a single row with empty
# coordinates and `Target=0` for an image without opacity. The images are `stage_2_train_images/<patientId>.dcm`.
#
# We copy each synthetic DICOM under an RSNA-style `patientId` (a UUID) and write the boxes of the first
# radiologist of each image, converted from VinDr's corners (xyxy) to RSNA's corner + size (xywh).


# %%
def write_rsna_standin(root: Path) -> Path:
    (root / "stage_2_train_images").mkdir(parents=True, exist_ok=True)
    rows = []
    for image_id in image_ids:
        patient_id = str(uuid.UUID(hex=image_id))
        shutil.copyfile(vindr_dir / "train" / f"{image_id}.dicom", root / "stage_2_train_images" / f"{patient_id}.dcm")
        reader_rows = [r for r in vindr_rows if r["image_id"] == image_id]
        first_reader = [r for r in reader_rows if r["rad_id"] == reader_rows[0]["rad_id"] and r["x_min"]]
        if not first_reader:
            rows.append([patient_id, "", "", "", "", 0])
        for r in first_reader:
            x0, y0, x1, y1 = (float(r[k]) for k in ("x_min", "y_min", "x_max", "y_max"))
            rows.append([patient_id, x0, y0, x1 - x0, y1 - y0, 1])  # xyxy -> xywh
    with open(root / "stage_2_train_labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["patientId", "x", "y", "width", "height", "Target"])
        writer.writerows(rows)
    return root


rsna_dir = write_rsna_standin(workdir / "rsna-pneumonia")
print((rsna_dir / "stage_2_train_labels.csv").read_text().splitlines()[:4])

# %% [markdown]
# ## A SIIM-ACR Pneumothorax stand-in
#
# SIIM publishes `train-rle.csv` with the header `ImageId, EncodedPixels` (the second name really starts with a
# space) and one row per pneumothorax instance; `-1` means none. The masks are run-length encoded on the image
# flattened column by column, as pairs of (gap since the end of the previous run, run length). The DICOMs are
# nested as `dicom-images-train/<StudyUID>/<SeriesUID>/<ImageId>.dcm`.
#
# We draw each synthetic lesion as an ellipse inside its true box, encode it with
# `monai_explain.transforms.encode_siim_rle` (a mask stored as (rows, columns), as the DICOM pixel array is), and
# nest the DICOMs the SIIM way.


# %%
def ellipse_mask(box: list[float], shape: tuple[int, int]) -> np.ndarray:
    """Filled ellipse inscribed in ``box`` = (x_min, y_min, x_max, y_max), half-open, on a (rows, columns) grid."""
    x0, y0, x1, y1 = box
    rr, cc = np.mgrid[: shape[0], : shape[1]] + 0.5
    return ((cc - (x0 + x1) / 2) / ((x1 - x0) / 2)) ** 2 + ((rr - (y0 + y1) / 2) / ((y1 - y0) / 2)) ** 2 <= 1.0


def write_siim_standin(root: Path) -> Path:
    with open(vindr_dir / "truth_boxes.csv") as f:
        lesions = [r for r in csv.DictReader(f) if r["object"] == "lesion"]
    rows = []
    for k, image_id in enumerate(image_ids):
        folder = root / "dicom-images-train" / f"1.2.276.0.7230010.3.1.2.{k}" / f"1.2.276.0.7230010.3.1.3.{k}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(vindr_dir / "train" / f"{image_id}.dicom", folder / f"{image_id}.dcm")
        boxes = [
            [float(r[c]) for c in ("x_min", "y_min", "x_max", "y_max")] for r in lesions if r["image_id"] == image_id
        ]
        if not boxes:
            rows.append([image_id, "-1"])
        for box in boxes:
            rows.append([image_id, encode_siim_rle(ellipse_mask(box, (S["image_size"],) * 2))])
    with open(root / "train-rle.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ImageId", " EncodedPixels"])
        writer.writerows(rows)
    return root


siim_dir = write_siim_standin(workdir / "siim-acr")
print([line[:90] for line in (siim_dir / "train-rle.csv").read_text().splitlines()[:3]])

# %% [markdown]
# ## What the adapters make of each copy
#
# The bundle reads data through `monai_explain.data.build_datalist(dataset, dataset_dir, split, classes=...)`,
# which calls the data set's adapter (`get_adapter("rsna", dataset_dir=...)`), picks the split and narrows the
# labels to `classes`. The adapters differ in what they return: VinDr gives a multi-hot label over its
# findings, RSNA and SIIM (single-finding data sets) an `int` label; `build_datalist` turns all of them into a
# float list over `classes`, the shape the bundle's `BCEWithLogitsLoss` wants. RSNA boxes come back as corners
# (xyxy), converted from the published xywh; SIIM records carry `rle` strings instead of boxes.
#
# The SIIM adapter checks that each RLE fits in a 1024 x 1024 image, SIIM's size. Our stand-in images are smaller,
# so we give it the real size through `adapter_kwargs` (on the command line: `--adapter_kwargs "{'image_size':
# [64, 64]}"`).
#
# One more difference matters to the mask transform. VinDr-CXR has three readers per image, and the bundle fuses
# their boxes into one soft mask by default (`box_fusion="mean"`: the fraction of readers who marked a pixel). RSNA
# publishes one set of boxes per image without reader ids, so there is nothing to fuse, and `BoxesToMaskd` refuses
# to fuse boxes without reader ids. Turn fusion off (all boxes of an image drawn into one mask) with
# `--box_fusion '$None'`: the value must be the config expression `$None`, because `monai.bundle run` drops a plain
# `None` override and the default would stay. The same holds for NIH ChestX-ray14 and MS-CXR.

# %%
DATASETS = {
    "vindr": {"dataset_dir": vindr_dir, "classes": ["Nodule/Mass"], "adapter_kwargs": {}, "overrides": {}},
    "rsna": {
        "dataset_dir": rsna_dir,
        "classes": ["Lung Opacity"],
        "adapter_kwargs": {},
        "overrides": {"box_fusion": "$None"},  # one reader, no reader ids: no fusion
    },
    "siim": {
        "dataset_dir": siim_dir,
        "classes": ["Pneumothorax"],
        "adapter_kwargs": {"image_size": [S["image_size"]] * 2},  # the RLE check uses the real image size
        "overrides": {},  # the mask transform is replaced by an override file, below
    },
}
for name, d in DATASETS.items():
    raw = get_adapter(name, dataset_dir=d["dataset_dir"], **d["adapter_kwargs"]).load()
    positive = next(r for r in raw if np.any(r["label"]))
    train = build_datalist(name, d["dataset_dir"], "train", classes=d["classes"], adapter_kwargs=d["adapter_kwargs"])
    shown = {k: positive[k] for k in ("label", "boxes", "rle") if k in positive}
    if "rle" in shown:
        shown["rle"] = [s[:40] + "..." for s in shown["rle"]]
    if "label" in shown and len(np.atleast_1d(shown["label"])) > 4:
        shown["label"] = f"multi-hot over {len(shown['label'])} classes"
    print(f"{name}: {len(raw)} images; adapter record {shown}")
    print(f"{'':>{len(name)}}  build_datalist(train): {len(train)} images, label {train[0]['label']!r}")

# %% [markdown]
# ## The SIIM override: masks from RLE instead of boxes
#
# In `configs/train.json` the list `preprocessing_transforms` holds `LoadImaged` at index 0 and the annotation-to-mask
# transform at index 1 (`BoxesToMaskd` reading the `boxes` key). For SIIM we replace entry 1 by `RLEToMaskd` reading the
# `rle` key. SIIM has one finding, so all instances of an image are merged into one mask channel (the default without
# `num_classes`; per-class masks would need an `rle_labels` key, which the SIIM adapter does not write since there is
# nothing to tell apart). An override file is a second config file given after `train.json`: its keys use `#` to reach
# into the first one. The RLE is decoded in the grid of the image as loaded, before the bundle's `Resized`, so the mask
# then follows the image through every spatial transform.
#
# Another way, without a second config file: save the transform's dictionary alone (the value below, without its
# key) as `rle_mask.json` and pass `--preprocessing_transforms#1 %rle_mask.json`: MONAI's `%file` reference replaces
# entry 1 by the file's content.

# %%
siim_override = workdir / "siim_rle_mask.json"
siim_override.write_text(
    json.dumps(
        {
            "preprocessing_transforms#1": {
                "_target_": "monai_explain.transforms.RLEToMaskd",
                "keys": "rle",
                "ref_key": "image",
                "mask_key": "mask",
            }
        },
        indent=4,
    )
    + "\n"
)
print(siim_override.read_text())

# %% [markdown]
# A quick check before training: put one positive SIIM record through the bundle's own preprocessing (parsed with
# the override) and compare the mask's extent with the lesion's true box.

# %%
check = monai.bundle.ConfigParser()
check.read_config([str(TRAIN_CONFIG), str(siim_override)])
check.update({"bundle_root": str(workdir / "runs" / "check"), "dataset": "siim", "dataset_dir": str(siim_dir),
              "classes": ["Pneumothorax"], "image_size": [S["image_size"]] * 2,
              "adapter_kwargs": DATASETS["siim"]["adapter_kwargs"]})  # fmt: skip
record = next(r for r in check.get_parsed_content("train_datalist") if r["label"][0] > 0)
item = check.get_parsed_content("validate#preprocessing")(record)
mask = np.asarray(item["mask"][0]) > 0.5  # (x, y): MONAI's first spatial axis is the image column
xs, ys = np.nonzero(mask)
with open(vindr_dir / "truth_boxes.csv") as f:
    truth = next(r for r in csv.DictReader(f) if r["image_id"] == record["id"] and r["object"] == "lesion")
x0, y0, x1, y1 = (int(truth[k]) for k in ("x_min", "y_min", "x_max", "y_max"))  # half-open: last pixel = max - 1
print(f"RLE mask covers columns {xs.min()}..{xs.max()}, rows {ys.min()}..{ys.max()}; "
      f"the lesion's true box: columns {x0}..{x1 - 1}, rows {y0}..{y1 - 1}")  # fmt: skip
assert (xs.min(), xs.max(), ys.min(), ys.max()) == (x0, x1 - 1, y0, y1 - 1), "mask and box disagree"

# %% [markdown]
# ## Train the bundle on each copy
#
# `monai.bundle.run(...)` is what `python -m monai.bundle run ...` calls: the same arguments, in this process. The
# equivalent command line is printed before each run. The bundle reads `dataset_dir` as it is (data preparation
# is a separate config). Each run trains, validates every epoch (ROC AUC, accuracy, saliency precision and
# coverage, chance level), saves `models/model.pt` and overlay images, and logs to MLflow.

# %%
COMMON = {"epochs": S["epochs"], "image_size": [S["image_size"]] * 2,
          "batch_size": S["batch_size"], "tracking_uri": TRACKING_URI}  # fmt: skip


def run_bundle(name: str, extra_configs: tuple[Path, ...] = ()) -> dict[str, float]:
    d = DATASETS[name]
    configs = [str(TRAIN_CONFIG), *map(str, extra_configs)]
    overrides = {"bundle_root": str(workdir / "runs" / name), "dataset": name, "dataset_dir": str(d["dataset_dir"]),
                 "classes": d["classes"], "experiment_name": f"cxr_expl_{name}", **COMMON}  # fmt: skip
    if d["adapter_kwargs"]:
        overrides["adapter_kwargs"] = d["adapter_kwargs"]
    overrides.update(d["overrides"])
    config_arg = configs[0] if len(configs) == 1 else json.dumps(configs)
    cli = ["python", "-m", "monai.bundle", "run", "--config_file", config_arg]
    cli += [t for k, v in overrides.items() for t in (f"--{k}", v if isinstance(v, str) else json.dumps(v))]
    print("$", shlex.join(cli))
    monai.bundle.run(
        config_file=configs,
        meta_file=str(BUNDLE / "configs" / "metadata.json"),
        logging_file=str(BUNDLE / "configs" / "logging.conf"),
        **overrides,
    )
    client = mlflow.MlflowClient(tracking_uri=TRACKING_URI)
    experiment = client.get_experiment_by_name(f"cxr_expl_{name}")
    run = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])[0]
    return {k: v for k, v in run.data.metrics.items() if k.startswith("val_")}


metrics = {}
metrics["vindr"] = run_bundle("vindr")
metrics["rsna"] = run_bundle("rsna")
metrics["siim"] = run_bundle("siim", extra_configs=(siim_override,))

# %% [markdown]
# ## Validation metrics of the last epoch
#
# Read back from MLflow (`mlflow ui --backend-store-uri sqlite:///<workdir>/mlruns.db` shows the same, with the
# loss curves, parameters and overlay images). Saliency precision is to be read against the chance level, the
# annotated fraction of the image. With `--quick` the models saw one epoch of 24 images: the numbers only show
# that every path runs.

# %%
columns = ("val_auc", "val_accuracy", "val_saliency_precision", "val_saliency_coverage", "val_chance_level")
print(f"{'dataset':<8}" + "".join(f"{c:>24}" for c in columns))
for name, m in metrics.items():
    print(f"{name:<8}" + "".join(f"{m.get(c, float('nan')):>24.3f}" for c in columns))
(workdir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
for name in metrics:
    print(f"{name}: {sorted(p.name for p in (workdir / 'runs' / name / 'models').glob('*.pt'))}")
