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
            raise InputError(e.image_path, "image missing or not readable",
                             f"person {index} (image_id {e.image_id}, annotation id {e.ann_id})")
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

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
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
        if self.synthesize:
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
            res = synthesize_poses(target[None], target_valid[None], near[None], near_valid[None], np.array([area]),
                                   np.array([e.overlap]), self.layout, rng,
                                   None if est is None else est[None], None if est is None else est_valid[None])
            inp, inp_valid, etype = res.keypoints[0], res.valid[0], res.error_type[0]
        else:
            inp, inp_valid = target.copy(), target_valid.copy()
            etype = np.where(target_valid, 0, ZEROED).astype(np.int8)
        return {
            "image": torch.from_numpy(image),
            "target_keypoints": torch.from_numpy(target.astype(np.float32)),
            "target_valid": torch.from_numpy(target_valid),
            "input_keypoints": torch.from_numpy(inp.astype(np.float32)),
            "input_valid": torch.from_numpy(inp_valid),
            "error_type": torch.from_numpy(etype.astype(np.int8)),
            "affine": torch.from_numpy(M.astype(np.float32)),
            "image_id": torch.tensor(e.image_id, dtype=torch.int64),
            "person_index": torch.tensor(index, dtype=torch.int64),
            "flipped": torch.tensor(draw.flip),
        }

