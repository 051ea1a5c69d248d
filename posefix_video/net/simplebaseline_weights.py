"""Importers of trained SimpleBaseline weights into our top-down model (PoseFixNet, pose_input=False).

Two layouts users have (simplebaseline_reference/README.md describes both):

- Microsoft human-pose-estimation.pytorch (`pose_resnet`): a bare state dict (or `{"state_dict": ...}`, maybe with
  DataParallel's `module.` prefix). Keys: torchvision ResNet names (conv1, bn1, layer1.0.conv1, ...), the head as
  `deconv_layers.{0,1,3,4,6,7}` and `final_layer`.
- mmpose: `{"meta": ..., "state_dict": ...}`; 1.x keys `backbone.<ResNet name>` and `head.deconv_layers.*` /
  `head.final_layer.*`, 0.x `keypoint_head.` instead of `head.`. Other top-level entries (optimizer, message_hub,
  ...) are ignored.

Our names are the same with `deconv.` for `deconv_layers.` and `final.` for `final_layer.` (the head is the same
Sequential of ConvTranspose2d, BN, ReLU, so the indices agree). Depth, stem width, deconv channels and count are
read from the tensors' shapes; the input size is not in the files (given, or from the file name / mmpose config).

mmpose files pickle numpy arrays in their `meta`, which torch's weights_only loader refuses. They are loaded with
weights_only=True plus an allow-list of exactly the numpy reconstruction globals those arrays need -- never by
unpickling arbitrary objects; a file naming any other global is refused.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posefix_video.config import ModelConfig
from posefix_video.errors import CheckpointError
from posefix_video.keypoints import get_layout
from posefix_video.net.checkpoint import save_checkpoint
from posefix_video.net.model import RESNET_SPECS, build_model
from posefix_video.net.posefix_tf import ImportedModel, ImportReport
from posefix_video.net.topdown import simplebaseline_contract
from posefix_video.net.weights import _names

logger = logging.getLogger(__name__)

KINDS = {"msra": "argmax_msra", "mmpose": "argmax_mmpose"}
_OPTIONAL_SUFFIX = ".num_batches_tracked"


def _numpy_allow_list() -> list[Any]:
    """The globals a pickled numpy array needs (numpy 1.x files name numpy.core, 2.x numpy._core)."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    dtypes = {type(np.dtype(t)) for t in (np.float32, np.float64, np.int64, np.int32, np.uint8, np.bool_)}
    return [_reconstruct, np.ndarray, np.dtype, *sorted(dtypes, key=str),
            (_reconstruct, "numpy.core.multiarray._reconstruct"),
            (_reconstruct, "numpy._core.multiarray._reconstruct")]


def load_weight_file(path: str | os.PathLike, what: str) -> Any:
    """torch.load with weights_only=True and the numpy allow-list (mmpose metadata); anything else is refused.

    Raises:
        CheckpointError: missing, unreadable, or holding a global outside the allow-list (named).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: {what} not found")
    try:
        with torch.serialization.safe_globals(_numpy_allow_list()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt, foreign or unsafe files
        text = str(e)
        m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if m:
            raise CheckpointError(f"{path}: refused to load {what}: it needs the Python object {m.group(1)}, which "
                                  "is not on the allow-list of plain data (tensors, numpy arrays); loading it would "
                                  "run arbitrary code") from None
        first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
        raise CheckpointError(f"{path}: cannot read {what} (corrupt, or not a PyTorch file): {first}") from None


def _state_dict(obj: Any, path: str, what: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{path}: not a {what} (expected a state dict, got {type(obj).__name__})")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if len(tensors) != len(obj):
        odd = [str(k) for k in obj if k not in tensors]
        raise CheckpointError(f"{path}: not a {what}: entries that are not tensors: {_names(odd)}")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def rename_msra(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Microsoft pose_resnet names -> ours (deconv_layers. -> deconv., final_layer. -> final.)."""
    out = {}
    for k, v in state.items():
        if k.startswith("deconv_layers."):
            k = "deconv." + k[len("deconv_layers."):]
        elif k.startswith("final_layer."):
            k = "final." + k[len("final_layer."):]
        out[k] = v
    return out


