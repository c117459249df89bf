"""ExplanationLossHandler on a stock MONAI SupervisedTrainer: the gradients are exactly those of
task_loss + lambda * ExplanationLoss, computed here by hand."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from monai.engines import SupervisedTrainer
from monai.networks.nets import DenseNet

from monai_explain.handlers import ExplanationLossHandler, LinearWarmupLambda, loss_terms
from monai_explain.losses import ExplanationLoss
from monai_explain.saliency import CAM, GradCAM, InputGradient


def _net(out_channels: int = 2) -> torch.nn.Module:
    return DenseNet(
        spatial_dims=2, in_channels=1, out_channels=out_channels, init_features=8, growth_rate=4, block_config=(2, 2)
    )


def _batch(b: int = 4, size: int = 32) -> dict:
    g = torch.Generator().manual_seed(1)
    image = torch.rand(b, 1, size, size, generator=g)
    label = torch.tensor([1, 0, 1, 1])[:b]
    mask = torch.zeros(b, 1, size, size)
    mask[0, :, 4:12, 6:14] = 1.0
    mask[2, :, 16:30, 2:10] = 1.0
    mask[3, :, 20:24, 20:28] = 1.0  # sample 1 (label 0) has no annotation: excluded from the explanation mean
    return {"image": image, "label": label, "mask": mask}


def _manual_cam_energy(net: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Task loss and energy loss computed without monai_explain: forward split by hand, CAM from the fc weights."""
    feats = F.relu(net.features(batch["image"]))
    logits = net.class_layers.out(feats.mean(dim=(2, 3)))
    task = F.cross_entropy(logits, batch["label"])
    w = net.class_layers.out.weight[batch["label"]]  # (B, K)
    cam = F.relu(torch.einsum("bk,bkhw->bhw", w, feats))[:, None]
    cam = F.interpolate(cam, size=batch["mask"].shape[2:], mode="bilinear", align_corners=False)
    inside = (cam * batch["mask"]).sum(dim=(1, 2, 3)) / cam.sum(dim=(1, 2, 3)).clamp_min(1e-8)
    annotated = batch["mask"].flatten(1).amax(dim=1) > 0
    energy = (1.0 - inside)[annotated].mean()
    return task, energy


def _train_one_step(net, batch, handler, **trainer_kwargs) -> SupervisedTrainer:
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=[batch],
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.0),  # lr 0: the step leaves .grad to inspect
        loss_function=torch.nn.CrossEntropyLoss(),
        train_handlers=[handler] if handler is not None else None,
        **trainer_kwargs,
    )
    trainer.run()
    return trainer


@pytest.mark.parametrize("method", [CAM, GradCAM])
@pytest.mark.parametrize("lam", [0.5, 2.0])
def test_gradients_equal_hand_written_step(method, lam):
    batch = _batch()
    net = _net()
    ref = copy.deepcopy(net)
    params = [p for p in ref.parameters() if p.requires_grad]
    task, energy = _manual_cam_energy(ref, batch)
    g_total = torch.autograd.grad(task + lam * energy, params)

    handler = ExplanationLossHandler(method(net, "class_layers.relu"), ExplanationLoss("energy"), lambda_=lam)
    trainer = _train_one_step(net, batch, handler)
    for (name, p), g in zip(net.named_parameters(), g_total):
        assert torch.allclose(p.grad, g, atol=1e-6, rtol=1e-4), name
    terms = loss_terms(trainer.state.output)
    assert terms["lambda"] == lam
    assert terms["task_loss"] == pytest.approx(float(task), rel=1e-5)
    assert terms["expl_loss"] == pytest.approx(float(energy), rel=1e-5)
    assert terms["loss"] == pytest.approx(float(task + lam * energy), rel=1e-5)
    assert not net.class_layers.relu._forward_hooks, "hooks must be removed when the run completes"


