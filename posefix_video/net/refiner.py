"""Refiner: batched PoseFix refinement of frames + input poses (the inference API; see docs/model.md).

Per call: crop boxes from the input keypoints (numpy, P x 17 numbers), then on the device: frames moved once,
crops cut with one grid_sample per batch, input heatmaps rendered, network (optionally with the flip test in the
same forward), soft-argmax, crop -> frame mapping. Only the final (P, 17, 2) coordinates and confidences come back
to the host. Persons that cannot be cropped are passed through unchanged with the reason.

Which joints change: only "usable" input joints (present, finite, not the (0, 0) placeholder, not an ignored slot
of the layout). Everything else is returned exactly as given: the refiner never invents joints the input did not
have, and input scores stay valid for every joint.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from posefix_video import geometry
from posefix_video.config import ModelConfig
from posefix_video.keypoints import KeypointLayout, get_layout
from posefix_video.net.checkpoint import model_from_checkpoint
from posefix_video.net.crop import affine_torch, crop_boxes, invert_affine_torch, sample_crops, stack_frames
from posefix_video.net.heatmaps import cells_to_crop, make_network_input, mass_confidence, soft_argmax
from posefix_video.records import PersonRecord

logger = logging.getLogger(__name__)

CONFIDENCE_KEY = "posefix_confidence"


@dataclass
class RefineResult:
    """Refined poses of P persons.

    Attributes:
        keypoints: (P, 17, 2) float64 frame pixels (input values where a joint or person was not refined).
        confidence: (P, 17) float32 heatmap confidence in [0, 1] (heatmaps.mass_confidence; 0 where not refined).
        refined: (P,) bool, persons that went through the network.
        reason: (P,) why a person was passed through unchanged (None when refined).
    """

    keypoints: np.ndarray
    confidence: np.ndarray
    refined: np.ndarray
    reason: list[str | None]


class Refiner:
    """A PoseFix network plus everything around it: crops, input rendering, flip test, mapping back.

    Args:
        model: the network (PoseFixNet); moved to `device` (and memory format) in place and set to eval mode.
        layout: keypoint layout of the model (flip pairs, ignored slots).
        input_size: crop (H, W).
        sigma: input-pose Gaussian sigma in crop pixels.
        device: "cpu", "cuda", "cuda:N" or "auto" (cuda when available).
        flip_test: also run the mirrored crop and average coordinates (the reference's default).
        precision: "fp32", "bf16" (autocast) or "auto" (bf16 on CUDA, fp32 on CPU).
        channels_last: NHWC memory layout; None means on CUDA only.
        compile: wrap the network in torch.compile (batches are padded to `batch_size` to avoid recompiles).
        batch_size: crops per forward pass; with the flip test each person takes two.
    """

    def __init__(
        self,
        *,
        model: torch.nn.Module,
        layout: KeypointLayout,
        input_size: tuple[int, int],
        sigma: float,
        device: str | torch.device = "auto",
        flip_test: bool = True,
        precision: str = "auto",
        channels_last: bool | None = None,
        compile: bool = False,
        batch_size: int = 64,
    ):
        if str(device) == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        on_cuda = self.device.type == "cuda"
        if precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
        self.precision = ("bf16" if on_cuda else "fp32") if precision == "auto" else precision
        if self.precision == "bf16" and not on_cuda and "AVX512" not in torch.backends.cpu.get_cpu_capability():
            # without AVX512-BF16/AMX, oneDNN runs bf16 convolutions ~50x slower than fp32 (docs/model.md)
            logger.warning("bf16 on a CPU without AVX-512 (%s) is much slower than fp32",
                           torch.backends.cpu.get_cpu_capability())
        self.channels_last = on_cuda if channels_last is None else bool(channels_last)
        if batch_size < 2:
            raise ValueError(f"batch_size must be >= 2, got {batch_size}")
        self.batch_size = batch_size
        self.flip_test = flip_test
        self.layout = layout
        self.input_size = tuple(input_size)
        self.sigma = float(sigma)
        self.compiled = compile
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=memory_format).eval()
        self._forward = torch.compile(self.model) if compile else self.model
        self._flip_perm = torch.as_tensor(layout.flip_permutation, device=self.device)
        self._refinable = torch.as_tensor(layout.used_mask, device=self.device)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        device: str | torch.device = "auto",
        flip_test: bool = True,
        precision: str = "auto",
        channels_last: bool | None = None,
        compile: bool = False,
        batch_size: int = 64,
    ) -> Refiner:
        """A Refiner from one of our checkpoints (model config and layout are embedded).

        Raises:
            CheckpointError: missing, corrupt or foreign file.
        """
        model, cfg = model_from_checkpoint(path)
        return cls.from_model(model, cfg, device=device, flip_test=flip_test, precision=precision,
                              channels_last=channels_last, compile=compile, batch_size=batch_size)

    @classmethod
    def from_model(cls, model: torch.nn.Module, cfg: ModelConfig, **kwargs) -> Refiner:
        """A Refiner around a network built from `cfg` (the builder: config -> arguments)."""
        return cls(model=model, layout=get_layout(cfg.layout), input_size=cfg.input_size, sigma=cfg.input_sigma,
                   **kwargs)

    # -----------------------------------------------------------------------------------------------------------
    # on the device

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _network(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3+J, H, W) -> (B, J, h, w) logits, padding the batch for a compiled network."""
        n = x.shape[0]
        if self.compiled and n < self.batch_size:
            x = torch.cat([x, x.new_zeros(self.batch_size - n, *x.shape[1:])])
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            logits = self._forward(x)
        return logits[:n]

    @torch.inference_mode()
    def predict_crops(
        self, crops: torch.Tensor, keypoints_crop: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Refined coordinates of persons already cropped (one forward; the flip test rides in the same batch).

        Args:
            crops: (B, 3, H, W) uint8 RGB crops on the device.
            keypoints_crop: (B, J, 2) input pose in crop pixels.
            valid: (B, J) bool, joints rendered into the input.

        Returns:
            coords: (B, J, 2) float32 crop pixels; confidence: (B, J) float32.
        """
        H, W = crops.shape[-2:]
        valid = valid.to(torch.bool)
        x = make_network_input(crops, keypoints_crop, valid, self.sigma, self.layout.ignored)  # (B, 3+J, H, W)
        B = x.shape[0]
        if self.flip_test:
            # mirror u -> W-1-u (image and pose) and swap left/right slots so the mirrored pose is a valid pose
            kp_f = keypoints_crop[:, self._flip_perm].clone()
            kp_f[..., 0] = (W - 1) - kp_f[..., 0]
            x_f = make_network_input(crops.flip(-1), kp_f, valid[:, self._flip_perm], self.sigma, self.layout.ignored)
            x = torch.cat([x, x_f])  # (2B, 3+J, H, W)
        logits = self._network(x)  # (B or 2B, J, h, w)
        cells, probs = soft_argmax(logits)
        stride = H // logits.shape[-2]
        coords = cells_to_crop(cells, stride)  # (B or 2B, J, 2) crop px
        conf = mass_confidence(probs, cells)
        if self.flip_test:
            back = coords[B:][:, self._flip_perm].clone()  # un-swap the slots, then un-mirror
            back[..., 0] = (W - 1) - back[..., 0]
            coords = (coords[:B] + back) / 2
            conf = (conf[:B] + conf[B:][:, self._flip_perm]) / 2
        return coords, conf

    # -----------------------------------------------------------------------------------------------------------
    # public API

    @torch.inference_mode()
    def refine_arrays(
        self,
        frames: torch.Tensor | np.ndarray,
        frame_index: torch.Tensor | np.ndarray,
        keypoints: np.ndarray,
        present: np.ndarray,
    ) -> RefineResult:
        """Refines P input poses in F frames.

        Args:
            frames: (F, H, W, 3) uint8 RGB (numpy or a tensor on any device; the frames used are moved once).
            frame_index: (P,) int into frames.
            keypoints: (P, 17, 2) frame pixels (NaN allowed for absent joints).
            present: (P, 17) bool.

        Raises:
            ValueError: shapes that do not fit, or a frame index outside [0, F).
        """
        keypoints = np.asarray(keypoints, dtype=np.float64)
        J = self.layout.num_joints
        P = keypoints.shape[0] if keypoints.ndim == 3 else -1
        present = np.asarray(present, dtype=bool)
        frame_index = np.asarray(torch.as_tensor(frame_index).cpu(), dtype=np.int64).reshape(-1)
        if keypoints.shape != (P, J, 2) or present.shape != (P, J) or frame_index.shape != (P,):
            raise ValueError(f"expected keypoints (P, {J}, 2), present (P, {J}), frame_index (P,); got "
                             f"{keypoints.shape}, {present.shape}, {frame_index.shape}")
        num_frames = len(frames)
        bad = (frame_index < 0) | (frame_index >= num_frames)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"person {i}: frame index {frame_index[i]} outside the {num_frames} frames given")

        boxes = crop_boxes(keypoints, present, self.layout, self.input_size)
        out_kp = keypoints.copy()
        confidence = np.zeros((P, J), dtype=np.float32)
        ok = np.flatnonzero(boxes.ok)
        if len(ok):
            refined_kp, refined_conf = self._refine_ok(frames, frame_index[ok], keypoints[ok], boxes.usable[ok],
                                                       boxes.centre[ok], boxes.size[ok])
            change = boxes.usable[ok]  # usable joints already exclude the ignored slots
            out_kp[ok] = np.where(change[..., None], refined_kp, keypoints[ok])
            confidence[ok] = np.where(change, refined_conf, 0.0)
        return RefineResult(keypoints=out_kp, confidence=confidence, refined=boxes.ok.copy(), reason=boxes.reason)

    def _refine_ok(
        self,
        frames: torch.Tensor | np.ndarray,
        frame_index: np.ndarray,
        keypoints: np.ndarray,
        usable: np.ndarray,
        centre: np.ndarray,
        size: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Device part for N croppable persons (frame_index (N,), keypoints (N, J, 2), usable (N, J), centre and
        size (N, 2)): returns (N, J, 2) float64 frame px and (N, J) float32 confidences."""
        used, local = np.unique(frame_index, return_inverse=True)
        if torch.is_tensor(frames):
            picked = frames[torch.as_tensor(used, device=frames.device)]
        else:
            picked = np.ascontiguousarray(np.asarray(frames)[used])
        stack = stack_frames(picked, self.device)

        M = torch.as_tensor(geometry.crop_affine(centre, size, self.input_size), device=self.device)  # (N, 2, 3)
        M_inv = invert_affine_torch(M)
        kp = torch.as_tensor(keypoints, device=self.device)
        valid = torch.as_tensor(usable, device=self.device)
        local = torch.as_tensor(local, device=self.device)
        per_step = self.batch_size // 2 if self.flip_test else self.batch_size
        coords_all, conf_all = [], []
        for s in range(0, len(keypoints), per_step):  # batches of crops, not crops
            sl = slice(s, s + per_step)
            crops = sample_crops(stack, local[sl], M[sl], self.input_size)  # (b, 3, H, W) uint8
            kp_crop = affine_torch(M[sl], kp[sl]).float()  # (b, J, 2) crop px
            coords, conf = self.predict_crops(crops, kp_crop, valid[sl])
            coords_all.append(affine_torch(M_inv[sl], coords.double()))  # (b, J, 2) frame px
            conf_all.append(conf)
        coords = torch.cat(coords_all).cpu().numpy()
        conf = torch.cat(conf_all).float().cpu().numpy()
        return coords, conf

    def refine_records(
        self, frames: torch.Tensor | np.ndarray, records: Sequence[PersonRecord], frame_offset: int = 0
    ) -> tuple[list[PersonRecord], Counter]:
        """Refined copies of `records` (input order kept).

        Input scores are passed through unchanged (as the reference); the heatmap confidence of each joint goes to
        `extra["posefix_confidence"]` (list of 17 floats, 0 for joints not refined) of refined persons.

        Args:
            frames: (F, H, W, 3) uint8 RGB.
            records: persons whose `.frame - frame_offset` indexes `frames`.
            frame_offset: frame number of frames[0].

        Returns:
            (refined records, Counter of pass-through reasons).
        """
        J = self.layout.num_joints
        if not records:
            return [], Counter()
        keypoints = np.stack([r.keypoints for r in records]).reshape(-1, J, 2)
        present = np.stack([r.present for r in records])
        frame_index = np.array([r.frame - frame_offset for r in records], dtype=np.int64)
        bad = (frame_index < 0) | (frame_index >= len(frames))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            r = records[i]
            raise ValueError(f"record {i} (frame {r.frame}, track_id {r.track_id}) is outside the frames given "
                             f"({frame_offset}..{frame_offset + len(frames) - 1})")
        result = self.refine_arrays(frames, frame_index, keypoints, present)
        out, counts = [], Counter()
        for i, r in enumerate(records):
            if not result.refined[i]:
                counts[result.reason[i]] += 1
                out.append(r.replace())
                continue
            copy = r.replace(keypoints=result.keypoints[i].copy())
            copy.extra[CONFIDENCE_KEY] = [float(c) for c in result.confidence[i]]
            out.append(copy)
        if counts:
            logger.info("passed through unchanged: %s", dict(counts))
        return out, counts