def rename_mmpose(state: Mapping[str, torch.Tensor], path: str = "<state dict>") -> dict[str, torch.Tensor]:
    """mmpose 1.x (`backbone.`, `head.`) or 0.x (`backbone.`, `keypoint_head.`) names -> ours.

    `data_preprocessor.*` buffers (mean/std, applied by our contract instead) are dropped.

    Raises:
        CheckpointError: keys outside backbone/head (named), or no head.
    """
    msra, stray = {}, []
    for k, v in state.items():
        if k.startswith("backbone."):
            msra[k[len("backbone."):]] = v
        elif k.startswith(("head.", "keypoint_head.")):
            msra[k.split(".", 1)[1]] = v
        elif not k.startswith("data_preprocessor."):
            stray.append(k)
    if stray:
        raise CheckpointError(f"{path}: not an mmpose top-down heatmap model: keys outside backbone./head./"
                              f"keypoint_head.: {_names(stray)}")
    return rename_msra(msra)


def infer_model_config(state: Mapping[str, torch.Tensor], path: str, layout: str,
                       input_size: tuple[int, int]) -> ModelConfig:
    """The ModelConfig (pose_input False) whose network has exactly these tensors' shapes (checked on load)."""
    try:
        width = int(state["conv1.weight"].shape[0])
        in_channels = int(state["conv1.weight"].shape[1])
        blocks = tuple(len({k.split(".")[1] for k in state if k.startswith(f"layer{i}.")}) for i in range(1, 5))
        kind = "bottleneck" if "layer1.0.conv3.weight" in state else "basic"
        num_deconv = len([k for k in state if re.fullmatch(r"deconv\.\d+\.weight", k)
                          and state[k].ndim == 4])
        deconv_channels = int(state["deconv.0.weight"].shape[1])
        num_joints = int(state["final.weight"].shape[0])
    except KeyError as e:
        raise CheckpointError(f"{path}: not a SimpleBaseline (pose_resnet) model: no tensor {e.args[0]}") from None
    if in_channels != 3:
        raise CheckpointError(f"{path}: conv1 takes {in_channels} input channels; a SimpleBaseline model takes 3")
    depth = next((d for d, spec in RESNET_SPECS.items() if spec == (kind, blocks)), None)
    if depth is None:
        raise CheckpointError(f"{path}: a ResNet with {kind} blocks {blocks} is not one of the standard depths "
                              f"{sorted(RESNET_SPECS)}")
    joints = get_layout(layout).num_joints
    if num_joints != joints:
        raise CheckpointError(f"{path}: the model has {num_joints} heatmaps; layout {layout} has {joints} joints "
                              "(only COCO-order 17-keypoint models are supported)")
    return ModelConfig(depth=depth, input_size=tuple(input_size), layout=layout, width=width,
                       deconv_channels=deconv_channels, num_deconv=num_deconv, pose_input=False)


def guess_input_size(path: str, obj: Any) -> tuple[int, int] | None:
    """(H, W) from an mmpose config (`input_size=(192, 256)`, w x h) or a file name such as `..._256x192.pth`."""
    meta = obj.get("meta") if isinstance(obj, Mapping) else None
    cfg = meta.get("cfg") if isinstance(meta, Mapping) else None
    if isinstance(cfg, str):
        m = re.search(r"input_size\s*=\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)", cfg)
        if m:
            return int(m.group(2)), int(m.group(1))
    m = re.search(r"(?<!\d)(\d{2,4})x(\d{2,4})(?!\d)", os.path.basename(path))
    if m:
        return int(m.group(1)), int(m.group(2))
    return None


@dataclass
class ImportedSimpleBaseline(ImportedModel):
    """A converted SimpleBaseline model (model_store.save_model writes it)."""

    @property
    def suggested_name(self) -> str:
        """simplebaseline-msra-coco-r50-256x192, simplebaseline-mmpose-pt18-r50-256x192, ..."""
        tag = {"coco17": "coco", "posetrack18": "pt18"}[self.cfg.layout]
        h, w = self.cfg.input_size
        return f"simplebaseline-{self.source['convention']}-{tag}-r{self.cfg.depth}-{h}x{w}"