def test_difference_to_plain_step_is_lambda_times_explanation_gradient():
    batch = _batch()
    lam = 0.7
    plain = _net()
    supervised = copy.deepcopy(plain)
    ref = copy.deepcopy(plain)
    _train_one_step(plain, batch, None)
    _train_one_step(supervised, batch, ExplanationLossHandler(CAM(supervised), ExplanationLoss("energy"), lam))
    _, energy = _manual_cam_energy(ref, batch)
    g_expl = torch.autograd.grad(energy, list(ref.parameters()), allow_unused=True)
    for (name, p0), p1, ge in zip(plain.named_parameters(), supervised.parameters(), g_expl):
        expected = lam * (ge if ge is not None else torch.zeros_like(p0))
        assert torch.allclose(p1.grad - p0.grad, expected, atol=1e-6, rtol=1e-4), name


def test_lambda_schedule_and_zero_lambda_skip():
    batch = _batch()
    net = _net()
    handler = ExplanationLossHandler(CAM(net), ExplanationLoss("energy"), lambda_=LinearWarmupLambda(end=1.0, warmup=2))
    trainer = _train_one_step(net, batch, handler)
    terms = loss_terms(trainer.state.output)
    assert terms["lambda"] == 0.0  # first iteration of the warm-up
    assert terms["loss"] == terms["task_loss"]
    assert terms["expl_loss"] != terms["expl_loss"]  # NaN: not computed when lambda is 0


def test_gradient_accumulation_matches_mean_of_two_steps():
    b1, b2 = _batch(), _batch()
    b2 = {k: (v.flip(-1) if k != "label" else v.flip(0)) for k, v in b2.items()}
    lam = 1.5
    net = _net()
    ref = copy.deepcopy(net)
    params = list(ref.parameters())
    total = 0
    for b in (b1, b2):
        task, energy = _manual_cam_energy(ref, b)
        total = total + (task + lam * energy) / 2
    expected = torch.autograd.grad(total, params)
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=[b1, b2],
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.0),
        loss_function=torch.nn.CrossEntropyLoss(),
        train_handlers=[ExplanationLossHandler(CAM(net), ExplanationLoss("energy"), lam)],
        accumulation_steps=2,
    )
    trainer.run()
    for (name, p), g in zip(net.named_parameters(), expected):
        assert torch.allclose(p.grad, g, atol=1e-6, rtol=1e-4), name


def test_input_gradient_method_uses_the_trainers_own_forward():
    batch = _batch()
    net = _net()
    calls = []
    net.register_forward_hook(lambda m, i, o: calls.append(1))
    handler = ExplanationLossHandler(InputGradient(net), ExplanationLoss("outside"), lambda_=10.0)
    trainer = _train_one_step(net, batch, handler)
    assert len(calls) == 1, "no second forward pass for input-gradient saliency"
    terms = loss_terms(trainer.state.output)
    assert terms["expl_loss"] > 0 and torch.isfinite(torch.tensor(terms["loss"]))
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_amp_flag_runs_and_stays_finite():
    batch = _batch()
    net = _net()
    handler = ExplanationLossHandler(CAM(net), ExplanationLoss("energy"), lambda_=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GradScaler warns that CUDA is absent on a CPU machine
        trainer = _train_one_step(net, batch, handler, amp=True)
    assert all(torch.isfinite(torch.tensor(v)) for k, v in loss_terms(trainer.state.output).items())


def test_missing_mask_key_is_a_clear_error():
    batch = _batch()
    del batch["mask"]
    net = _net()
    handler = ExplanationLossHandler(CAM(net), ExplanationLoss("energy"), lambda_=1.0)
    with pytest.raises(KeyError, match="mask key 'mask' not in the batch"):
        _train_one_step(net, batch, handler)
    assert not net.class_layers.relu._forward_hooks, "hooks must be removed after an exception"


# -- non-finite settings and inputs are refused before any optimizer step ----------------------------------------------
def _meta_batch(bad_row: int | None = 1, value: float = float("nan")) -> dict:
    from monai.data import MetaTensor

    batch = _batch()
    image = batch["image"].clone()
    if bad_row is not None:
        image[bad_row, 0, 3, 5] = value
    files = [f"/data/img{i}.dcm" for i in range(image.shape[0])]
    batch["image"] = MetaTensor(image, meta={"filename_or_obj": files})
    batch["id"] = [f"img{i}" for i in range(image.shape[0])]
    return batch


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda p: torch.optim.SGD(p, lr=float("nan")),  # SGD accepts a NaN learning rate
        lambda p: torch.optim.Adam(p, lr=float("inf")),  # every optimizer accepts an infinite one
    ],
)
def test_non_finite_learning_rate_is_refused_at_attach(make_optimizer):
    net = _net()
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=[_batch()],
        network=net,
        optimizer=make_optimizer(net.parameters()),
        loss_function=torch.nn.CrossEntropyLoss(),
    )
    handler = ExplanationLossHandler(CAM(net), ExplanationLoss("energy"), lambda_=1.0)
    match = r"learning rate \(optimizer param_groups\[0\]\['lr'\], bundle key 'learning_rate'\)"
    with pytest.raises(ValueError, match=match):
        handler.attach(trainer)


