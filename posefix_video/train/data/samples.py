"""The training dataset: decode, augment, crop, transform joints, synthesise the input pose.

Workers return uint8 RGB crops and small float arrays; heatmaps, targets and normalisation are made on the
device by the training code (performance.md A5). Every sample is a deterministic function of (seed, epoch,
index), so a resumed run sees exactly the samples it would have seen.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from posefix_video.keypoints import KeypointLayout
from posefix_video.synthesis import ZEROED, synthesize_poses
from posefix_video.train.data.annotations import PersonEntry
from posefix_video.train.data.augment import (
    Augmentation,
    AugmentDraws,
    blank_like_trackers,
    draw_augmentations,
    sample_affines,
)
from posefix_video.train.data.image_bank import ImageBank
from posefix_video.train.data.image_decode import ImageDecoder

DEFAULT_AUGMENTATION = Augmentation()
_cv2_pid = None


def _single_thread_cv2() -> None:
    """cv2 threads would oversubscribe the cores that the DataLoader workers already use; once per process."""
    global _cv2_pid
    if _cv2_pid != os.getpid():
        cv2.setNumThreads(1)
        _cv2_pid = os.getpid()


def decode_factors(M: np.ndarray, limit: int = 4) -> np.ndarray:
    """(n,) largest JPEG decode reductions (1, 2 or 4) that keep at least one decoded pixel per crop pixel.

    M (n, 2, 3) maps frame px to crop px; its scale s = crop px per frame px. A reduction f decodes at 1/f of the
    size, which stays at least as fine as the crop when s * f <= 1.
    """
    M = np.asarray(M, dtype=np.float64).reshape(-1, 2, 3)
    s = np.sqrt(np.abs(M[:, 0, 0] * M[:, 1, 1] - M[:, 0, 1] * M[:, 1, 0]))
    f = np.ones(s.shape, dtype=np.int64)
    for _ in range(int(np.log2(limit))):
        f = np.where((f * 2 <= limit) & (s * f * 2 <= 1.0), f * 2, f)
    return f


@dataclass(frozen=True)
class _PackedPersons:
    """The persons' arrays stacked once, so a batch gathers them by fancy indexing.

    near (T, J, 2) / near_valid (T, J) hold every person's neighbours back to back; person i's are rows
    near_start[i] : near_start[i] + near_count[i].
    """

    boxes: np.ndarray  # (N, 4)
    keypoints: np.ndarray  # (N, J, 2)
    valid: np.ndarray  # (N, J)
    image_paths: list[str]  # (N,)
    image_ids: np.ndarray  # (N,)
    ann_ids: np.ndarray  # (N,)
    near: np.ndarray  # (T, J, 2)
    near_valid: np.ndarray  # (T, J)
    near_start: np.ndarray  # (N,)
    near_count: np.ndarray  # (N,)
    estimated: np.ndarray | None  # (N, J, 2), zeros where a person has none; None when nobody has one
    estimated_valid: np.ndarray | None  # (N, J)

    @classmethod
    def build(cls, persons: Sequence[PersonEntry], num_joints: int) -> _PackedPersons:
        J = num_joints
        N = len(persons)
        count = np.array([p.near.shape[0] for p in persons], dtype=np.int64)
        near = [p.near.reshape(-1, J, 2) for p in persons if p.near.shape[0]]
        near_valid = [p.near_valid.reshape(-1, J) for p in persons if p.near.shape[0]]
        est = est_valid = None
        if any(p.estimated is not None for p in persons):
            est = np.zeros((N, J, 2))
            est_valid = np.zeros((N, J), dtype=bool)
            for k, p in enumerate(persons):
                if p.estimated is not None:
                    est[k], est_valid[k] = p.estimated, p.estimated_valid
        return cls(
            boxes=np.array([p.box for p in persons], dtype=np.float64).reshape(N, 4),
            keypoints=np.array([p.keypoints for p in persons], dtype=np.float64).reshape(N, J, 2),
            valid=np.array([p.valid for p in persons], dtype=bool).reshape(N, J),
            image_paths=[p.image_path for p in persons],
            image_ids=np.array([p.image_id for p in persons], dtype=np.int64),
            ann_ids=np.array([p.ann_id for p in persons], dtype=np.int64),
            near=np.concatenate(near).astype(np.float64) if near else np.zeros((0, J, 2)),
            near_valid=np.concatenate(near_valid).astype(bool) if near else np.zeros((0, J), dtype=bool),
            near_start=np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64) if N else count,
            near_count=count,
            estimated=est,
            estimated_valid=est_valid,
        )

    def near_of(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, M, J, 2) neighbours of persons idx and (n, M, J) validity, padded to the largest count M."""
        count = self.near_count[idx]
        M = int(count.max(initial=0))
        slot = np.arange(M)
        present = slot[None, :] < count[:, None]  # (n, M)
        rows = np.where(present, self.near_start[idx, None] + slot[None, :], 0)
        if self.near.shape[0] == 0:
            return np.zeros((idx.size, 0) + self.near.shape[1:]), np.zeros((idx.size, 0, self.near.shape[1]), bool)
        return self.near[rows] * present[..., None, None], self.near_valid[rows] & present[..., None]


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
        image: (H, W, 3) uint8 RGB crop (channels last as decoded; the device permutes it);
        affine: (2, 3) float32 frame px -> crop px (flip included);
        target_keypoints: (J, 2) float32 crop px; target_valid: (J,) bool (labeled, inside the crop, not ignored);
        input_keypoints: (J, 2) float32 crop px; input_valid: (J,) bool; error_type: (J,) int8 (synthesis.py);
        image_id, person_index: int64; flipped: bool.

    Args:
        persons: the training persons (annotations.py).
        layout: keypoint layout (flip pairs, sigmas, ignored slots).
        input_hw: crop (H, W).
        augmentation: scale/rotation/flip strengths, or None for none (validation).
        synthesize: True: input pose from the PoseFix error synthesis; False: the ground truth itself.
        seed: base seed. Epoch e's augmentations of all persons are drawn at once from a generator seeded with
            (seed, e); the synthesis draws of a batch from one seeded with (seed, e, *indices).
        reduced_decode: decode JPEGs at 1/2 or 1/4 size when the crop is that much smaller than the box.
        image_bank: decoded images to crop from instead of decoding (image_bank.py); images it lacks are decoded.
            Bank images are full size, so reduced_decode does not apply to them (the reference's pixels).
        blank_inputs: probability per person that input joints are blanked the way trackers blank them
            (augment.blank_like_trackers); blanked joints get no input heatmap, as absent joints at test time.
        low_res: probability per sample that the crop is degraded to the detail of a person `low_res_heights`
            px tall (downscaled with area averaging, upscaled back bilinearly), as the refiner sees small persons.
        low_res_heights: (smallest, largest) person height in px for low_res, drawn log-uniformly.
    """

    reads_batch_epoch = True  # __getitems__ takes the epoch from the engine's batches (engine.EpochBatch)

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
        image_bank: ImageBank | None = None,
        blank_inputs: float = 0.0,
        low_res: float = 0.0,
        low_res_heights: tuple[float, float] = (30.0, 100.0),
    ):
        self.layout = layout
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.augmentation = augmentation
        self.synthesize = synthesize
        self.seed = int(seed)
        self.reduced_decode = reduced_decode
        self.epoch = 0
        self._perm = layout.flip_permutation
        self._used = layout.used_mask
        # arrays, not PersonEntry objects: a COCO-sized dataset then pickles to a worker in well under a second
        self._packed = _PackedPersons.build(list(persons), layout.num_joints)
        self._decoder = ImageDecoder()
        self.image_bank = image_bank
        self.blank_inputs = float(blank_inputs)
        self.low_res = float(low_res)
        self.low_res_heights = (float(low_res_heights[0]), float(low_res_heights[1]))
        self._draws: tuple[int, AugmentDraws] | None = None

    def __len__(self) -> int:
        return len(self._packed.image_paths)

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch whose augmentation and synthesis draws are returned."""
        self.epoch = int(epoch)

    def _epoch_draws(self, epoch: int) -> AugmentDraws:
        """Every person's augmentation in `epoch`: a function of (seed, epoch) and the index only."""
        if self.augmentation is None:
            return AugmentDraws.identity(len(self))
        if self._draws is None or self._draws[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._draws = (epoch, draw_augmentations(self.augmentation, rng, len(self)))
        return self._draws[1]

    def _to_crop(
        self, M: np.ndarray, pts: np.ndarray, valid: np.ndarray, flip: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(n, ..., J, 2) frame px -> crop px by M (n, 2, 3); slots swapped where flipped; outside [0, W) x [0, H)
        invalid."""
        H, W = self.input_hw
        n = M.shape[0]
        out = (pts.reshape(n, -1, 2) @ M[:, :, :2].transpose(0, 2, 1) + M[:, None, :, 2]).reshape(pts.shape)
        if flip.any():
            f = flip.reshape((n,) + (1,) * (pts.ndim - 2))
            out = np.where(f[..., None], out[..., self._perm, :], out)
            valid = np.where(f, valid[..., self._perm], valid)
        inside = (out[..., 0] >= 0) & (out[..., 0] < W) & (out[..., 1] >= 0) & (out[..., 1] < H)
        return out, valid & inside

    def _crops(self, idx: np.ndarray, M: np.ndarray) -> np.ndarray:
        """(n, H, W, 3) uint8 RGB crops: one decode and one warp per sample, written in place.

        Channels stay last: a planar copy here would cost more than the warp's bilinear arithmetic per pixel, and
        the device permutes for free.
        """
        H, W = self.input_hw
        out = np.empty((idx.size, H, W, 3), dtype=np.uint8)
        factors = decode_factors(M) if self.reduced_decode else np.ones(idx.size, dtype=np.int64)
        bank, P = self.image_bank, self._packed
        for k, i in enumerate(idx.tolist()):
            path = P.image_paths[i]
            img, f = (bank.get(path), 1) if bank is not None else (None, 1)
            if img is None:
                record = f"person {i} (image_id {P.image_ids[i]}, annotation id {P.ann_ids[i]})"
                img, f = self._decoder.decode(path, int(factors[k]), record=record)
            cv2.warpAffine(img, reduced_affine(M[k], f), (W, H), dst=out[k], flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))  # fmt: skip
        return out

    def _degrade(self, images: np.ndarray, M: np.ndarray, rng: np.random.Generator) -> None:
        """Low-resolution augmentation in place: a chosen crop keeps only the detail that a person of a drawn height
        (low_res_heights) would have in the frame. The crop spans about 1.5 person heights (box x1.2 extent x1.25),
        so it is downscaled to 1.5 x height rows when that is coarser than its source, then scaled back."""
        H, W = self.input_hw
        n = images.shape[0]
        pick = rng.random(n) < self.low_res
        lo, hi = np.log(self.low_res_heights[0]), np.log(self.low_res_heights[1])
        heights = np.exp(rng.uniform(lo, hi, n))
        src_rows = H / np.sqrt(np.abs(np.linalg.det(M[:, :, :2])))  # frame rows the crop spans
        for k in np.flatnonzero(pick & (1.5 * heights < src_rows)).tolist():
            h = max(4, int(round(1.5 * heights[k])))
            w = max(3, int(round(h * W / H)))
            if h >= H:
                continue
            small = cv2.resize(images[k], (w, h), interpolation=cv2.INTER_AREA)
            images[k] = cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """Sample `index`: a function of (seed, epoch, index) only."""
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        """A batch (the DataLoader calls this when present), built with array operations over the batch.

        Only the decode and the warp run per sample (C code each). Augmentation comes from the epoch's table, so
        a sample's crop and targets depend on (seed, epoch, index) alone; the synthesis draws of the batch come
        from a generator seeded by (seed, epoch, indices), so a resumed run that replays the same batches (the
        sampler's order is a function of (seed, epoch)) gets identical samples. The epoch is `indices.epoch` when
        the batch carries one (the engine's batches do, so persistent DataLoader workers need no set_epoch), else
        the one set by `set_epoch`.
        """
        _single_thread_cv2()
        epoch = int(getattr(indices, "epoch", self.epoch))
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            return []
        P, used = self._packed, self._used
        draws = self._epoch_draws(epoch)[idx]
        M = sample_affines(P.boxes[idx], draws, self.input_hw)
        images = self._crops(idx, M)
        if self.low_res > 0:
            self._degrade(images, M, np.random.default_rng([self.seed, epoch, 0x10E5, *idx.tolist()]))
        target, target_valid = self._to_crop(M, P.keypoints[idx], P.valid[idx] & used, draws.flip)
        if self.synthesize:
            near, near_valid = P.near_of(idx)
            near, near_valid = self._to_crop(M, near, near_valid & used, draws.flip)
            est = est_valid = None
            if P.estimated is not None:
                # The reference centres unlabeled joints on the estimate wherever it lies (no in-crop test).
                est, _ = self._to_crop(M, P.estimated[idx], P.estimated_valid[idx], draws.flip)
                est_valid = P.estimated_valid[idx] & used
                est_valid = np.where(draws.flip[:, None], est_valid[:, self._perm], est_valid)
            # KS area: the ground-truth box's side lengths after the transform (rotation does not change them)
            x, y, w, h = P.boxes[idx].T
            corners = np.stack([np.stack([x, y], -1), np.stack([x + w, y], -1), np.stack([x + w, y + h], -1)], 1)
            c = corners @ M[:, :, :2].transpose(0, 2, 1) + M[:, None, :, 2]
            area = np.linalg.norm(c[:, 1] - c[:, 0], axis=-1) * np.linalg.norm(c[:, 2] - c[:, 1], axis=-1)
            rng = np.random.default_rng([self.seed, epoch, *idx.tolist()])
            res = synthesize_poses(target, target_valid, near, near_valid, area, P.near_count[idx], self.layout, rng,
                                   est, est_valid)  # fmt: skip
            inp, inp_valid, etype = res.keypoints, res.valid, res.error_type
            if self.blank_inputs > 0:
                inp_valid = blank_like_trackers(inp_valid, etype, rng, self.blank_inputs)
                etype = np.where(inp_valid, etype, ZEROED).astype(np.int8)
                inp = np.where(inp_valid[..., None], inp, 0.0)
        else:
            inp, inp_valid = target.copy(), target_valid.copy()
            etype = np.where(target_valid, 0, ZEROED)
        batch = {
            "image": torch.from_numpy(images),
            "target_keypoints": torch.from_numpy(target.astype(np.float32)),
            "target_valid": torch.from_numpy(target_valid),
            "input_keypoints": torch.from_numpy(inp.astype(np.float32)),
            "input_valid": torch.from_numpy(np.asarray(inp_valid, dtype=bool)),
            "error_type": torch.from_numpy(np.asarray(etype, dtype=np.int8)),
            "affine": torch.from_numpy(M.astype(np.float32)),
            "image_id": torch.from_numpy(P.image_ids[idx]),
            "person_index": torch.from_numpy(idx),
            "flipped": torch.from_numpy(draws.flip.copy()),
        }
        return [{key: value[k] for key, value in batch.items()} for k in range(idx.size)]
