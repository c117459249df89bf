"""Hostile-input table (issue 13): every case either raises a clear error naming the key, file or shape at fault,
or is handled as documented.

One row per case: an id, the issue item, a builder ``run(tmp_path)`` doing what a hostile user would do, and either
the expected exception type with a regex the message must match (it must name the key / file / shape), or ``None``
with a ``check(result)`` of the documented handling. The focused tests of each fix live beside its module
(tests/handlers, tests/data, tests/losses, tests/utils, tests/saliency); this table keeps the whole list in one place.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import ROCAUC, from_engine
from monai.networks.nets import DenseNet
from monai.transforms import LoadImaged

from monai_explain.data import CXRDicomReader, PathEscapeError, VinDrCXRAdapter, build_datalist
from monai_explain.handlers import (
    ExplanationLossHandler,
    NaNSafeBestMetric,
    SaliencyCoverageHandler,
    SaliencyPrecisionHandler,
    get_lambda_schedule,
)
from monai_explain.losses import ExplanationLoss
from monai_explain.metrics import compute_saliency_precision
from monai_explain.saliency import CAM
from monai_explain.utils import as_bool, as_float, check_input_size, check_override_keys, safe_file_name
from tests.data.test_dicom import write_dicom, write_rgb_dicom

VINDR_HEADER = "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n"


CXR_TRAIN = Path(__file__).resolve().parents[1] / "bundles" / "cxr_expl" / "configs" / "train.json"


def _user_folder_for_generator(tmp: Path) -> Any:
    from monai_explain.apps.synthetic import generate_shortcut_cxr

    (tmp / "train").mkdir()
    (tmp / "train.csv").write_text(VINDR_HEADER)
    return generate_shortcut_cxr(tmp, n_train=4, n_val=2, n_test=2, n_test_shifted=2, image_size=32)


@dataclass(frozen=True)
class Case:
    id: str
    item: int
    run: Callable[[Path], Any]
    raises: type[BaseException] | None
    match: str = ""
    check: Callable[[Any], bool] | None = None


# -- builders --------------------------------------------------------------------------------------------------------
def _net(block_config=(2, 2)) -> torch.nn.Module:
    torch.manual_seed(0)
    return DenseNet(
        spatial_dims=2, in_channels=1, out_channels=2, init_features=8, growth_rate=4, block_config=block_config
    )


def _engine(epoch: int = 2, iteration: int = 11) -> SimpleNamespace:
    return SimpleNamespace(state=SimpleNamespace(epoch=epoch, iteration=iteration, epoch_length=10))


def _batch(nan_row: int | None = None) -> dict:
    g = torch.Generator().manual_seed(1)
    image = torch.rand(4, 1, 32, 32, generator=g)
    if nan_row is not None:
        image[nan_row, 0, 7, 9] = float("nan")
    mask = torch.zeros(4, 1, 32, 32)
    mask[:, :, 4:12, 6:14] = 1.0
    return {
        "image": MetaTensor(image, meta={"filename_or_obj": [f"/data/train/p{i}.dicom" for i in range(4)]}),
        "label": torch.tensor([1, 0, 1, 1]),
        "mask": mask,
        "id": [f"p{i}" for i in range(4)],
    }


def _attach_with_optimizer(make_optimizer) -> None:
    net = _net()
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=[_batch()],
        network=net,
        optimizer=make_optimizer(net.parameters()),
        loss_function=torch.nn.CrossEntropyLoss(),
    )
    ExplanationLossHandler(CAM(net), ExplanationLoss("energy"), lambda_=1.0).attach(trainer)


def _train_on(batch: dict, net: torch.nn.Module | None = None) -> dict:
    net = _net() if net is None else net
    params = {k: v.clone() for k, v in net.named_parameters()}
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=[batch],
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        loss_function=torch.nn.CrossEntropyLoss(),
        train_handlers=[ExplanationLossHandler(CAM(net), ExplanationLoss("energy"), lambda_=1.0)],
    )
    try:
        trainer.run()
    finally:
        changed = [k for k, v in net.named_parameters() if not torch.equal(v, params[k])]
        assert not changed, f"an optimizer step ran before the error: {changed[:3]}"
    return {}


def _load_dicom(path: str) -> Any:
    return LoadImaged("image", reader=CXRDicomReader(), ensure_channel_first=True)({"image": path})["image"]


def _dicom_with_slope(tmp: Path, slope: str) -> Any:
    pixels = np.arange(1, 13, dtype=np.uint16).reshape(3, 4) * 300
    return _load_dicom(write_dicom(str(tmp / "slope.dcm"), pixels, slope=slope))


def _split_json(tmp: Path, text: str) -> list[dict]:
    (tmp / "train").mkdir()
    (tmp / "train.csv").write_text(VINDR_HEADER + "a,No finding,14,R1,,,,\nb,Nodule/Mass,8,R2,1,1,3,3\n")
    (tmp / "splits.json").write_text(text)
    return build_datalist("vindr", tmp, "train", adapter_kwargs={"check_files": False})


def _symlink_outside(tmp: Path) -> list[dict]:
    (tmp / "elsewhere").mkdir()
    (tmp / "elsewhere" / "passwd.dicom").write_bytes(b"secret")
    root = tmp / "ds"
    (root / "train").mkdir(parents=True)
    (root / "train" / "a.dicom").write_bytes(b"a")
    (root / "train" / "b.dicom").symlink_to(tmp / "elsewhere" / "passwd.dicom")
    (root / "train.csv").write_text(VINDR_HEADER + "a,No finding,14,R1,,,,\nb,No finding,14,R1,,,,\n")
    return VinDrCXRAdapter(root).load()


def _cam_after_a_later_forward(tmp: Path) -> Any:
    net = _net().eval()
    g = torch.Generator().manual_seed(2)
    cam = CAM(net)
    with cam.recording():
        first = net(torch.rand(2, 1, 32, 32, generator=g))
        net(torch.rand(2, 1, 32, 32, generator=g))
        return cam.compute(first, 0)


def _alignment_on_a_split_without_annotations(tmp: Path) -> dict:
    from ignite.engine import Engine

    g = torch.Generator().manual_seed(3)
    engine = Engine(lambda e, b: {"saliency": b[0], "mask": b[1]})
    SaliencyPrecisionHandler().attach(engine, "val_saliency_precision")
    SaliencyCoverageHandler().attach(engine, "val_saliency_coverage")
    engine.run([(torch.rand(4, 1, 8, 8, generator=g), torch.zeros(4, 1, 8, 8))], max_epochs=1)
    return engine.state.metrics


def _nan_auc_first_validation(tmp: Path) -> tuple:
    torch.manual_seed(0)
    loader = [None]
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=loader,
        network=torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 1)),
        key_val_metric={"val_auc": ROCAUC(output_transform=from_engine(["pred", "label"]))},
        val_handlers=[NaNSafeBestMetric()],
    )
    g = torch.Generator().manual_seed(4)
    for epoch, labels in enumerate([[0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0]], 1):
        loader[0] = {"image": torch.rand(4, 1, 4, 4, generator=g), "label": torch.tensor(labels)[:, None]}
        with pytest.warns(UserWarning) if epoch == 1 else nullcontext():  # ROCAUC warns on one class
            evaluator.run(epoch)
        if epoch == 1:
            first = (evaluator.state.best_metric, evaluator.state.best_metric_epoch)
    return first, (evaluator.state.best_metric, evaluator.state.best_metric_epoch)


def _huge_map() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    saliency = (0.25 + 0.75 * torch.rand(2, 1, 6, 5, generator=g)) * 3e38
    mask = torch.zeros(2, 1, 6, 5)
    mask[:, :, 1:4, 1:3] = 1.0
    return saliency, mask


def _finite(x: Any) -> bool:
    return bool(torch.isfinite(torch.as_tensor(x)).all())


# -- the table -------------------------------------------------------------------------------------------------------
CASES = [
    # item 6: non-finite or mistyped lambda, learning rate, inputs; NaN metrics; loss range
    Case(
        "lambda NaN",
        6,
        lambda t: get_lambda_schedule(float("nan")),
        ValueError,
        r"lambda value must be a finite number, got nan",
    ),
    Case(
        "lambda Inf",
        6,
        lambda t: get_lambda_schedule(float("inf")),
        ValueError,
        r"lambda value must be a finite number, got inf",
    ),
    Case(
        "lambda Inf in a warm-up schedule",
        6,
        lambda t: get_lambda_schedule({"name": "linear_warmup", "end": float("inf"), "warmup": 1}),
        ValueError,
        r"lambda schedule 'linear_warmup': lambda end must be a finite number, got inf",
    ),
    Case(
        "lambda NaN in a step schedule",
        6,
        lambda t: get_lambda_schedule({"name": "step", "milestones": [2], "values": [0.0, float("nan")]}),
        ValueError,
        r"'step': lambda values\[1\] must be a finite number, got nan",
    ),
    Case(
        "lambda as text '0.3' (command line)",
        6,
        lambda t: ExplanationLossHandler(CAM(_net()), ExplanationLoss(), lambda_="0.3").schedule(_engine()),
        None,
        check=lambda v: v == pytest.approx(0.3),
    ),
    Case(
        "lambda as text inside a schedule",
        6,
        lambda t: get_lambda_schedule({"name": "linear_warmup", "end": "0.3", "warmup": "2"})(_engine()),
        None,
        check=lambda v: v == pytest.approx(0.15),
    ),
    Case(
        "lambda as non-numeric text",
        6,
        lambda t: ExplanationLossHandler(CAM(_net()), ExplanationLoss(), lambda_="fast"),
        ValueError,
        r"cannot build a lambda schedule from 'fast': lambda value must be a number",
    ),
    Case(
        "learning rate NaN (SGD accepts it)",
        6,
        lambda t: _attach_with_optimizer(lambda p: torch.optim.SGD(p, lr=float("nan"))),
        ValueError,
        r"learning rate \(optimizer param_groups\[0\]\['lr'\], bundle key 'learning_rate'\) .* got nan",
    ),
    Case(
        "learning rate Inf",
        6,
        lambda t: _attach_with_optimizer(lambda p: torch.optim.Adam(p, lr=float("inf"))),
        ValueError,
        r"bundle key 'learning_rate'\) must be a finite number >= 0, got inf",
    ),
    Case(
        "DICOM RescaleSlope NaN",
        6,
        lambda t: _dicom_with_slope(t, "NaN"),
        ValueError,
        r"DICOM file .*slope\.dcm has a non-finite RescaleSlope 'NaN'",
    ),
    Case(
        "DICOM rescale overflowing float32",
        6,
        lambda t: _dicom_with_slope(t, "1e37"),
        ValueError,
        r"DICOM file .*slope\.dcm has 12 pixels that are NaN, Inf or beyond the float32 range",
    ),
    Case(
        "NaN pixels in a training batch",
        6,
        lambda t: _train_on(_batch(nan_row=2)),
        ValueError,
        r"task loss is nan at epoch 1, iteration 1; refusing the backward pass and the optimizer step\. "
        r"images with NaN / Inf values: ids \['p2'\], files \['/data/train/p2\.dicom'\]",
    ),
    Case(
        "validation split without annotated images",
        6,
        _alignment_on_a_split_without_annotations,
        None,
        check=lambda m: all(math.isnan(v) for v in m.values()),
    ),  # NaN, not 0.0000; the count is logged
    Case(
        "NaN AUC at the first validation",
        6,
        _nan_auc_first_validation,
        None,
        check=lambda r: r[0] == (-1, -1) and r[1][1] == 2 and not math.isnan(r[1][0]),
    ),
    Case(
        "energy loss on a finite map of 3e38", 6, lambda t: ExplanationLoss("energy")(*_huge_map()), None, check=_finite
    ),
    Case("kl loss on a finite map of 3e38", 6, lambda t: ExplanationLoss("kl")(*_huge_map()), None, check=_finite),
    Case(
        "dice loss on an unnormalised map of 3e38",
        6,
        lambda t: ExplanationLoss("dice", normalize="none")(*_huge_map()),
        None,
        check=_finite,
    ),
    Case(
        "outside loss whose squares overflow but whose mean fits",
        6,
        lambda t: ExplanationLoss("outside")(
            torch.full((1, 1, 8, 8), 1.5e19), torch.zeros(1, 1, 8, 8).index_fill_(2, torch.tensor([0]), 1.0)
        ),
        None,
        check=_finite,
    ),
    # item 7: obscure errors become clear ones naming the key, file or shape
    Case(
        "zero-size grid (loss)",
        7,
        lambda t: ExplanationLoss()(torch.rand(1, 1, 0, 4), torch.ones(1, 1, 0, 4)),
        ValueError,
        r"saliency map of shape \(1, 1, 0, 4\) has an empty spatial grid",
    ),
    Case(
        "zero-size grid (metric)",
        7,
        lambda t: compute_saliency_precision(torch.rand(2, 1, 5, 0), torch.ones(2, 1, 5, 0)),
        ValueError,
        r"saliency map of shape \(2, 1, 5, 0\) has an empty spatial grid",
    ),
    Case(
        "zero-size mask",
        7,
        lambda t: ExplanationLoss()(torch.rand(1, 1, 4, 4), torch.ones(1, 1, 0, 4)),
        ValueError,
        r"target grid \(mask / image spatial size\) \(0, 4\) is empty",
    ),
    Case(
        "4D spatial resize",
        7,
        lambda t: ExplanationLoss()(torch.rand(1, 1, 2, 2, 2, 2), torch.ones(1, 1, 3, 3, 3, 3)),
        ValueError,
        r"cannot resample a 4D saliency map of shape \(1, 1, 2, 2, 2, 2\) to \(3, 3, 3, 3\): only 1D, 2D and 3D",
    ),
    Case(
        "broken splits.json",
        7,
        lambda t: _split_json(t, '{"a": "train", "b": '),
        ValueError,
        r"split file .*splits\.json is not valid JSON \(Expecting value at line 1, column 21\)",
    ),
    Case(
        "splits.json holding a list",
        7,
        lambda t: _split_json(t, '["train"]'),
        ValueError,
        r"split file .*splits\.json must hold a JSON object",
    ),
    Case(
        "RGB DICOM",
        7,
        lambda t: _load_dicom(write_rgb_dicom(str(t / "rgb.dcm"))),
        ValueError,
        r"DICOM file .*rgb\.dcm is a colour image \(3 samples \(channels\) per pixel, "
        r"PhotometricInterpretation 'RGB'\)",
    ),
    Case(
        "image_size 8 for the bundle's DenseNet",
        7,
        lambda t: check_input_size(_net(block_config=(3, 6, 8)), [8, 8]),
        ValueError,
        r"image_size \[8, 8\] is too small .* the smallest input it accepts is 13 along every spatial axis",
    ),
    Case(
        "images too small in training",
        7,
        lambda t: _train_on({**_batch(), "image": torch.rand(4, 1, 2, 2), "mask": torch.ones(4, 1, 2, 2)}),
        ValueError,
        r"\(bundle key 'image_size'\) \[2, 2\] is too small .* smallest input it accepts is \d+",
    ),
    # item 8: links out of the dataset folder, CAM on another forward
    Case(
        "symlink in the image folder pointing outside dataset_dir",
        8,
        _symlink_outside,
        PathEscapeError,
        r"train\.csv, line 3 \(data row 2\): image 'b' at .*/ds/train/b\.dicom resolves \(through symbolic links\) "
        r"to .*/elsewhere/passwd\.dicom, outside the dataset folder",
    ),
    Case(
        "CAM compute() after a later forward",
        8,
        _cam_after_a_later_forward,
        RuntimeError,
        r"CAM\.compute\(\): the logits \(2, 2\) are not the output of the forward recorded last",
    ),
    # item 1: bundle values given as text on MONAI's command line; mistyped keys; synthetic data into a user folder
    Case(
        "--resume false given as text is false",
        1,
        lambda t: as_bool("false", "resume"),
        None,
        check=lambda r: r is False,
    ),
    Case("--amp nein is an error naming the key", 1, lambda t: as_bool("nein", "amp"), ValueError, r"'amp'"),
    Case("--learning_rate 1e-3x", 1, lambda t: as_float("1e-3x", "learning_rate"), ValueError, r"'learning_rate'"),
    Case(
        "mistyped override --lamda 0.3",
        1,
        lambda t: check_override_keys(str(CXR_TRAIN), ["lamda"]),
        ValueError,
        r"lamda.*did you mean 'lambda'",
    ),
    Case(
        "synthetic generation into a folder holding the user's files",
        1,
        _user_folder_for_generator,
        ValueError,
        r"refusing to generate synthetic data into .*: it holds files the generator did not create \(train, train\.csv\)",
    ),
    # item 2: nested layouts give one output name per record id
    Case(
        "nested CheXlocalize ids give distinct output file names",
        2,
        lambda t: (
            {safe_file_name(f"patient{i}/study1/view1_frontal") for i in range(6)}
            | {safe_file_name("p1/img"), safe_file_name("p2/img")}
        ),
        None,
        check=lambda names: len(names) == 8 and all("/" not in n for n in names),
    ),
    # item 5 (full disk at the best-model save, the error names model.pt): tests/handlers/test_checkpointing.py
    #   ::test_best_model_write_error_names_the_file_and_keeps_the_previous; items 4 and 8 (same run names on one
    #   store, a tracking server that never answers): tests/handlers/test_mlflow_tracking.py and
    #   tests/bundles/test_concurrency.py, which need a live MLflow store.
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, tmp_path: Path) -> None:
    if case.raises is None:
        result = case.run(tmp_path)
        assert case.check is not None and case.check(result), f"{case.id}: not handled as documented: {result!r}"
        return
    with pytest.raises(case.raises) as info:
        case.run(tmp_path)
    message = str(info.value)
    cause = info.value.__cause__  # MONAI's config evaluation wraps errors: the clear message may be the cause's
    assert re.search(case.match, message) or (cause is not None and re.search(case.match, str(cause))), (
        f"{case.id}: message does not name the key / file / shape: {message}"
    )


def test_every_listed_case_has_a_row():
    """At least one row per case listed in items 6, 7 and 8 of issue 13 (the other helpers' rows are comments)."""
    ids = " | ".join(c.id for c in CASES).lower()
    for needle in (
        "lambda nan",
        "lambda inf",
        "lambda as text",
        "learning rate",
        "rescaleslope nan",
        "nan pixels",
        "without annotated",
        "nan auc",
        "energy loss on a finite map of 3e38",
        "zero-size grid",
        "4d spatial resize",
        "broken splits.json",
        "rgb dicom",
        "image_size 8",
        "symlink",
        "cam compute",
    ):
        assert needle in ids, needle