def convert_simplebaseline(
    kind: str,
    source: str | os.PathLike,
    layout: str = "coco17",
    input_size: tuple[int, int] | None = None,
) -> ImportedSimpleBaseline:
    """Converts a Microsoft ("msra") or mmpose ("mmpose") SimpleBaseline file into our top-down model.

    The contract says BGR input and Microsoft's decoder for "msra", RGB and mmpose's decoder for "mmpose".

    Args:
        kind: "msra" or "mmpose".
        source: the file to import.
        layout: keypoint layout of the model's 17 heatmaps ("coco17"; "posetrack18" for PoseTrack-trained files).
        input_size: crop (H, W); None: from the mmpose config or the file name, else (256, 192).

    Raises:
        CheckpointError: unreadable or unsafe file, the other layout's file, missing/unexpected tensors or shapes
            (named).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    path = os.fspath(source)
    what = "Microsoft pose_resnet state dict" if kind == "msra" else "mmpose checkpoint"
    obj = load_weight_file(path, what)
    state = _state_dict(obj, path, what)
    if kind == "mmpose":
        if not any(k.startswith("backbone.") for k in state):
            raise CheckpointError(f"{path}: not an mmpose checkpoint (no `backbone.` keys); a Microsoft file is "
                                  "imported with `simplebaseline-msra`")
        state = rename_mmpose(state, path)
    else:
        if any(k.startswith("backbone.") for k in state):
            raise CheckpointError(f"{path}: this is an mmpose checkpoint (`backbone.` keys): import it with "
                                  "`simplebaseline-mmpose`")
        state = rename_msra(state)
    if input_size is None:
        input_size = guess_input_size(path, obj)
        if input_size is None:
            input_size = (256, 192)
            logger.warning("%s: input size not in the file or its name; assuming 256x192 (--input-size)", path)
    cfg = infer_model_config(state, path, layout, input_size)
    model = build_model(cfg)
    ours = model.state_dict()
    missing = [k for k in ours if k not in state and not k.endswith(_OPTIONAL_SUFFIX)]
    unexpected = [k for k in state if k not in ours]
    shapes = [f"{k} {tuple(v.shape)} vs {tuple(ours[k].shape)}" for k, v in state.items()
              if k in ours and v.shape != ours[k].shape]
    if missing or unexpected or shapes:
        parts = [f"{label}: {_names(items)}" for label, items in
                 (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)) if items]
        raise CheckpointError(f"{path}: tensors do not fit a ResNet-{cfg.depth} SimpleBaseline: {'; '.join(parts)}")
    with torch.no_grad():
        for k, v in state.items():
            ours[k].copy_(v)
    model.eval()
    skipped = {str(k): 1 for k in obj if k != "state_dict"} if isinstance(obj, Mapping) and "state_dict" in obj \
        else {}
    report = ImportReport(prefix=Path(path), depth=cfg.depth, input_size=cfg.input_size, layout=layout,
                          imported=len(state), params=sum(int(v.numel()) for v in state.values()), skipped=skipped)
    source_info = {"kind": f"simplebaseline-{kind}", "convention": kind, "path": os.path.basename(path),
                   "tensors": len(state)}
    return ImportedSimpleBaseline(model=model, cfg=cfg, contract=simplebaseline_contract(KINDS[kind], cfg),
                                  source=source_info, report=report)


def import_simplebaseline(
    kind: str, source: str | os.PathLike, output: str | os.PathLike, **kwargs: Any
) -> ModelConfig:
    """convert_simplebaseline + write our checkpoint to `output` (atomically); returns the ModelConfig."""
    imported = convert_simplebaseline(kind, source, **kwargs)
    save_checkpoint(output, imported.model, imported.cfg, input_contract=imported.contract, source=imported.source)
    return imported.cfg
