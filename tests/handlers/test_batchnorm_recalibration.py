from __future__ import annotations

import logging

import pytest
import torch
from ignite.engine import Engine, Events
from torch import nn

from monai_explain.handlers import BatchNormRecalibration, recalibrate_batchnorm


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(12, 2, generator=g) * torch.tensor([2.0, 0.5]) + torch.tensor([3.0, -1.0])


def test_statistics_equal_the_data_statistics():
    x = _data()
    net = nn.Sequential(nn.BatchNorm1d(2), nn.Linear(2, 1))
    net.eval()
    # one batch: running mean / variance become exactly that batch's mean and unbiased variance
    assert recalibrate_batchnorm(net, [{"image": x}]) == 12
    bn = net[0]
    assert torch.allclose(bn.running_mean, x.mean(0), atol=1e-6)
    assert torch.allclose(bn.running_var, x.var(0, unbiased=True), atol=1e-5)
    assert bn.momentum == 0.1 and not net.training, "momentum and eval mode restored"
    # two equal batches: the plain average of the two batches' statistics
    a, b = x[:6], x[6:]
    net.train()
    recalibrate_batchnorm(net, [(a,), (b,)])
    assert torch.allclose(bn.running_mean, (a.mean(0) + b.mean(0)) / 2, atol=1e-6)
    assert torch.allclose(bn.running_var, (a.var(0) + b.var(0)) / 2, atol=1e-5)
    assert net.training
    assert recalibrate_batchnorm(net, [a, b], max_batches=1) == 6
    assert torch.allclose(bn.running_mean, a.mean(0), atol=1e-6)


def test_no_batchnorm_and_no_data(caplog):
    lin = nn.Linear(2, 1)
    w = lin.weight.detach().clone()
    assert recalibrate_batchnorm(lin, [_data()]) == 0 and torch.equal(lin.weight, w)
    bn = nn.BatchNorm1d(2)
    bn.running_mean.fill_(5.0)
    with caplog.at_level(logging.WARNING):
        assert recalibrate_batchnorm(bn, []) == 0
    assert "no batch seen" in caplog.text and bn.running_mean.tolist() == [0.0, 0.0]


def test_handler_runs_at_epoch_end_before_later_handlers():
    x = _data()
    net = nn.Sequential(nn.BatchNorm1d(2), nn.Linear(2, 1))
    engine = Engine(lambda e, b: None)
    engine.network = net
    handler = BatchNormRecalibration([{"image": x}], interval=2)
    handler.attach(engine)
    handler.attach(engine)
    seen = []
    engine.add_event_handler(
        Events.EPOCH_COMPLETED, lambda e: seen.append((e.state.epoch, net[0].running_mean.clone()))
    )
    engine.run([0], max_epochs=2)
    assert torch.equal(seen[0][1], torch.zeros(2)), "epoch 1: interval 2, nothing yet"
    assert torch.allclose(seen[1][1], x.mean(0), atol=1e-6), "epoch 2: re-estimated before the next handler"
    with pytest.raises(KeyError):
        recalibrate_batchnorm(net, [{"img": x}])
