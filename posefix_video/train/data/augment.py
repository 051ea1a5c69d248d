"""The reference's training augmentation: scale, rotation, horizontal flip, as frame -> crop affines."""

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
