"""Refiner: batched PoseFix refinement of frames + input poses (the inference API; see docs/model.md).

Per call: crop boxes from the input keypoints (numpy, P x 17 numbers), then on the device: frames moved once,
crops cut with one grid_sample per batch, input heatmaps rendered, network (optionally with the flip test in the
same forward), soft-argmax, crop -> frame mapping. Only the final (P, 17, 2) coordinates and confidences come back
to the host. Persons that cannot be cropped are passed through unchanged with the reason.

Which joints change: only "usable" input joints (present, finite, not the (0, 0) placeholder, not an ignored slot
of the layout). Everything else is returned exactly as given (unless `refine_records(fill_joints=True)` asks for the
network's answer on absent joints), and the written scores follow `refine_records(scores=...)`.

Longer than 450 lines: the device path, the official test rules and the post-network options (safeguard, absent
joints, scores: net/safeguard.py) meet in refine_arrays / refine_records, which share one batch's arrays.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from posefix_video import geometry
from posefix_video.config import ModelConfig
from posefix_video.keypoints import KeypointLayout, get_layout
from posefix_video.net.checkpoint import load_model
from posefix_video.net.contract import InputContract
from posefix_video.net.crop import affine_torch, crop_boxes, invert_affine_torch, sample_crops, stack_frames
from posefix_video.net.heatmaps import cells_to_crop, flip_average, make_network_input, mass_confidence, soft_argmax
from posefix_video.net.official import refine_official
from posefix_video.net.safeguard import (
    DEFAULT_FILL_JOINTS,
    DEFAULT_SAFEGUARD,
    DEFAULT_SCORES,
    FILL_JOINT_MIN_CONFIDENCE,
    Safeguard,
    apply_safeguard,
    choose_scores,
    informative_scores,
    recommended_safeguard,
)
from posefix_video.records import PersonRecord

logger = logging.getLogger(__name__)

CONFIDENCE_KEY = "posefix_confidence"
FILLED_JOINTS_KEY = "posefix_filled_joints"


@dataclass
class RefineResult:
    """Refined poses of P persons.

    Attributes:
        keypoints: (P, 17, 2) float64 frame pixels (input values where a joint or person was not refined).
        confidence: (P, 17) float32 heatmap confidence in [0, 1] (heatmaps.mass_confidence; 0 where not refined).
        refined: (P,) bool, persons that went through the network.
        reason: (P,) why a person was passed through unchanged (None when refined).
        network: (P, 17, 2) the network's answer for every joint before the safeguard (NaN where not refined);
            absent joints included (`refine_records(fill_joints=True)` writes those).
        network_confidence: (P, 17) its confidence for every joint (0 where not refined).
        kept: (P, 17) bool, joints the safeguard kept at their input value.
    """

    keypoints: np.ndarray
    confidence: np.ndarray
    refined: np.ndarray
    reason: list[str | None]
    network: np.ndarray | None = None
    network_confidence: np.ndarray | None = None
    kept: np.ndarray | None = None


# A crop box larger than this many frames (the larger side), or one that misses the frame, comes from joints far
# outside the picture: refining would write the person's good joints into that box, far from where they were.
MAX_BOX_FRAMES = 4.0


def _pass_far_boxes(boxes, frame_hw: tuple[int, int]) -> None:
    """Marks persons whose crop box misses the frame or is over MAX_BOX_FRAMES frames large as passed through."""
    H, W = frame_hw
    lo, hi = boxes.centre - boxes.size / 2, boxes.centre + boxes.size / 2  # (P, 2) x, y
    with np.errstate(invalid="ignore"):
        far = ((hi[:, 0] < 0) | (lo[:, 0] > W) | (hi[:, 1] < 0) | (lo[:, 1] > H)
               | (boxes.size.max(-1) > MAX_BOX_FRAMES * max(H, W)))  # fmt: skip
    for i in np.flatnonzero(far & boxes.ok):
        boxes.ok[i], boxes.reason[i] = False, "crop box far outside the frame"


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
        contract: the model's input contract (net/contract.py: channel order, mean/std, heatmap peak; its sigma and
            layout must equal `sigma` and `layout`); None: our own (RGB, ImageNet mean/std, peak 1).
        official_test: the official PoseFix test rules instead of ours (net/official.py, docs/model.md): box from
            all non-ignored joints, score-0 joints uncropped, every non-ignored joint refined, OpenCV's warp;
            precision "auto" then means fp32, and no safeguard applies.
        runner: the network as another backend: a callable (B, 3+J, H, W) float tensor -> (B, J, h, w) logits
            (e.g. onnx_backend.OnnxRunner); then `model` may be None, and precision, channels_last and compile do
            not apply (the runner runs fp32 and pads batches itself).
    """

    def __init__(
        self,
        *,
        model: torch.nn.Module | None,
        layout: KeypointLayout,
        input_size: tuple[int, int],
        sigma: float,
        device: str | torch.device = "auto",
        flip_test: bool = True,
        precision: str = "auto",
        channels_last: bool | None = None,
        compile: bool = False,
        batch_size: int = 64,
        runner: Callable[[torch.Tensor], torch.Tensor] | None = None,
        contract: InputContract | None = None,
        official_test: bool = False,
    ):
        if contract is not None and (contract.sigma != float(sigma) or contract.layout != layout.name):
            raise ValueError(f"contract (sigma {contract.sigma}, layout {contract.layout}) does not fit the refiner "
                             f"(sigma {sigma}, layout {layout.name})")
        self.contract = contract
        # what refine_video applies by default: the rule tuned for this kind of network (net/safeguard.py)
        self.recommended_safeguard: Safeguard | None = DEFAULT_SAFEGUARD
        self.official_test = bool(official_test)
        if official_test and precision == "auto":
            precision = "fp32"  # the official numbers are float32
        if (model is None) == (runner is None):
            raise ValueError("give either a torch model or a runner (another backend), not both or neither")
        if runner is not None and (precision == "bf16" or compile or channels_last):
            raise ValueError("precision bf16, compile and channels_last apply to the torch backend only")
        if runner is not None:
            precision, channels_last = "fp32", False
        self.backend = "torch" if runner is None else getattr(runner, "backend", type(runner).__name__)
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
        self.model = None if model is None else model.to(self.device, memory_format=memory_format).eval()
        self._forward = runner if runner is not None else torch.compile(self.model) if compile else self.model
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
        backend: str = "torch",
        providers: Sequence[str] | None = None,
        official_test: bool = False,
    ) -> Refiner:
        """A Refiner from one of our checkpoints (model config and layout are embedded).

        backend: "torch", "onnxruntime" (the network exported on the fly and cached, see onnx_backend) or "auto"
        (onnxruntime on a CPU device when installed, else torch). providers: ONNX Runtime execution providers
        (default: CPU, or CUDA on a CUDA device; see onnx_backend).

        Raises:
            CheckpointError: missing, corrupt or foreign file. BackendError: onnxruntime asked for but missing.
        """
        from posefix_video.net import onnx_backend

        model, cfg, contract = load_model(path)
        if onnx_backend.resolve_backend(backend, device, precision) == "onnxruntime":
            runner = onnx_backend.OnnxRunner.for_checkpoint(path, device=device, batch_size=batch_size,
                                                            providers=providers)
            return cls.from_model(None, cfg, device=device, flip_test=flip_test, batch_size=batch_size,
                                  runner=runner, contract=contract, official_test=official_test)
        return cls.from_model(model, cfg, device=device, flip_test=flip_test, precision=precision,
                              channels_last=channels_last, compile=compile, batch_size=batch_size,
                              contract=contract, official_test=official_test)

    @classmethod
    def from_onnx(cls, path: str | os.PathLike, device: str | torch.device = "auto", flip_test: bool = True,
                  batch_size: int = 64, providers: Sequence[str] | None = None) -> Refiner:
        """A Refiner on an exported .onnx file (`python -m pipelines.export_onnx`), run by ONNX Runtime; the
        model config, layout and input contract come from the file's metadata.

        Raises:
            CheckpointError: not one of our exports, or unreadable. BackendError: onnxruntime missing.
        """
        from posefix_video.net import onnx_backend

        runner = onnx_backend.OnnxRunner.from_file(path, device=device, batch_size=batch_size,
                                                   providers=providers)
        cfg = onnx_backend.config_from_metadata(runner.meta, path)
        contract = onnx_backend.contract_from_metadata(runner.meta, path)
        return cls.from_model(None, cfg, device=device, flip_test=flip_test, batch_size=batch_size, runner=runner,
                              contract=contract)

    @classmethod
    def from_model(cls, model: torch.nn.Module | None, cfg: ModelConfig, **kwargs) -> Refiner:
        """A Refiner around a network built from `cfg` (the builder: config -> arguments)."""
        refiner = cls(model=model, layout=get_layout(cfg.layout), input_size=cfg.input_size, sigma=cfg.input_sigma,
                      **kwargs)
        refiner.recommended_safeguard = recommended_safeguard(refiner.contract, InputContract.ours(cfg))
        return refiner

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

    def _input(self, crops: torch.Tensor, keypoints_crop: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """The network input as the model's contract says (heatmaps.make_network_input, the one place)."""
        if self.contract is None:
            return make_network_input(crops, keypoints_crop, valid, self.sigma, self.layout.ignored)
        return make_network_input(crops, keypoints_crop, valid, ignored=self.layout.ignored, contract=self.contract)

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
        x = self._input(crops, keypoints_crop, valid)  # (B, 3+J, H, W)
        if self.flip_test:
            # mirror u -> W-1-u (image and pose) and swap left/right slots so the mirrored pose is a valid pose
            kp_f = keypoints_crop[:, self._flip_perm].clone()
            kp_f[..., 0] = (W - 1) - kp_f[..., 0]
            x_f = self._input(crops.flip(-1), kp_f, valid[:, self._flip_perm])
            x = torch.cat([x, x_f])  # (2B, 3+J, H, W)
        logits = self._network(x)  # (B or 2B, J, h, w)
        cells, probs = soft_argmax(logits)
        stride = H // logits.shape[-2]
        coords = cells_to_crop(cells, stride)  # (B or 2B, J, 2) crop px
        conf = mass_confidence(probs, cells)
        if self.flip_test:
            coords, conf = flip_average(coords, conf, self._flip_perm, W)
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
        safeguard: Safeguard | None = None,
        joint_scores: np.ndarray | None = None,
        input_scores: np.ndarray | None = None,
    ) -> RefineResult:
        """Refines P input poses in F frames.

        Args:
            frames: (F, H, W, 3) uint8 RGB (numpy or a tensor on any device; the frames used are moved once).
            frame_index: (P,) int into frames.
            keypoints: (P, 17, 2) frame pixels (NaN allowed for absent joints).
            present: (P, 17) bool.
            safeguard: per-joint rule keeping the input joint where the network is unsure (net/safeguard.py);
                None (the default of this array API): the network's answer for every usable joint.
                `refine_records` (the video path) applies safeguard.DEFAULT_SAFEGUARD by default.
            joint_scores: (P, 17) the input triplets' third values; used by the official test rules only (a joint
                is moved into the crop iff its score > 0; default: `present`).
            input_scores: (P, 17) the input's per-joint scores (NaN where unknown), for the safeguard's input test.

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

        if self.official_test:
            return self._refine_official(frames, frame_index, keypoints, present, joint_scores)
        boxes = crop_boxes(keypoints, present, self.layout, self.input_size)
        _pass_far_boxes(boxes, tuple(frames.shape[1:3]))
        out_kp = keypoints.copy()
        confidence = np.zeros((P, J), dtype=np.float32)
        network = np.full((P, J, 2), np.nan)
        network_conf = np.zeros((P, J), dtype=np.float32)
        kept = np.zeros((P, J), dtype=bool)
        ok = np.flatnonzero(boxes.ok)
        if len(ok):
            refined_kp, refined_conf = self._refine_ok(frames, frame_index[ok], keypoints[ok], boxes.usable[ok],
                                                       boxes.centre[ok], boxes.size[ok])
            network[ok], network_conf[ok] = refined_kp, refined_conf
            change = boxes.usable[ok]  # usable joints already exclude the ignored slots
            if safeguard is not None:  # a post-network step on arrays (backend-independent)
                s_in = None if input_scores is None else np.asarray(input_scores, dtype=np.float64)[ok]
                refined_kp, kept[ok] = apply_safeguard(refined_kp, refined_conf, keypoints[ok], change,
                                                       self.layout.sigma_array, safeguard, s_in)
            out_kp[ok] = np.where(change[..., None], refined_kp, keypoints[ok])
            confidence[ok] = np.where(change, refined_conf, 0.0)
            broken = ~np.where(change[..., None], np.isfinite(refined_kp), True).all((-1, -2))  # (N,)
            for i in ok[broken]:  # a non-finite network output is never written: the input is kept
                out_kp[i], confidence[i], boxes.ok[i], boxes.reason[i] = keypoints[i], 0.0, False, "non-finite output"
                network[i], network_conf[i] = np.nan, 0.0
        return RefineResult(keypoints=out_kp, confidence=confidence, refined=boxes.ok.copy(), reason=boxes.reason,
                            network=network, network_confidence=network_conf, kept=kept)

    def _refine_official(self, frames, frame_index, keypoints, present, joint_scores) -> RefineResult:
        """refine_arrays under the official test rules (net/official.py): every non-ignored joint is refined."""
        scores = present if joint_scores is None else np.asarray(joint_scores, dtype=np.float64)
        kp = np.where(present[..., None], keypoints, 0.0)  # absent joints are (0, 0) in the official input
        per_step = self.batch_size // 2 if self.flip_test else self.batch_size
        refined, conf, ok = refine_official(self.predict_crops, self.device, per_step, frames, frame_index, kp,
                                            scores, self.layout, self.input_size)
        change = ok[:, None] & self.layout.used_mask[None, :]
        out_kp = np.where(change[..., None], refined, keypoints)
        reason = [None if o else "non-finite joint (official test rules)" for o in ok]
        return RefineResult(keypoints=out_kp, confidence=np.where(change, conf, 0.0).astype(np.float32),
                            refined=ok, reason=reason, network=refined, network_confidence=conf,
                            kept=np.zeros(change.shape, dtype=bool))

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
        self, frames: torch.Tensor | np.ndarray, records: Sequence[PersonRecord], frame_offset: int = 0, *,
        safeguard: Safeguard | None = DEFAULT_SAFEGUARD, fill_joints: bool = DEFAULT_FILL_JOINTS,
        scores: str = DEFAULT_SCORES,
    ) -> tuple[list[PersonRecord], Counter]:
        """Refined copies of `records` (input order kept).

        The heatmap confidence of each joint goes to `extra["posefix_confidence"]` (list of 17 floats, 0 for joints
        not refined) of refined persons. The written per-joint scores follow `scores` (net/safeguard.py
        choose_scores): "input" passes the input's through (as the reference), "refined" writes the confidence,
        "product" their product. `fill_joints` writes the network's answer for joints the input lacked where its
        confidence reaches safeguard.FILL_JOINT_MIN_CONFIDENCE (present, score and visibility = its confidence; their
        slots listed in `extra["posefix_filled_joints"]`).

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
        third = [r.visibility if r.visibility is not None else r.scores for r in records]
        joint_scores = np.stack(third) if all(t is not None for t in third) else None
        in_scores = np.stack([informative_scores(r.scores, r.present) for r in records])
        result = self.refine_arrays(frames, frame_index, keypoints, present, safeguard=safeguard,
                                    joint_scores=joint_scores, input_scores=in_scores)
        # joints the input lacks (absent, (0, 0), non-finite), never the layout's ignored slots
        fillable = ~geometry.usable_joints(keypoints, present, self.layout.ignored)
        fillable[:, list(self.layout.ignored)] = False
        fillable &= np.isfinite(result.network).all(-1)
        out, counts = [], Counter()
        for i, r in enumerate(records):
            if not result.refined[i]:
                counts[result.reason[i]] += 1
                out.append(r.replace())
                continue
            copy = r.replace(keypoints=result.keypoints[i].copy())
            if self.official_test:  # every non-ignored joint was refined, absent ones included
                copy.present = r.present | self.layout.used_mask
            conf = result.confidence[i].astype(np.float64)
            net_conf = result.network_confidence[i].astype(np.float64)
            fill = fillable[i] & (net_conf >= FILL_JOINT_MIN_CONFIDENCE) if fill_joints else np.zeros(J, dtype=bool)
            if fill.any():
                copy.keypoints[fill] = result.network[i][fill]
                copy.present = r.present | fill
                conf = np.where(fill, net_conf, conf)
                if copy.scores is not None:
                    copy.scores = np.where(fill, net_conf, copy.scores)
                if copy.visibility is not None:
                    copy.visibility = np.where(fill, np.round(net_conf, 4), copy.visibility)
                copy.extra[FILLED_JOINTS_KEY] = np.flatnonzero(fill).tolist()
            copy.extra[CONFIDENCE_KEY] = [float(c) for c in conf]
            if scores != "input":
                copy.scores = choose_scores(copy.scores, np.where(copy.present, conf, 0.0), scores)
            out.append(copy)
        if counts:
            logger.info("passed through unchanged: %s", dict(counts))
        return out, counts
