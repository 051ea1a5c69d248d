"""The reference's training augmentation: scale, rotation, horizontal flip, as one frame -> crop affine."""

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
class AugmentDraw:
    """One sample's augmentation: crop size multiplier, rotation in degrees, flip."""

    scale: float = 1.0
    rotation: float = 0.0
    flip: bool = False


def draw_augmentation(aug: Augmentation, rng: np.random.Generator) -> AugmentDraw:
    """Draws scale, rotation and flip for one sample."""
    f = aug.scale_factor
    scale = float(np.clip(1.0 + f * rng.standard_normal(), 1.0 - f, 1.0 + f))
    r = aug.rotation_factor
    rotation = float(np.clip(r * rng.standard_normal(), -2 * r, 2 * r))
    if rng.random() >= aug.rotation_prob:
        rotation = 0.0
    flip = bool(rng.random() < aug.flip_prob)
    return AugmentDraw(scale, rotation, flip)


def sample_affine(box: np.ndarray, draw: AugmentDraw, out_hw: tuple[int, int]) -> np.ndarray:
    """(2, 3) frame -> crop affine of a ground-truth box [x, y, w, h] under `draw`.

    The crop is the box widened to aspect 0.75 and x1.25 (geometry.crop_box), resized by draw.scale, rotated
    about its centre; a flip mirrors the crop (u -> W - 1 - u, geometry.hflip_affine). The caller swaps the
    left/right slots of flipped keypoints.
    """
    centre, size = geometry.crop_box(np.asarray(box, dtype=np.float64)[None])
    M = geometry.crop_affine(centre, size * draw.scale, out_hw, draw.rotation)
    if draw.flip:
        M = geometry.hflip_affine(M, out_hw[1])
    return M[0]
