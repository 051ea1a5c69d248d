"""TopDownEstimator: initial poses from person boxes with a SimpleBaseline network (PoseFixNet, pose_input=False).

Per call: crop centres/sizes and crop matrices from the boxes (numpy, P x 4 numbers) as the checkpoint's
convention says (net/topdown_codec.py), then on the device: frames moved once, crops cut bit-identical to the
references' cv2.warpAffine (net/warp.py, one gather per batch), normalised as the input contract says, network
(the flip test rides in the same forward), flip-merge, argmax decoding. Only (P, J, 2) keypoints and (P, J)
maxvals come back to the host.

The convention (box recipe, crop matrix, decoder rules, mapping back) comes from the contract's `decoder`:
"argmax_msra" (Microsoft human-pose-estimation.pytorch files: BGR input) or "argmax_mmpose" (mmpose files: RGB
input). docs/model.md, "Top-down initializer", has the table.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

import numpy as np
import torch

from posefix_video.config import ModelConfig
from posefix_video.errors import CheckpointError
from posefix_video.keypoints import KeypointLayout, get_layout
from posefix_video.net import model_store
from posefix_video.net.checkpoint import load_model
from posefix_video.net.contract import InputContract
from posefix_video.net.heatmaps import flip_average, mass_confidence, soft_argmax
from posefix_video.net.topdown_codec import (
    box_center_scale,
    crop_matrices,
    decode_argmax,
    flip_back,
    heatmap_to_frame,
)
from posefix_video.net.warp import pad_frames, warp_affine_exact
from posefix_video.records import PersonRecord

# record.extra key saying that a pose came from the top-down initializer (value: the contract's decoder)
INITIALIZER_KEY = "initializer"
TOPDOWN_DECODERS = {"argmax_msra": "msra", "argmax_mmpose": "mmpose"}
# ImageNet statistics in 0-255 units, in R, G, B order; Microsoft feeds them to B, G, R as they are (its files
# were trained that way), mmpose to R, G, B
SIMPLEBASELINE_MEAN = (123.675, 116.28, 103.53)
SIMPLEBASELINE_STD = (58.395, 57.12, 57.375)


def simplebaseline_contract(decoder: str, cfg: ModelConfig) -> InputContract:
    """The input contract of an imported SimpleBaseline file: "argmax_msra" -> BGR, "argmax_mmpose" -> RGB."""
    if decoder not in TOPDOWN_DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(TOPDOWN_DECODERS)}, got {decoder!r}")
    order = "BGR" if decoder == "argmax_msra" else "RGB"
    # heatmap_peak/sigma are unused without an input pose; sigma mirrors the config so check_model agrees
    return InputContract(channel_order=order, mean=SIMPLEBASELINE_MEAN, std=SIMPLEBASELINE_STD, heatmap_peak=1.0,
                         sigma=cfg.input_sigma, bn_eps=cfg.bn_eps, layout=cfg.layout,
                         decoder=decoder)


def normalise_image(crops: torch.Tensor, contract: InputContract) -> torch.Tensor:
    """(B, 3, H, W) uint8 RGB crops -> float32 network input: channel order, then (x - mean) / std (0-255 units)."""
    if contract.channel_order == "BGR":
        crops = crops.flip(1)  # a channel permutation, exact
    mean = torch.tensor(contract.mean, device=crops.device, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(contract.std, device=crops.device, dtype=torch.float32).view(1, 3, 1, 1)
    return (crops.float() - mean) / std


class TopDownEstimator:
    """A top-down heatmap network plus its crop, normalisation, flip test and decoding.

    Args:
        model: a PoseFixNet built with pose_input=False (3 input channels); moved to `device`, set to eval mode.
        layout: keypoint layout of the model's heatmaps (flip pairs).
        input_size: crop (H, W), e.g. (256, 192).
        contract: channel order and mean/std of the input, and the decoder: "argmax_msra" or "argmax_mmpose"
            (imported SimpleBaseline files), "soft_argmax" (our own top-down models).
        device: "cpu", "cuda", "cuda:N" or "auto" (cuda when available).
        flip_test: also run the mirrored crop and average the heatmaps (both references' way).
        batch_size: crops per forward pass; with the flip test each person takes two.
    """

    def __init__(
        self,
        *,
        model: torch.nn.Module,
        layout: KeypointLayout,
        input_size: tuple[int, int],
        contract: InputContract,
        device: str | torch.device = "auto",
        flip_test: bool = True,
        batch_size: int = 64,
    ):
        if getattr(model, "in_channels", 3) != 3:
            raise ValueError(f"a top-down estimator needs a 3-channel (image only) network, got "
                             f"{model.in_channels} input channels")
        if batch_size < 2:
            raise ValueError(f"batch_size must be >= 2, got {batch_size}")
        if str(device) == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.layout = layout
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.contract = contract
        self.decoder = contract.decoder
        # box recipe, crop matrix and mapping back: the argmax decoders' reference; our own models use mmpose's
        self.convention = TOPDOWN_DECODERS.get(contract.decoder, "mmpose")
        self.flip_test = bool(flip_test)
        self.batch_size = int(batch_size)
        self.model = model.to(self.device).eval()
        self._flip_perm = torch.as_tensor(layout.flip_permutation, device=self.device)

    @classmethod
    def from_checkpoint(
        cls,
        path_or_name: str | os.PathLike,
        device: str | torch.device = "auto",
        flip_test: bool = True,
        batch_size: int = 64,
    ) -> TopDownEstimator:
        """An estimator from one of our checkpoints (a file or an installed model name) holding a top-down model:
        `pipelines.import_weights simplebaseline-msra|simplebaseline-mmpose` writes them, and so does training with
        model.pose_input: false.

        Raises:
            CheckpointError: missing, corrupt or foreign file; a PoseFix (pose-input) model.
        """
        path = model_store.resolve_checkpoint(path_or_name)
        model, cfg, contract = load_model(path)
        if cfg.pose_input:
            raise CheckpointError(f"{path}: a PoseFix model (pose input), not a top-down initializer; import one "
                                  "with `python -m pipelines.import_weights simplebaseline-msra|simplebaseline-mmpose`")
        return cls(model=model, layout=get_layout(cfg.layout), input_size=cfg.input_size, contract=contract,
                   device=device, flip_test=flip_test, batch_size=batch_size)

    # -----------------------------------------------------------------------------------------------------------
    # on the device

    def _exact(self) -> contextlib.AbstractContextManager:
        # cuDNN convolutions default to TF32 on Ampere+, which moves heatmaps by far more than argmax ties allow
        if self.device.type == "cuda":
            return torch.backends.cudnn.flags(enabled=True, allow_tf32=False)
        return contextlib.nullcontext()

    @torch.inference_mode()
    def network(self, crops: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) uint8 RGB crops -> (B or 2B, J, h, w) float32 network output (mirrored crops appended with
        the flip test)."""
        x = normalise_image(crops, self.contract)  # (B, 3, H, W)
        if self.flip_test:
            x = torch.cat([x, x.flip(-1)])  # (2B, 3, H, W): mirror u -> W-1-u
        with self._exact():
            return self.model(x).float()

    @torch.inference_mode()
    def heatmaps(self, crops: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) uint8 RGB crops -> (B, J, h, w) float32 heatmaps, flip-merged with the flip test (the
        argmax decoders' input)."""
        out = self.network(crops)
        B = crops.shape[0]
        if self.flip_test:
            out = (out[:B] + flip_back(out[B:], self._flip_perm)) * 0.5
        return out

    @torch.inference_mode()
    def decode_crops(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) uint8 RGB crops -> coordinates (B, J, 2) in heatmap cells and scores (B, J) float32.

        Argmax decoders: the merged heatmaps' argmax + quarter shift, scores = maxvals. "soft_argmax" (our own
        trained top-down models): expected cell under each softmax, scores = heatmaps.mass_confidence; the flip
        test then averages coordinates, as the Refiner does.
        """
        if self.decoder != "soft_argmax":
            return decode_argmax(self.heatmaps(crops), self.convention)
        out = self.network(crops)
        cells, probs = soft_argmax(out)
        conf = mass_confidence(probs, cells)
        if self.flip_test:
            W = crops.shape[-1]
            stride = W / out.shape[-1]
            coords, conf = flip_average(cells * stride, conf, self._flip_perm, W)  # un-mirror in crop pixels
            cells = coords / stride
        return cells, conf

    # -----------------------------------------------------------------------------------------------------------
    # public API

    @torch.inference_mode()
    def estimate_arrays(
        self,
        frames: torch.Tensor | np.ndarray,
        frame_index: torch.Tensor | np.ndarray,
        boxes_xywh: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Poses of P persons given their boxes in F frames.

        Args:
            frames: (F, H, W, 3) uint8 RGB (numpy or a tensor on any device; the frames used are moved once).
            frame_index: (P,) int into frames.
            boxes_xywh: (P, 4) [x, y, w, h] frame pixels (w, h > 0, finite).

        Returns:
            keypoints (P, J, 2) float64 frame pixels; maxvals (P, J) float32 (heatmap value at the argmax; <= 0
            where the network found nothing, the keypoint then sits at the crop's corner as the references put it;
            the soft_argmax decoder gives its mass confidence in [0, 1] instead).

        Raises:
            ValueError: shapes that do not fit, a frame index outside [0, F), a box that is not finite and > 0.
        """
        boxes = np.asarray(boxes_xywh, dtype=np.float64)
        frame_index = np.asarray(torch.as_tensor(frame_index).cpu(), dtype=np.int64).reshape(-1)
        P = len(frame_index)
        J = self.layout.num_joints
        if boxes.shape != (P, 4):
            raise ValueError(f"expected boxes (P, 4) and frame_index (P,); got {boxes.shape}, {frame_index.shape}")
        bad = (frame_index < 0) | (frame_index >= len(frames))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"person {i}: frame index {frame_index[i]} outside the {len(frames)} frames given")
        degenerate = ~(np.isfinite(boxes).all(-1) & (boxes[:, 2:] > 0).all(-1))
        if degenerate.any():
            i = int(np.flatnonzero(degenerate)[0])
            raise ValueError(f"person {i}: box {boxes[i].tolist()} is not finite with w, h > 0")
        if P == 0:
            return np.zeros((0, J, 2)), np.zeros((0, J), dtype=np.float32)

        used, local = np.unique(frame_index, return_inverse=True)
        if torch.is_tensor(frames):
            picked = frames[torch.as_tensor(used, device=frames.device)]
        else:
            picked = torch.from_numpy(np.ascontiguousarray(np.asarray(frames)[used]))
        if picked.dtype != torch.uint8 or picked.ndim != 4 or picked.shape[-1] != 3:
            raise ValueError(f"frames must be (F, H, W, 3) uint8, got {tuple(picked.shape)} {picked.dtype}")
        padded = pad_frames(picked.to(self.device))
        centre, size = box_center_scale(boxes, self.convention, self.input_size)
        M = torch.as_tensor(crop_matrices(centre, size, self.convention, self.input_size), device=self.device)
        local = torch.as_tensor(local, device=self.device)
        coords_all, maxvals_all = [], []
        per_step = self.batch_size // 2 if self.flip_test else self.batch_size
        for s in range(0, P, per_step):  # batches of crops, not crops
            crops = warp_affine_exact(padded, local[s : s + per_step], M[s : s + per_step], self.input_size)
            coords, maxvals = self.decode_crops(crops)  # (b, J, 2) cells, (b, J)
            coords_all.append(coords)
            maxvals_all.append(maxvals)
        coords = torch.cat(coords_all).cpu().numpy()
        maxvals = torch.cat(maxvals_all).cpu().numpy().astype(np.float32)
        H, W = self.input_size
        heat_hw = (H // self.model.stride, W // self.model.stride)
        keypoints = heatmap_to_frame(coords, centre, size, self.convention, self.input_size, heat_hw)
        return keypoints, maxvals

    def estimate_records(
        self, frames: torch.Tensor | np.ndarray, records: Sequence[PersonRecord], frame_offset: int = 0
    ) -> list[PersonRecord]:
        """Copies of `records` (each with a box) with the estimated pose: keypoints, every joint present, per-joint
        scores = maxvals, and `extra["initializer"]` = the contract's decoder. Input order is kept.

        Args:
            frames: (F, H, W, 3) uint8 RGB.
            records: persons with `box` set, whose `.frame - frame_offset` indexes `frames`.
            frame_offset: frame number of frames[0].

        A record whose box has no area (w or h 0) is returned unchanged, still without a pose.

        Raises:
            ValueError: a record without a box, or outside the frames given.
        """
        if not records:
            return []
        for i, r in enumerate(records):
            if r.box is None:
                raise ValueError(f"record {i} (frame {r.frame}, track_id {r.track_id}) has no box")
        boxes = np.stack([r.box for r in records])
        frame_index = np.array([r.frame - frame_offset for r in records], dtype=np.int64)
        bad = (frame_index < 0) | (frame_index >= len(frames))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            r = records[i]
            raise ValueError(f"record {i} (frame {r.frame}, track_id {r.track_id}) is outside the frames given "
                             f"({frame_offset}..{frame_offset + len(frames) - 1})")
        # a zero-size (or non-finite) box has nothing to crop: that person comes back as it was, without a pose
        ok = np.isfinite(boxes).all(-1) & (boxes[:, 2:] > 0).all(-1)
        keypoints = np.zeros((len(records), self.layout.num_joints, 2))
        maxvals = np.zeros((len(records), self.layout.num_joints), dtype=np.float32)
        keypoints[ok], maxvals[ok] = self.estimate_arrays(frames, frame_index[ok], boxes[ok])
        out = []
        J = self.layout.num_joints
        for i, r in enumerate(records):
            if not ok[i]:
                out.append(r.replace())
                continue
            copy = r.replace(keypoints=keypoints[i].copy(), present=np.ones(J, dtype=bool),
                             scores=maxvals[i].astype(np.float64), visibility=None)
            copy.extra[INITIALIZER_KEY] = self.decoder
            out.append(copy)
        return out
