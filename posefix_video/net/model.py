"""The PoseFix network: a ResNet (v1.5) whose first conv sees RGB + input-pose heatmaps, a deconv head, logits.

Reads top to bottom: blocks, the network, the builder, FLOP counting. The network maps a (B, 3+J, H, W) input
(see `heatmaps.make_network_input`) to (B, J, H/4, W/4) logits; `heatmaps.soft_argmax` turns them into
coordinates (cell i <-> crop pixel 4*i).

Parameter names follow torchvision's ResNet at the top level (conv1, bn1, layer1.0.conv1, ..., layerK.0.downsample.0/1)
so an ImageNet state dict loads by name (`weights.load_imagenet_weights`); the head is `deconv.*` and `final.*`.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from posefix_video.config import ModelConfig
from posefix_video.keypoints import get_layout

# (block type, blocks per stage) of each standard depth
RESNET_SPECS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34); stride on the first."""

    expansion = 1

    def __init__(self, *, in_channels: int, channels: int, stride: int = 1, bn_eps: float = 1e-5):
        super().__init__()
        out = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels, eps=bn_eps)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels, eps=bn_eps)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_channels, out, stride, bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here: v1.5, as torchvision and TF-slim resnet_v1) -> 1x1 with 4x expansion."""

    expansion = 4

    def __init__(self, *, in_channels: int, channels: int, stride: int = 1, bn_eps: float = 1e-5):
        super().__init__()
        out = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels, eps=bn_eps)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels, eps=bn_eps)
        self.conv3 = nn.Conv2d(channels, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out, eps=bn_eps)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_channels, out, stride, bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + identity)


def _downsample(in_channels: int, out_channels: int, stride: int, bn_eps: float) -> nn.Sequential | None:
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels, eps=bn_eps),
    )


class PoseFixNet(nn.Module):
    """ResNet backbone + 3 x (deconv 4x4/2, BN, ReLU) + 1x1 conv to `num_joints` heatmap logits.

    Args:
        depth: ResNet depth (18, 34, 50, 101, 152).
        num_joints: J, heatmap channels in (input pose) and out (logits).
        width: stem channels (64 in standard ResNets); stage k has width * 2**k * expansion channels.
        deconv_channels: channels of each transposed conv (256 in the paper).
        num_deconv: number of stride-2 transposed convs (3 -> heatmaps at 1/4 of the input).
        pose_input: True for PoseFix (image + J input-pose heatmaps into the stem); False for a top-down estimator
            such as SimpleBaseline (image only: a 3-channel stem, otherwise the same network).
        bn_eps: BatchNorm epsilon (1e-5 as PyTorch; imported TF-1 models carry the value they were run with).
    """

    def __init__(self, *, depth: int, num_joints: int, width: int = 64, deconv_channels: int = 256,
                 num_deconv: int = 3, pose_input: bool = True, bn_eps: float = 1e-5):
        super().__init__()
        if depth not in RESNET_SPECS:
            raise ValueError(f"depth must be one of {sorted(RESNET_SPECS)}, got {depth}")
        kind, blocks = RESNET_SPECS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.depth = depth
        self.num_joints = num_joints
        self.pose_input = pose_input
        self.in_channels = 3 + num_joints if pose_input else 3
        self.stride = 32 // 2**num_deconv  # output stride: 4 with the standard 3 deconvs

        # stem: 7x7/2 conv on the image (+ J heatmaps for PoseFix), then 3x3/2 max-pool -> 1/4 resolution
        self.conv1 = nn.Conv2d(self.in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width, eps=bn_eps)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = width
        stages = []
        for i, n in enumerate(blocks):
            stage_width = width * 2**i
            layers = []
            for b in range(n):
                stride = 2 if (b == 0 and i > 0) else 1
                layers.append(block(in_channels=channels, channels=stage_width, stride=stride, bn_eps=bn_eps))
                channels = stage_width * block.expansion
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.feature_channels = channels

        # head (Simple Baselines): each deconv doubles the resolution; BN makes a bias redundant
        head: list[nn.Module] = []
        for _ in range(num_deconv):
            head += [
                nn.ConvTranspose2d(channels, deconv_channels, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(deconv_channels, eps=bn_eps),
                nn.ReLU(inplace=True),
            ]
            channels = deconv_channels
        self.deconv = nn.Sequential(*head)
        self.final = nn.Conv2d(channels, num_joints, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He init for the backbone convs (as torchvision), N(0, 0.001) for the head (as Simple Baselines)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.deconv.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
        nn.init.normal_(self.final.weight, std=0.001)
        nn.init.zeros_(self.final.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3+J, H, W) normalised input -> (B, C, H/32, W/32) backbone features."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, width, H/4, W/4)
        x = self.layer1(x)  # (B, 4*width, H/4, W/4)  (bottleneck; basic: width)
        x = self.layer2(x)  # (B, 8*width, H/8, W/8)
        x = self.layer3(x)  # (B, 16*width, H/16, W/16)
        return self.layer4(x)  # (B, 32*width, H/32, W/32)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C, H/32, W/32) -> (B, J, H/4, W/4) logits."""
        return self.final(self.deconv(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3+J, H, W) network input -> (B, J, H/stride, W/stride) heatmap logits (softmax over each map)."""
        return self.forward_head(self.forward_features(x))

    def backbone_state_keys(self) -> list[str]:
        """State-dict keys of the backbone (the part an ImageNet ResNet provides), in order."""
        return [k for k in self.state_dict() if not k.startswith(("deconv.", "final."))]


def build_model(cfg: ModelConfig) -> PoseFixNet:
    """The one place a ModelConfig becomes network arguments."""
    layout = get_layout(cfg.layout)
    # fmt: off
    return PoseFixNet(
        depth=cfg.depth,
        num_joints=layout.num_joints,
        width=cfg.width,
        deconv_channels=cfg.deconv_channels,
        num_deconv=cfg.num_deconv,
        pose_input=cfg.pose_input,
        bn_eps=cfg.bn_eps,
    )
    # fmt: on


# ---------------------------------------------------------------------------------------------------------------
# FLOPs and utilisation


def estimate_flops(model: nn.Module, input_size: tuple[int, int]) -> float:
    """Forward FLOPs of one crop (2 x multiply-adds), counting convolutions and transposed convolutions only.

    BN, ReLU, adds and soft-argmax are negligible in FLOPs (not in memory traffic). Runs a shape-only forward on
    a "meta" copy of the model, so it costs no compute and leaves `model` untouched.

    Args:
        model: a PoseFixNet (or any conv net taking `model.in_channels` input channels).
        input_size: (H, W) of the crop.
    """
    meta = copy.deepcopy(model).to("meta")
    total = 0.0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        if isinstance(module, nn.ConvTranspose2d):
            # every input element scatters into out_channels x k x k outputs
            macs = inputs[0][0].numel() * (module.out_channels // module.groups) * k
        else:
            macs = output[0].numel() * (module.in_channels // module.groups) * k
        total += 2.0 * macs

    handles = [m.register_forward_hook(hook) for m in meta.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        in_channels = getattr(model, "in_channels", None) or next(
            m.in_channels for m in model.modules() if isinstance(m, nn.Conv2d)
        )
        with torch.no_grad():
            meta(torch.empty(1, in_channels, *input_size, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return total


def model_flop_utilization(crops_per_second: float, flops_per_crop: float, peak_flops: float) -> float:
    """Fraction of the device's peak FLOP/s that a measured rate uses (MFU, 0..1)."""
    return crops_per_second * flops_per_crop / peak_flops
