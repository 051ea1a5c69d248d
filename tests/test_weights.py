"""ImageNet weight import: RGB into conv1 channels 0-2, strict key/shape checks, clear errors."""

from __future__ import annotations

import pytest
import torch

from posefix_video.errors import CheckpointError
from posefix_video.net.model import PoseFixNet
from posefix_video.net.weights import load_imagenet_weights


def _torchvision_like_state(model: PoseFixNet, seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchvision-format ResNet state dict: our backbone keys, 3-channel conv1, an fc layer."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k in model.backbone_state_keys():
        v = model.state_dict()[k]
        shape = (v.shape[0], 3, *v.shape[2:]) if k == "conv1.weight" else v.shape
        state[k] = torch.randn(shape, generator=g) if v.is_floating_point() else torch.zeros_like(v)
    state["fc.weight"] = torch.randn(1000, model.feature_channels, generator=g)
    state["fc.bias"] = torch.zeros(1000)
    return state


@pytest.fixture(scope="module")
def r50():
    return PoseFixNet(depth=50, num_joints=17, width=64, deconv_channels=32)


def test_loads_resnet50_file_rgb_into_channels_0_to_2_only(r50, tmp_path):
    state = _torchvision_like_state(r50)
    torch.save(state, tmp_path / "resnet50.pth")
    heat_before = r50.conv1.weight[:, 3:].clone()
    head_before = r50.final.weight.clone()
    loaded = load_imagenet_weights(r50, tmp_path / "resnet50.pth")
    assert "conv1.weight" in loaded and not any(k.startswith("fc.") for k in loaded)
    assert torch.equal(r50.conv1.weight[:, :3], state["conv1.weight"])
    assert torch.equal(r50.conv1.weight[:, 3:], heat_before)
    assert torch.equal(r50.layer3[5].conv2.weight,
                       state["layer3.5.conv2.weight"])
    assert torch.equal(r50.layer1[0].downsample[1].running_var, state["layer1.0.downsample.1.running_var"])
    assert torch.equal(r50.final.weight, head_before)


def test_accepts_state_dict_without_bn_step_counters(r50):
    state = {k: v for k, v in _torchvision_like_state(r50).items() if not k.endswith("num_batches_tracked")}
    load_imagenet_weights(r50, state)
    assert torch.equal(r50.bn1.weight, state["bn1.weight"])


def test_rejects_missing_unexpected_and_misshaped_keys(r50, tmp_path):
    state = _torchvision_like_state(r50)
    del state["layer2.1.conv1.weight"]
    state["layer5.0.conv1.weight"] = torch.zeros(1)
    state["layer1.0.conv2.weight"] = torch.zeros(64, 64, 1, 1)
    before = r50.bn1.weight.clone()
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as e:
        load_imagenet_weights(r50, tmp_path / "bad.pth")
    msg = str(e.value)
    assert str(tmp_path / "bad.pth") in msg
    assert "missing key(s): layer2.1.conv1.weight" in msg
    assert "unexpected key(s): layer5.0.conv1.weight" in msg
    assert "layer1.0.conv2.weight is (64, 64, 1, 1) in the file, expected (64, 64, 3, 3)" in msg
    assert torch.equal(r50.bn1.weight, before)  # nothing copied on failure


def test_rejects_a_resnet_of_another_depth():
    r18 = PoseFixNet(depth=18, num_joints=17, width=64, deconv_channels=32)
    r34 = PoseFixNet(depth=34, num_joints=17, width=64, deconv_channels=32)
    with pytest.raises(CheckpointError, match="not an ImageNet ResNet-18 state dict.*unexpected key"):
        load_imagenet_weights(r18, _torchvision_like_state(r34))


def test_rejects_non_state_dicts_and_corrupt_files(r50, tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="list.pth: not a state dict"):
        load_imagenet_weights(r50, tmp_path / "list.pth")
    (tmp_path / "junk.pth").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError, match="junk.pth: cannot read weight file"):
        load_imagenet_weights(r50, tmp_path / "junk.pth")
    with pytest.raises(CheckpointError, match="nope.pth: weight file not found"):
        load_imagenet_weights(r50, tmp_path / "nope.pth")
