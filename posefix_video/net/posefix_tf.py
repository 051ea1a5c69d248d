"""The authors' TensorFlow PoseFix models (mks0601/PoseFix_RELEASE) as our PoseFixNet checkpoints.

    imported = convert_posefix_tf("snapshot_140.ckpt", dataset="coco", input_size=(384, 288))
    save_model(imported, out="posefix_coco.pth")                       # net/model_store.py

Variable names -> our state dict (torchvision-style names, model.py), `d` = 50/101/152 read from the names:

    resnet_v1_d/conv1/weights                                  conv1.weight        HWIO -> OIHW
    resnet_v1_d/conv1/BatchNorm/{gamma,beta,moving_mean,moving_variance}
                                                               bn1.{weight,bias,running_mean,running_var}
    resnet_v1_d/blockS/unit_U/bottleneck_v1/convK/...          layer{S}.{U-1}.conv{K} / bn{K}
    resnet_v1_d/blockS/unit_1/bottleneck_v1/shortcut/...       layer{S}.0.downsample.0 / .1
    upI/weights (conv2d_transpose, [kh, kw, out, in])          deconv.{3(I-1)}.weight  -> [in, out, kh, kw]
    upI/BatchNorm/...                                          deconv.{3(I-1)+1}.*
    out/weights, out/biases                                    final.weight (HWIO -> OIHW), final.bias

Both kernel kinds take the same axis permutation (3, 2, 0, 1) and no spatial flip: TF's conv2d_transpose is
the gradient of conv2d with the kernel as stored, exactly what PyTorch's ConvTranspose2d computes with the
kernel as stored (the fixture's "spatially flipped" and "up2/up3 in/out swapped" rows are the two traps; 31 and
40 px). conv1's 20 input channels stay in TF order [B, G, R, 17 heatmaps]; the input contract says "BGR" and
the refiner feeds the image channels in that order.

The checkpoint stores neither the input size nor the dataset: `input_size` is given (the official config knows
256x192 with input sigma 7 and 384x288 with sigma 9, nothing else) and `dataset` picks the keypoint layout.
The BatchNorm epsilon is 1.001e-5, the TF 1.x clamp of the 1e-9 the code asks for. Optimizer state of a training
snapshot (`<var>/Adam`, `<var>/Adam_1`, `beta1_power`, `beta2_power`, `Variable` = the learning rate) is skipped
without being read, and counted.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posefix_video.config import ModelConfig
from posefix_video.errors import CheckpointError
from posefix_video.keypoints import get_layout
from posefix_video.net.contract import InputContract
from posefix_video.net.model import PoseFixNet, build_model
from posefix_video.net.tf_checkpoint import TFCheckpoint

# --dataset -> (our keypoint layout, the authors' dataset tag in their model names)
DATASETS = {"coco": ("coco17", "coco2017"), "posetrack": ("posetrack18", "posetrack2018")}
# the official config.py: input_sigma is defined for these two input sizes only
OFFICIAL_SIGMA = {(256, 192): 7.0, (384, 288): 9.0}
DEPTHS = (50, 101, 152)
BN_EPS = 1.001e-5

_BN = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
_OPTIMIZER_NAMES = {"beta1_power": "Adam beta1_power", "beta2_power": "Adam beta2_power",
                    "Variable": "learning rate (Variable)", "global_step": "global_step"}
_OPTIMIZER_SLOTS = {"Adam": "Adam slots (<var>/Adam)", "Adam_1": "Adam slots (<var>/Adam_1)",
                    "Momentum": "Momentum slots"}


@dataclass
class ImportReport:
    """What an import read and skipped."""

    prefix: Path
    depth: int
    input_size: tuple[int, int]
    layout: str
    imported: int  # TF tensors mapped onto the network
    params: int  # numbers in those tensors
    skipped: dict[str, int] = field(default_factory=dict)  # optimizer-state kind -> tensors skipped (not read)
    outputs: list[Path] = field(default_factory=list)  # files written (filled by model_store.save_model)

    def __str__(self) -> str:
        skipped = sum(self.skipped.values())
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items()))
        lines = [f"read {self.prefix}: ResNet-{self.depth}, {self.imported} tensors, {self.params:,} parameters",
                 f"skipped {skipped} optimizer tensors" + (f" ({kinds})" if kinds else ""),
                 f"model: {self.layout}, input {self.input_size[0]}x{self.input_size[1]}"]
        lines += [f"wrote {p}" for p in self.outputs]
        return "\n".join(lines)


@dataclass
class ImportedModel:
    """A converted network with everything its checkpoint carries (see model_store.save_model)."""

    model: PoseFixNet
    cfg: ModelConfig
    contract: InputContract
    source: dict[str, Any]
    report: ImportReport

    @property
    def suggested_name(self) -> str:
        """posefix-coco-r152-384x288, posefix-pt18-r152-384x288, ..."""
        tag = {"coco17": "coco", "posetrack18": "pt18"}[self.cfg.layout]
        h, w = self.cfg.input_size
        return f"posefix-{tag}-r{self.cfg.depth}-{h}x{w}"


# ---------------------------------------------------------------------------------------------------------------
# names


def tf_name(key: str, depth: int) -> str:
    """The TF variable name of one of our state-dict keys (num_batches_tracked has none: not called for it)."""
    module, _, param = key.rpartition(".")
    parts = module.split(".")
    if parts[0] == "final":
        return {"weight": "out/weights", "bias": "out/biases"}[param]
    if parts[0] == "deconv":
        i, kind = divmod(int(parts[1]), 3)
        return f"up{i + 1}/weights" if kind == 0 else f"up{i + 1}/BatchNorm/{_BN[param]}"
    root = f"resnet_v1_{depth}"
    if parts[0] in ("conv1", "bn1"):
        return f"{root}/conv1/weights" if parts[0] == "conv1" else f"{root}/conv1/BatchNorm/{_BN[param]}"
    stage, unit = int(parts[0][len("layer"):]), int(parts[1]) + 1
    unit_root = f"{root}/block{stage}/unit_{unit}/bottleneck_v1"
    if parts[2] == "downsample":
        return f"{unit_root}/shortcut/weights" if parts[3] == "0" else f"{unit_root}/shortcut/BatchNorm/{_BN[param]}"
    k = parts[2][-1]  # conv1/conv2/conv3 and their bn1/bn2/bn3
    if parts[2].startswith("conv"):
        return f"{unit_root}/conv{k}/weights"
    return f"{unit_root}/conv{k}/BatchNorm/{_BN[param]}"


def name_map(model: PoseFixNet) -> dict[str, str]:
    """TF variable name -> our state-dict key, for every tensor of `model` that TF stores."""
    return {tf_name(k, model.depth): k for k in model.state_dict() if not k.endswith(".num_batches_tracked")}


def optimizer_kind(name: str) -> str | None:
    """The kind of optimizer state `name` is (None for a model variable)."""
    if name in _OPTIMIZER_NAMES:
        return _OPTIMIZER_NAMES[name]
    return _OPTIMIZER_SLOTS.get(name.rpartition("/")[2]) if "/" in name else None


def tf_to_torch(name: str, value: np.ndarray) -> torch.Tensor:
    """One TF tensor in our layout: 4-D kernels (HWIO conv, [kh, kw, out, in] conv2d_transpose) -> (3, 2, 0, 1)."""
    value = np.asarray(value, dtype=np.float32)
    if value.ndim == 4:
        value = value.transpose(3, 2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(value))


def torch_to_tf(key: str, value: torch.Tensor) -> np.ndarray:
    """The inverse of `tf_to_torch` (4-D: (2, 3, 1, 0))."""
    a = value.detach().cpu().numpy()
    return np.ascontiguousarray(a.transpose(2, 3, 1, 0) if a.ndim == 4 else a)


def state_dict_to_tf(model: PoseFixNet) -> dict[str, np.ndarray]:
    """Our network's weights under the TF names and layouts (the round trip of an import)."""
    state = model.state_dict()
    return {tf: torch_to_tf(key, state[key]) for tf, key in name_map(model).items()}


