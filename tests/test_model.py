"""The network: shapes, gradients, torchvision parameter names, FLOP counts."""

from __future__ import annotations

import pytest
import torch

from posefix_video.config import ModelConfig
from posefix_video.net.heatmaps import soft_argmax
from posefix_video.net.model import PoseFixNet, build_model, estimate_flops, model_flop_utilization


@pytest.mark.parametrize("depth", [18, 50])
def test_forward_shapes(depth):
    cfg = ModelConfig(depth=depth, input_size=(64, 32), layout="posetrack18", width=8, deconv_channels=16)
    model = build_model(cfg).eval()
    assert model.conv1.weight.shape == (8, 20, 7, 7)
    with torch.no_grad():
        logits = model(torch.randn(2, 20, 64, 32))
    assert logits.shape == (2, 17, 16, 8)
    coords, _ = soft_argmax(logits)
    assert coords.shape == (2, 17, 2)


@pytest.mark.parametrize("depth", [18, 50])
def test_every_parameter_receives_a_gradient(depth):
    torch.manual_seed(0)
    model = PoseFixNet(depth=depth, num_joints=17, width=8, deconv_channels=16).train()
    logits = model(torch.randn(2, 20, 64, 64))
    coords, _ = soft_argmax(logits)
    (coords.sum() + logits.square().mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_parameter_names_follow_torchvision_resnet():
    names = set(PoseFixNet(depth=50, num_joints=17, width=8, deconv_channels=16).state_dict())
    for key in ("conv1.weight", "bn1.running_var", "layer1.0.conv3.weight", "layer1.0.downsample.0.weight",
                "layer1.0.downsample.1.running_mean", "layer4.2.bn3.bias", "final.weight", "deconv.0.weight"):
        assert key in names
    r18 = set(PoseFixNet(depth=18, num_joints=17, width=8, deconv_channels=16).state_dict())
    assert "layer1.0.downsample.0.weight" not in r18 and "layer2.0.downsample.0.weight" in r18
    assert "layer1.1.conv2.weight" in r18 and "layer1.0.conv3.weight" not in r18


def test_stage_strides_and_channels():
    assert len(PoseFixNet(depth=152, num_joints=17, width=4, deconv_channels=8).layer3) == 36
    model = PoseFixNet(depth=101, num_joints=17, width=4, deconv_channels=8).eval()
    assert len(model.layer3) == 23
    with torch.no_grad():
        feats = model.forward_features(torch.zeros(1, 20, 64, 32))
    assert feats.shape == (1, 4 * 8 * 4, 2, 1)


@pytest.mark.parametrize(
    "depth, size, gflop",
    [(50, (256, 192), 12.16), (152, (384, 288), 60.09), (50, (384, 288), 27.37), (101, (256, 192), 19.44)],
)
def test_flops_match_the_counted_reference_values(depth, size, gflop):
    with torch.device("meta"):  # shapes only: no weights allocated
        model = build_model(ModelConfig(depth=depth, input_size=size))
    assert estimate_flops(model, size) / 1e9 == pytest.approx(gflop, abs=0.01)


def test_flop_count_leaves_the_model_untouched():
    model = PoseFixNet(depth=18, num_joints=17, width=8, deconv_channels=16)
    before = model.conv1.weight.clone()
    assert estimate_flops(model, (64, 48)) > 0
    assert model.conv1.weight.device.type == "cpu" and torch.equal(model.conv1.weight, before)


def test_flops_of_a_single_conv_by_hand():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ConvTranspose2d(8, 2, 4, 2, 1))
    # conv: 16*16 outputs x 8 ch x 3*3*3 MACs; deconv: 16*16*8 inputs x 2 ch x 16 taps
    expected = 2 * (16 * 16 * 8 * 27 + 16 * 16 * 8 * 2 * 16)
    assert estimate_flops(net, (16, 16)) == expected
    assert model_flop_utilization(10.0, 1e9, 1e11) == pytest.approx(0.1)