def test_learning_rate_changed_after_attach_is_refused_when_the_run_starts():
    net = _net()
    before = copy.deepcopy(net.state_dict())
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=[_batch()],
        network=net,
        optimizer=optimizer,
        loss_function=torch.nn.CrossEntropyLoss(),
        train_handlers=[ExplanationLossHandler(CAM(net), ExplanationLoss("energy"), lambda_=1.0)],
    )
    optimizer.param_groups[0]["lr"] = float("inf")
    with pytest.raises(ValueError, match=r"must be a finite number >= 0, got inf"):
        trainer.run()
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items()), "no optimizer step ran"


@pytest.mark.parametrize("check_finite", [None, False])
@pytest.mark.parametrize("lam", [1.0, LinearWarmupLambda(end=1.0, warmup=2)])  # lambda 0 at the first step
def test_nan_image_is_refused_before_the_optimizer_step_naming_id_and_file(check_finite, lam):
    """Before: one optimizer step on a NaN loss, then "CAM needs a global-average-pool + linear head"."""
    net = _net()
    before = copy.deepcopy(net.state_dict())
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=[_meta_batch(bad_row=1)],
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        loss_function=torch.nn.CrossEntropyLoss(),
        train_handlers=[ExplanationLossHandler(CAM(net), ExplanationLoss("energy"), lam, check_finite=check_finite)],
    )
    if check_finite is False and not isinstance(lam, float):
        # no check and no saliency at lambda 0: nothing can see the NaN before the step; documented
        trainer.run()
        return
    match = r"task loss is nan .* refusing the backward pass .* ids \['img1'\], files \['/data/img1.dcm'\]"
    with pytest.raises(ValueError, match=match):
        trainer.run()
    # parameters untouched (the forward itself already moved the BatchNorm running statistics)
    assert all(torch.equal(p, before[k]) for k, p in net.named_parameters()), "no optimizer step ran"
    assert not net.class_layers.relu._forward_hooks


def test_too_small_images_name_the_size_and_the_smallest_accepted():
    """Before: `Given input size: (..x1x1). Calculated output size: (..x0x0). Output size is too small`."""
    net = _net()
    batch = {
        "image": torch.rand(4, 1, 2, 2, generator=torch.Generator().manual_seed(0)),
        "label": torch.tensor([1, 0, 1, 1]),
        "mask": torch.ones(4, 1, 2, 2),
    }
    handler = ExplanationLossHandler(CAM(net), ExplanationLoss("energy"), lambda_=1.0)
    with pytest.raises(ValueError, match=r"'image_size'\) \[2, 2\] is too small .* smallest input it accepts is \d+"):
        _train_one_step(net, batch, handler)
