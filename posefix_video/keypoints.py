"""Keypoint layouts: COCO-17 and PoseTrack18-17.

Both layouts have 17 slots in COCO order. PoseTrack18 reuses COCO's eye slots 1 and 2 for head_bottom and
head_top, and never labels the ear slots 3 and 4 (poseval drops them by name). Everything that depends on the
layout (names, flip pairs, OKS sigmas, ignored slots, drawing edges) lives here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NUM_JOINTS = 17

COCO17_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

POSETRACK18_NAMES = (
    "nose", "head_bottom", "head_top", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

_LIMB_PAIRS = ((5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))

# COCO's per-keypoint OKS sigmas (pycocotools COCOeval.kpt_oks_sigmas, already divided by 10).
COCO17_SIGMAS = (0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
                 0.107, 0.107, 0.087, 0.087, 0.089, 0.089)  # fmt: skip
# PoseFix's PoseTrack table (data/PoseTrack/dataset.py): head_bottom/head_top 0.035, the unlabeled ears 0.
POSETRACK18_SIGMAS = (0.026, 0.035, 0.035, 0.0, 0.0, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
                      0.107, 0.107, 0.087, 0.087, 0.089, 0.089)  # fmt: skip

# The `skeleton` block of COCO/PoseTrack `categories` (1-based, as the files carry it). PoseTrack18 files copy
# COCO's, so the writer emits this list verbatim for both layouts.
CATEGORY_SKELETON = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8),
    (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)  # fmt: skip

_BODY_EDGES = ((5, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (6, 12), (11, 12),
               (11, 13), (13, 15), (12, 14), (14, 16))  # fmt: skip


@dataclass(frozen=True)
class KeypointLayout:
    """A 17-slot keypoint layout.

    Attributes:
        name: "coco17" or "posetrack18".
        names: joint names in slot order.
        flip_pairs: (left, right) slot pairs swapped by a horizontal flip.
        sigmas: OKS sigmas per slot (0 for slots never labeled).
        ignored: slots never labeled in this layout (zeroed in the network input, masked in the loss).
        edges: 0-based slot pairs drawn as the skeleton.
    """

    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]
    ignored: tuple[int, ...]
    edges: tuple[tuple[int, int], ...]

    @property
    def num_joints(self) -> int:
        return len(self.names)

    @property
    def flip_permutation(self) -> np.ndarray:
        """(J,) int: slot j of a mirrored pose takes slot flip_permutation[j] of the original."""
        perm = np.arange(self.num_joints)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    @property
    def used_mask(self) -> np.ndarray:
        """(J,) bool: True for slots that carry labels in this layout."""
        mask = np.ones(self.num_joints, dtype=bool)
        mask[list(self.ignored)] = False
        return mask

    @property
    def sigma_array(self) -> np.ndarray:
        return np.asarray(self.sigmas, dtype=np.float64)


COCO17 = KeypointLayout(
    name="coco17",
    names=COCO17_NAMES,
    flip_pairs=((1, 2), (3, 4)) + _LIMB_PAIRS,
    sigmas=COCO17_SIGMAS,
    ignored=(),
    edges=((0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)) + _BODY_EDGES,
)

POSETRACK18 = KeypointLayout(
    name="posetrack18",
    names=POSETRACK18_NAMES,
    flip_pairs=_LIMB_PAIRS,
    sigmas=POSETRACK18_SIGMAS,
    ignored=(3, 4),
    edges=((2, 1), (1, 0), (1, 5), (1, 6)) + _BODY_EDGES,
)

LAYOUTS = {COCO17.name: COCO17, POSETRACK18.name: POSETRACK18}


def get_layout(name: str) -> KeypointLayout:
    """Returns the layout called `name` ("coco17" or "posetrack18")."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ValueError(f"unknown keypoint layout {name!r}; known layouts: {', '.join(LAYOUTS)}") from None


def resolve_layout(layout: str | KeypointLayout | None, default: KeypointLayout | None = None) -> KeypointLayout:
    """A layout given by name or object; None gives `default` (COCO17 when not given)."""
    if layout is None:
        return default if default is not None else COCO17
    return layout if isinstance(layout, KeypointLayout) else get_layout(layout)


def layout_from_names(names: list[str] | tuple[str, ...]) -> KeypointLayout | None:
    """Identifies a layout from a `categories[0].keypoints` name list; None if it is neither."""
    names = tuple(names)
    for layout in LAYOUTS.values():
        if names == layout.names:
            return layout
    return None
