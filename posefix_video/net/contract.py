"""The input contract of a model: what the network expects to see, stored in the checkpoint beside the weights.

A network is only correct with the input it was trained on. Our models take RGB crops normalised with the ImageNet
mean/std next to peak-1 input-pose Gaussians; the authors' TF models (imported by net/posefix_tf.py) take BGR
crops minus the RGB-ordered ImageNet means, no std, next to peak-255 Gaussians. The contract records those
numbers; `heatmaps.make_network_input` is the one place that applies them (refiner, trainer and exports alike).

Stored in our checkpoints under the key `input_contract` (a plain dict, `to_dict`). Checkpoints written before the
contract existed get `InputContract.ours(cfg)`, which reproduces their input bit for bit.

Fields:
    channel_order: "RGB" or "BGR", the order of the three image channels as fed to the first conv. Frames are RGB
        everywhere in this package; "BGR" reverses them (a channel permutation, exact) before normalising.
    mean, std: three numbers each, 0-255 pixel units, in the order of the channels AS FED: image = (x - mean) / std.
    heatmap_peak: value of an input-pose Gaussian at its centre (1 ours, 255 official).
    sigma: input-pose Gaussian sigma in crop pixels.
    bn_eps: the BatchNorm epsilon the weights were trained with (the network applies ModelConfig.bn_eps; the two
        must agree, checked on load).
    layout: keypoint layout name of the model's 17 slots ("coco17" or "posetrack18").
    decoder: how heatmaps become coordinates. "soft_argmax" (PoseFix, the default: files without the key get it):
        coordinate = stride * E[cell index] under each map's softmax, cell i <-> crop pixel stride*i (no
        half-pixel shift), ours and the official code's;
        for top-down SimpleBaseline models (net/topdown.py) "argmax_msra" or "argmax_mmpose": integer argmax plus a
        quarter-cell shift, with Microsoft's or mmpose's border and max <= 0 rules, box recipe and crop matrix
        (docs/model.md). Top-down models ignore heatmap_peak and sigma (no input pose).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from posefix_video.config import ModelConfig, from_dict
from posefix_video.errors import CheckpointError, ConfigError
from posefix_video.keypoints import LAYOUTS

CONTRACT_KEY = "input_contract"
CHANNEL_ORDERS = ("RGB", "BGR")
DECODERS = ("soft_argmax", "argmax_msra", "argmax_mmpose")

# Our normalisation: the ImageNet mean/std x 255, as float32 products (torch.tensor(IMAGENET_MEAN) * 255 in
# float32, what our models were trained with), so old checkpoints see the very same input bits.
OURS_MEAN = (123.67500305175781, 116.27999877929688, 103.52999877929688)
OURS_STD = (58.39500045776367, 57.12000274658203, 57.375)
OURS_HEATMAP_PEAK = 1.0
# The official code (config.py pixel_means) subtracts the slim/ImageNet RGB means from the BGR image as read by
# OpenCV: B - 123.68, G - 116.78, R - 103.94 (the mismatch is the authors', and their weights depend on it).
OFFICIAL_MEAN_FED = (123.68, 116.78, 103.94)
OFFICIAL_HEATMAP_PEAK = 255.0
# TF 1.x fused batch norm clamps the requested 1e-9 to 1.001e-5 ("a requirement by CUDNN").
OFFICIAL_BN_EPS = 1.001e-5


@dataclass(frozen=True)
class InputContract:
    """What a model expects as input and how its output reads (see the module docstring for each field)."""

    channel_order: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    heatmap_peak: float
    sigma: float
    bn_eps: float
    layout: str
    decoder: str = "soft_argmax"

    def __post_init__(self) -> None:
        if self.channel_order not in CHANNEL_ORDERS:
            raise ConfigError(f"channel_order must be one of {', '.join(CHANNEL_ORDERS)}, got {self.channel_order!r}")
        for name in ("mean", "std"):
            v = getattr(self, name)
            if len(v) != 3 or not all(math.isfinite(x) for x in v):
                raise ConfigError(f"{name} must be 3 finite numbers, got {list(v)}")
        if not all(s > 0 for s in self.std):
            raise ConfigError(f"std must be > 0, got {list(self.std)}")
        for name in ("heatmap_peak", "sigma", "bn_eps"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ConfigError(f"{name} must be a finite number > 0, got {v!r}")
        if self.layout not in LAYOUTS:
            raise ConfigError(f"layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if self.decoder not in DECODERS:
            raise ConfigError(f"decoder must be one of {', '.join(DECODERS)}, got {self.decoder!r}")

    # -----------------------------------------------------------------------------------------------------------
    # the two contracts in use

    @classmethod
    def ours(cls, cfg: ModelConfig) -> InputContract:
        """Our models' contract (also what checkpoints without an `input_contract` entry get)."""
        return cls(channel_order="RGB", mean=OURS_MEAN, std=OURS_STD, heatmap_peak=OURS_HEATMAP_PEAK,
                   sigma=cfg.input_sigma, bn_eps=cfg.bn_eps, decoder="soft_argmax", layout=cfg.layout)

    @classmethod
    def official_posefix(cls, layout: str, sigma: float = 7.0) -> InputContract:
        """The authors' TF models (mks0601/PoseFix_RELEASE): BGR minus RGB-ordered means, no std, peak 255.

        Args:
            layout: "coco17" or "posetrack18" (the dataset the model was trained on).
            sigma: 7 at 256x192, 9 at 384x288 (the official config).
        """
        return cls(channel_order="BGR", mean=OFFICIAL_MEAN_FED, std=(1.0, 1.0, 1.0),
                   heatmap_peak=OFFICIAL_HEATMAP_PEAK, sigma=float(sigma), bn_eps=OFFICIAL_BN_EPS,
                   decoder="soft_argmax", layout=layout)

    def replace(self, **changes: Any) -> InputContract:
        return dataclasses.replace(self, **changes)

    # -----------------------------------------------------------------------------------------------------------
    # storage

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the checkpoint (tuples become lists)."""
        d = dataclasses.asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, data: Any, source: str = "input_contract") -> InputContract:
        """Reads `to_dict`'s output; unknown or missing keys and bad values raise CheckpointError naming `source`."""
        if not isinstance(data, dict):
            raise CheckpointError(f"{source}: must be a mapping, got {type(data).__name__}")
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.name not in data and f.default is dataclasses.MISSING]  # defaulted: added later
        if missing:
            raise CheckpointError(f"{source}: missing key(s) {missing}")
        try:
            return from_dict(cls, dict(data), source=source)
        except ConfigError as e:
            raise CheckpointError(str(e)) from None

    def check_model(self, cfg: ModelConfig, source: str) -> None:
        """Raises CheckpointError when the contract and the model config disagree (sigma, BN epsilon, layout)."""
        diffs = []
        if self.layout != cfg.layout:
            diffs.append(f"layout {self.layout!r} vs model_config {cfg.layout!r}")
        if not math.isclose(self.sigma, cfg.input_sigma, rel_tol=1e-9):
            diffs.append(f"sigma {self.sigma} vs model_config {cfg.input_sigma}")
        if not math.isclose(self.bn_eps, cfg.bn_eps, rel_tol=1e-9):
            diffs.append(f"bn_eps {self.bn_eps} vs model_config {cfg.bn_eps}")
        if diffs:
            raise CheckpointError(f"{source}: input_contract does not match model_config: {'; '.join(diffs)}")

    def describe(self) -> str:
        """One line for logs and `pipelines.models`."""
        return (f"{self.channel_order} minus {list(self.mean)} / {list(self.std)}, heatmap peak "
                f"{self.heatmap_peak:g} sigma {self.sigma:g}, bn_eps {self.bn_eps:g}, {self.layout}")
