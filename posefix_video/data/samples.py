"""The training dataset: decode, augment, crop, transform joints, synthesise the input pose.

Workers return uint8 RGB crops and small float arrays; heatmaps, targets and normalisation are made on the
device by the training code (performance.md A5). Every sample is a deterministic function of (seed, epoch,
index), so a resumed run sees exactly the samples it would have seen.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from posefix_video.data.annotations import PersonEntry
from posefix_video.data.augment import Augmentation, AugmentDraw, draw_augmentation, sample_affine
from posefix_video.errors import InputError
from posefix_video.keypoints import KeypointLayout
from posefix_video.synthesis import ZEROED, synthesize_poses

DEFAULT_AUGMENTATION = Augmentation()
_REDUCED_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4}
_cv2_pid = None


def _single_thread_cv2() -> None:
    """cv2 threads would oversubscribe the cores that the DataLoader workers already use; once per process."""
    global _cv2_pid
    if _cv2_pid != os.getpid():
        cv2.setNumThreads(1)
        _cv2_pid = os.getpid()


def decode_factor(M: np.ndarray, limit: int = 4) -> int:
    """Largest JPEG decode reduction (1, 2 or 4) that keeps at least one decoded pixel per crop pixel.

    M maps frame px to crop px; its scale s = crop px per frame px. A reduction f decodes at 1/f of the size,
    which stays at least as fine as the crop when s * f <= 1.
    """
    s = float(np.sqrt(abs(np.linalg.det(M[:, :2]))))
    f = 1
    while f * 2 <= limit and s * f * 2 <= 1.0:
        f *= 2
    return f


def reduced_affine(M: np.ndarray, f: int) -> np.ndarray:
    """Composes M with the map from 1/f-decoded pixels to full-frame pixels (x = f x' + (f - 1) / 2).

    libjpeg's DCT scaling averages f x f blocks, so decoded pixel i covers frame pixels f i .. f i + f - 1,
    whose centre is f i + (f - 1) / 2.
    """
    if f == 1:
        return M
    R = np.array([[f, 0.0, (f - 1) / 2.0], [0.0, f, (f - 1) / 2.0], [0.0, 0.0, 1.0]])
    return M @ R


class PoseFixDataset(Dataset):
    """PoseFix training/validation samples from ground-truth persons.

    Each item is a dict of tensors:
        image: (3, H, W) uint8 RGB crop; affine: (2, 3) float32 frame px -> crop px (flip included);
        target_keypoints: (J, 2) float32 crop px; target_valid: (J,) bool (labeled, inside the crop, not ignored);
        input_keypoints: (J, 2) float32 crop px; input_valid: (J,) bool; error_type: (J,) int8 (synthesis.py);
        image_id, person_index: int64; flipped: bool.

    Args:
        persons: the training persons (annotations.py).
        layout: keypoint layout (flip pairs, sigmas, ignored slots).
        input_hw: crop (H, W).
        augmentation: scale/rotation/flip strengths, or None for none (validation).
        synthesize: True: input pose from the PoseFix error synthesis; False: the ground truth itself.
        seed: base seed; sample i of epoch e uses numpy Generator seeded with (seed, e, i).
        reduced_decode: decode JPEGs at 1/2 or 1/4 size when the crop is that much smaller than the box.
    """

    def __init__(
        self,
        *,
        persons: Sequence[PersonEntry],
        layout: KeypointLayout,
        input_hw: tuple[int, int] = (256, 192),
        augmentation: Augmentation | None = DEFAULT_AUGMENTATION,
        synthesize: bool = True,
        seed: int = 0,
        reduced_decode: bool = True,
    ):
        self.persons = list(persons)
        self.layout = layout
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.augmentation = augmentation
        self.synthesize = synthesize
        self.seed = int(seed)
        self.reduced_decode = reduced_decode
        self.epoch = 0
        self._perm = layout.flip_permutation

    def __len__(self) -> int:
        return len(self.persons)

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch whose augmentation and synthesis draws are returned."""
        self.epoch = int(epoch)

    def _read(self, e: PersonEntry, index: int, M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f = decode_factor(M) if self.reduced_decode else 1
        img = cv2.imread(e.image_path, _REDUCED_FLAGS[f] | cv2.IMREAD_IGNORE_ORIENTATION)
        if img is None:
            raise InputError(
                e.image_path,
                "image missing or not readable",
                f"person {index} (image_id {e.image_id}, annotation id {e.ann_id})",
            )
        return img, reduced_affine(M, f)

    def _to_crop(self, M: np.ndarray, pts: np.ndarray, valid: np.ndarray, flip: bool) -> tuple[np.ndarray, np.ndarray]:
        """(..., J, 2) frame px -> crop px, slots swapped when flipped, invalid outside [0, W) x [0, H)."""
        H, W = self.input_hw
        out = pts @ M[:, :2].T + M[:, 2]
        if flip:
            out = out[..., self._perm, :]
            valid = valid[..., self._perm]
        inside = (out[..., 0] >= 0) & (out[..., 0] < W) & (out[..., 1] >= 0) & (out[..., 1] < H)
        return out, valid & inside

    def _prepare(self, index: int) -> tuple[dict, dict | None]:
        """Decode, augment and warp sample `index`; returns its fields and its synthesis inputs (or None)."""
        _single_thread_cv2()
        e = self.persons[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        draw = draw_augmentation(self.augmentation, rng) if self.augmentation is not None else AugmentDraw()
        M = sample_affine(e.box, draw, self.input_hw)
        img, M_img = self._read(e, index, M)
        H, W = self.input_hw
        crop = cv2.warpAffine(img, M_img, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=(0, 0, 0))  # fmt: skip
        image = np.ascontiguousarray(crop[:, :, ::-1].transpose(2, 0, 1))  # BGR -> RGB, (3, H, W)
        used = self.layout.used_mask
        target, target_valid = self._to_crop(M, e.keypoints, e.valid & used, draw.flip)
        fields = {"image": image, "target": target, "target_valid": target_valid, "M": M, "flip": draw.flip,
                  "image_id": e.image_id, "index": index, "rng": rng}  # fmt: skip
        if not self.synthesize:
            return fields, None
        near, near_valid = self._to_crop(M, e.near, e.near_valid & used, draw.flip)
        est = est_valid = None
        if e.estimated is not None:
            # The reference centres unlabeled joints on the estimate wherever it lies (no in-crop test).
            est, _ = self._to_crop(M, e.estimated, e.estimated_valid, draw.flip)
            est_valid = (e.estimated_valid & used)[self._perm] if draw.flip else e.estimated_valid & used
        # KS area: the ground-truth box's side lengths after the transform (rotation does not change them)
        x, y, w, h = e.box
        corners = np.array([[x, y], [x + w, y], [x + w, y + h]]) @ M[:, :2].T + M[:, 2]
        area = np.linalg.norm(corners[1] - corners[0]) * np.linalg.norm(corners[2] - corners[1])
        synth = {"gt": target, "gt_valid": target_valid, "near": near, "near_valid": near_valid, "area": area,
                 "overlap": e.overlap, "est": est, "est_valid": est_valid}  # fmt: skip
        return fields, synth

    def _synthesize(self, synth: list[dict], rng: np.random.Generator) -> list[tuple[np.ndarray, ...]]:
        """One batched synthesis call for several samples (near persons padded to the largest count)."""
        n = len(synth)
        J = self.layout.num_joints
        M = max(s["near"].shape[0] for s in synth)
        near = np.zeros((n, M, J, 2))
        near_valid = np.zeros((n, M, J), dtype=bool)
        est = np.zeros((n, J, 2))
        est_valid = np.zeros((n, J), dtype=bool)
        for k, s in enumerate(synth):
            m = s["near"].shape[0]
            near[k, :m], near_valid[k, :m] = s["near"], s["near_valid"]
            if s["est"] is not None:
                est[k], est_valid[k] = s["est"], s["est_valid"]
        res = synthesize_poses(
            np.stack([s["gt"] for s in synth]), np.stack([s["gt_valid"] for s in synth]), near, near_valid,
            np.array([s["area"] for s in synth]), np.array([s["overlap"] for s in synth]), self.layout, rng,
            est, est_valid,
        )  # fmt: skip
        return [(res.keypoints[k], res.valid[k], res.error_type[k]) for k in range(n)]

    @staticmethod
    def _pack(f: dict, inp: np.ndarray, inp_valid: np.ndarray, etype: np.ndarray) -> dict[str, torch.Tensor]:
        return {
            "image": torch.from_numpy(f["image"]),
            "target_keypoints": torch.from_numpy(f["target"].astype(np.float32)),
            "target_valid": torch.from_numpy(f["target_valid"]),
            "input_keypoints": torch.from_numpy(inp.astype(np.float32)),
            "input_valid": torch.from_numpy(np.asarray(inp_valid, dtype=bool)),
            "error_type": torch.from_numpy(etype.astype(np.int8)),
            "affine": torch.from_numpy(f["M"].astype(np.float32)),
            "image_id": torch.tensor(f["image_id"], dtype=torch.int64),
            "person_index": torch.tensor(f["index"], dtype=torch.int64),
            "flipped": torch.tensor(f["flip"]),
        }

    def _identity_input(self, f: dict) -> tuple[np.ndarray, ...]:
        return f["target"].copy(), f["target_valid"].copy(), np.where(f["target_valid"], 0, ZEROED).astype(np.int8)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """Sample `index`: a function of (seed, epoch, index) only."""
        f, synth = self._prepare(index)
        out = self._identity_input(f) if synth is None else self._synthesize([synth], f["rng"])[0]
        return self._pack(f, *out)

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        """A batch (the DataLoader calls this when present): one synthesis call for the whole batch.

        Decode and augmentation stay per sample (seeded by (seed, epoch, index)); the batch's synthesis draws
        come from a generator seeded by (seed, epoch, indices), so a resumed run that replays the same batches
        (the sampler's order is a function of (seed, epoch)) gets identical samples. Batching removes most of
        numpy's per-call overhead (performance: docs/training_data.md).
        """
        prepared = [self._prepare(int(i)) for i in indices]
        if not self.synthesize or not prepared:
            return [self._pack(f, *self._identity_input(f)) for f, _ in prepared]
        rng = np.random.default_rng([self.seed, self.epoch, *[int(i) for i in indices]])
        outs = self._synthesize([s for _, s in prepared], rng)
        return [self._pack(f, *o) for (f, _), o in zip(prepared, outs)]
