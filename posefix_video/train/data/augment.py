"""The reference's training augmentation: scale, rotation, horizontal flip, as frame -> crop affines; and the
tracker-style blanking of synthesised input joints (issue 18)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posefix_video import geometry


@dataclass(frozen=True)
class Augmentation:
    """Augmentation strengths (posefix_method.md §1.2 step 3).

    Attributes:
        scale_factor: crop size x clip(1 + f N(0,1), 1 - f, 1 + f).
        rotation_factor: rotation clip(f N(0,1), -2f, 2f) degrees.
        rotation_prob: probability of rotating at all.
        flip_prob: probability of a horizontal flip.
    """

    scale_factor: float = 0.3
    rotation_factor: float = 40.0
    rotation_prob: float = 0.6
    flip_prob: float = 0.5


@dataclass(frozen=True)
class AugmentDraws:
    """Augmentations of n samples: crop size multipliers (n,), rotations in degrees (n,), flips (n,) bool."""

    scale: np.ndarray
    rotation: np.ndarray
    flip: np.ndarray

    @classmethod
    def identity(cls, n: int) -> AugmentDraws:
        return cls(np.ones(n), np.zeros(n), np.zeros(n, dtype=bool))

    def __getitem__(self, index) -> AugmentDraws:
        return AugmentDraws(self.scale[index], self.rotation[index], self.flip[index])


def draw_augmentations(aug: Augmentation, rng: np.random.Generator, n: int) -> AugmentDraws:
    """Draws scale, rotation and flip for n samples at once."""
    f = aug.scale_factor
    scale = np.clip(1.0 + f * rng.standard_normal(n), 1.0 - f, 1.0 + f)
    r = aug.rotation_factor
    rotation = np.clip(r * rng.standard_normal(n), -2 * r, 2 * r)
    rotation[rng.random(n) >= aug.rotation_prob] = 0.0
    flip = rng.random(n) < aug.flip_prob
    return AugmentDraws(scale, rotation, flip)


def sample_affines(boxes: np.ndarray, draws: AugmentDraws, out_hw: tuple[int, int]) -> np.ndarray:
    """(n, 2, 3) frame -> crop affines of ground-truth boxes (n, 4) [x, y, w, h] under `draws`.

    Each crop is the box widened to aspect 0.75 and x1.25 (geometry.crop_box), resized by its scale, rotated
    about its centre; a flip mirrors the crop (u -> W - 1 - u, geometry.hflip_affine). The caller swaps the
    left/right slots of flipped keypoints.
    """
    centre, size = geometry.crop_box(np.asarray(boxes, dtype=np.float64).reshape(-1, 4))
    M = geometry.crop_affine(centre, size * draws.scale[:, None], out_hw, draws.rotation)
    flipped = geometry.hflip_affine(M, out_hw[1])
    return np.where(draws.flip[:, None, None], flipped, M)


# Tracker-style blanking of input joints (issue 18): trackers output some joints as absent, and the refiner then
# gets no input heatmap for them. Probabilities per error type for the confidence mode: trackers blank the joints
# they are unsure of (ultralytics zeroes keypoints under 0.5 confidence), and those are mostly the wrong ones.
_BLANK_BY_TYPE = np.array([0.03, 0.2, 0.6, 0.5, 0.5])  # good, jitter, miss, inversion, swap
_BLANK_LIMB = 0.3  # per limb (elbow + wrist, knee + ankle) in the limb mode
_BLANK_RANDOM = 0.25  # per joint in the random mode
_LIMBS = ((7, 9), (8, 10), (13, 15), (14, 16))  # COCO slots, shared by PoseTrack18


def blank_like_trackers(valid: np.ndarray, error_type: np.ndarray, rng: np.random.Generator,
                        prob: float) -> np.ndarray:
    """(N, J) input-joint validity with joints blanked as trackers blank them.

    Each person is blanked with probability `prob`, in one of three modes drawn uniformly: confidence blanking
    (per joint, more likely the worse its error type: _BLANK_BY_TYPE), whole limbs (each with _BLANK_LIMB) or
    random joints (each with _BLANK_RANDOM). At least one joint of a person stays (a tracker outputs no person
    without joints).

    Args:
        valid: (N, J) bool, the synthesised input joints.
        error_type: (N, J) int8 error types (-1 zeroed).
        rng: numpy Generator.
        prob: probability per person of being blanked at all (0: `valid` unchanged).
    """
    valid = np.asarray(valid, dtype=bool)
    N, J = valid.shape
    if prob <= 0 or N == 0:
        return valid.copy()
    person = rng.random(N) < prob
    mode = rng.integers(0, 3, N)
    u = rng.random((N, J))
    by_type = _BLANK_BY_TYPE[np.clip(np.asarray(error_type), 0, 4)]
    blank = np.where((mode == 0)[:, None], u < by_type, False)
    limb_gone = rng.random((N, len(_LIMBS))) < _BLANK_LIMB
    for k, limb in enumerate(_LIMBS):
        if max(limb) < J:
            blank[:, limb] |= ((mode == 1) & limb_gone[:, k])[:, None]
    blank |= (mode == 2)[:, None] & (u < _BLANK_RANDOM)
    blank &= person[:, None]
    out = valid & ~blank
    empty = valid.any(-1) & ~out.any(-1)
    out[empty] = valid[empty]  # never a person without joints
    return out