def _names(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return f"{len(items)}: " + shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def detect_depth(names: list[str], where: str) -> int:
    """ResNet depth from the `resnet_v1_<d>/` scope of the variable names."""
    scopes = sorted({m.group(1) for n in names if (m := re.match(r"resnet_v1_(\d+)/", n))})
    if len(scopes) != 1 or int(scopes[0]) not in DEPTHS:
        found = ", ".join(f"resnet_v1_{s}" for s in scopes) or "no resnet_v1_<depth>/ variables"
        raise CheckpointError(f"{where}: not a PoseFix ResNet checkpoint: expected the variables of one of "
                              f"resnet_v1_50/101/152, found {found} (first names: {', '.join(names[:3])})")
    return int(scopes[0])


# ---------------------------------------------------------------------------------------------------------------
# conversion


def convert_posefix_tf(path: str | os.PathLike, *, dataset: str, input_size: tuple[int, int] = (384, 288),
                       check_crc: bool = True) -> ImportedModel:
    """Reads an official PoseFix checkpoint and builds our network from it.

    Args:
        path: the checkpoint prefix, any of its files, or a folder holding one checkpoint.
        dataset: "coco" (coco17 layout) or "posetrack" (posetrack18 layout): what the model was trained on.
        input_size: (H, W) the model was trained at: (384, 288) for both released models, (256, 192) otherwise.
        check_crc: verify each model tensor's crc32c.

    Raises:
        CheckpointError: unreadable checkpoint (see TFCheckpoint), an unknown dataset or input size, a checkpoint
            of another network (missing/unexpected variables named), shapes that do not fit.
    """
    if dataset not in DATASETS:
        raise CheckpointError(f"dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    input_size = (int(input_size[0]), int(input_size[1]))
    if input_size not in OFFICIAL_SIGMA:
        known = " or ".join(f"{h}x{w}" for h, w in OFFICIAL_SIGMA)
        raise CheckpointError(f"input size {input_size[0]}x{input_size[1]}: the official PoseFix code trains at "
                              f"{known} only (the input-heatmap sigma is defined for those); give one of them")
    layout, dataset_tag = DATASETS[dataset]
    ckpt = TFCheckpoint(path)
    where = str(ckpt.prefix)
    names = list(ckpt.entries)
    skipped = Counter(kind for n in names if (kind := optimizer_kind(n)))
    variables = [n for n in names if optimizer_kind(n) is None]
    depth = detect_depth(variables, where)
    sigma = OFFICIAL_SIGMA[input_size]
    cfg = ModelConfig(depth=depth, input_size=input_size, layout=layout, heatmap_sigma=sigma, bn_eps=BN_EPS)
    model = build_model(cfg)  # (a "meta" build would skip the random init but costs more in one-off imports)
    wanted = name_map(model)
    missing = [n for n in wanted if n not in ckpt.entries]
    unexpected = [n for n in variables if n not in wanted]
    if missing or unexpected:
        parts = [f"{label} {_names(items)}" for label, items in (("missing", missing), ("unexpected", unexpected))
                 if items]
        raise CheckpointError(f"{where}: not the official PoseFix ResNet-{depth} network with a {layout} head: "
                              + "; ".join(parts))
    ours = model.state_dict()
    bad_shapes = [f"{n} {list(ckpt.entries[n].shape)} (ours {list(_tf_shape(ours[k]))})"
                  for n, k in wanted.items() if tuple(ckpt.entries[n].shape) != _tf_shape(ours[k])]
    if bad_shapes:
        raise CheckpointError(f"{where}: shapes do not fit PoseFix ResNet-{depth} with "
                              f"{get_layout(layout).num_joints} joints: {_names(bad_shapes, 3)}")
    tensors = ckpt.read(wanted, check_crc=check_crc)
    state = {k: tf_to_torch(n, tensors.pop(n)) for n, k in wanted.items()}
    state.update({k: torch.zeros((), dtype=torch.long) for k in ours if k.endswith(".num_batches_tracked")})
    model.load_state_dict(state, assign=True)
    model.eval()
    h, w = input_size
    source = {
        "kind": "posefix-tf",
        "path": str(ckpt.prefix.resolve()),
        "index_sha256": hashlib.sha256(ckpt.index_bytes).hexdigest(),
        "dataset": dataset,
        "authors_model": f"PoseFix_{dataset_tag}_resnet{depth}_{h}x{w}",
        "tensors": len(wanted),
        "skipped_optimizer": dict(skipped),
    }
    report = ImportReport(prefix=ckpt.prefix, depth=depth, input_size=input_size, layout=layout,
                          imported=len(wanted), params=sum(int(np.prod(ckpt.entries[n].shape)) for n in wanted),
                          skipped=dict(skipped))
    contract = InputContract.official_posefix(layout, sigma=sigma)
    return ImportedModel(model=model, cfg=cfg, contract=contract, source=source, report=report)


def _tf_shape(t: torch.Tensor) -> tuple[int, ...]:
    s = tuple(t.shape)
    return (s[2], s[3], s[1], s[0]) if len(s) == 4 else s
