"""Training persons from COCO-style keypoint annotations: filters, near persons, estimator results.

A `PersonEntry` is one ground-truth person that passes the reference's filter (not crowd, num_keypoints > 0, at
least one labeled joint, positive box area after clipping the box to the image), with the other persons of its
image whose box IoU with it is >= 0.1 (the swap candidates) and, optionally, another estimator's joints for
the joints the ground truth does not label. Coordinates are frame pixels.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posefix_video.errors import InputError
from posefix_video.geometry import box_from_keypoints, usable_joints
from posefix_video.keypoints import NUM_JOINTS, KeypointLayout

log = logging.getLogger(__name__)

NEAR_IOU = 0.1


@dataclass
class PersonEntry:
    """One training person.

    Attributes:
        image_path: the image file.
        image_id: the annotation file's image id.
        ann_id: the annotation id (for messages).
        box: (4,) [x, y, w, h] ground-truth box clipped to the image, frame px.
        keypoints: (J, 2) ground truth, frame px.
        valid: (J,) bool, labeled (v > 0) and not an ignored slot of the layout.
        near: (M, J, 2) joints of the other persons with box IoU >= 0.1; near_valid (M, J) bool.
        estimated: (J, 2) another estimator's joints or None; estimated_valid (J,) bool or None.
    """

    image_path: str
    image_id: int
    ann_id: int
    box: np.ndarray
    keypoints: np.ndarray
    valid: np.ndarray
    near: np.ndarray
    near_valid: np.ndarray
    estimated: np.ndarray | None = None
    estimated_valid: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def overlap(self) -> int:
        """Number of other persons with box IoU >= 0.1 (the reference's crowdedness input)."""
        return int(self.near.shape[0])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of [x, y, w, h] boxes a (N, 4) and b (M, 4)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def clip_box(box: list[float] | np.ndarray, width: float, height: float) -> np.ndarray | None:
    """The reference's box sanitising: clip [x, y, w, h] to the image; None if nothing positive remains."""
    x, y, w, h = (float(v) for v in box)
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    if x2 <= x1 or y2 <= y1:
        return None
    return np.array([x1, y1, x2 - x1, y2 - y1])


def _keypoint_array(path: str | os.PathLike, ann: dict, record: str) -> np.ndarray:
    kps = ann.get("keypoints")
    try:
        arr = np.asarray(kps, dtype=np.float64).reshape(NUM_JOINTS, 3)
    except (TypeError, ValueError):
        raise InputError(path, f"keypoints must be a list of {NUM_JOINTS * 3} numbers", record) from None
    if not np.isfinite(arr).all():
        raise InputError(path, "keypoints contain NaN or infinity", record)
    return arr


def persons_from_coco(
    data: dict,
    image_root: str | os.PathLike,
    layout: KeypointLayout,
    path: str | os.PathLike,
    labeled_only: bool = True,
) -> list[PersonEntry]:
    """Training persons of a COCO-style keypoint dict (COCO or PoseTrack18 merged), with their near persons.

    Args:
        data: the parsed annotation file ({"images", "annotations", ...}).
        image_root: folder that the images' `file_name` is relative to.
        layout: keypoint layout; its ignored slots are never valid.
        path: the annotation file (for messages).
        labeled_only: skip PoseTrack images with `is_labeled` false.
    """
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise InputError(path, f"'{key}' must be a list (is this a COCO-style keypoint file?)")
    images = {}
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img or "file_name" not in img:
            raise InputError(path, "an image needs 'id' and 'file_name'", f"images[{i}]")
        if labeled_only and img.get("is_labeled") is False:
            continue
        images[img["id"]] = img
    by_image: dict[Any, list[tuple[int, np.ndarray, np.ndarray]]] = defaultdict(list)
    used = layout.used_mask
    for i, ann in enumerate(data["annotations"]):
        record = f"annotations[{i}] (image_id {ann.get('image_id')}, id {ann.get('id')})"
        if ann.get("category_id", 1) != 1 or ann.get("iscrowd", 0):
            continue
        img = images.get(ann.get("image_id"))
        if img is None:
            continue
        kps = _keypoint_array(path, ann, record)
        valid = (kps[:, 2] > 0) & used
        if ann.get("num_keypoints", int(valid.sum())) <= 0 or not valid.any():
            continue
        box = ann.get("bbox")
        if box is None or len(box) != 4:
            box = box_from_keypoints(kps[None, :, :2], valid[None], extent=1.0)[0]
        width, height = img.get("width"), img.get("height")
        if width is None or height is None:
            raise InputError(
                path,
                "the image has no width/height (run scripts/prepare_posetrack.py to fill them)",
                f"images id {img['id']}",
            )
        clipped = clip_box(box, width, height)
        if clipped is None:
            continue
        by_image[img["id"]].append((int(ann.get("id", i)), clipped, kps))

    entries = []
    root = Path(image_root)
    for image_id, persons in by_image.items():
        boxes = np.stack([p[1] for p in persons])
        kps = np.stack([p[2] for p in persons])
        valid = (kps[..., 2] > 0) & used
        iou = box_iou(boxes, boxes)
        for k, (ann_id, box, _) in enumerate(persons):
            near_idx = np.flatnonzero((iou[k] >= NEAR_IOU) & (np.arange(len(persons)) != k))
            entries.append(
                PersonEntry(
                    image_path=str(root / images[image_id]["file_name"]),
                    image_id=int(image_id),
                    ann_id=ann_id,
                    box=box,
                    keypoints=kps[k, :, :2].copy(),
                    valid=valid[k].copy(),
                    near=kps[near_idx, :, :2].copy(),
                    near_valid=valid[near_idx].copy(),
                )  # fmt: skip
            )
    return entries


def load_json(path: str | os.PathLike) -> Any:
    """Parses a JSON file; a missing or malformed file is an InputError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except json.JSONDecodeError as e:
        raise InputError(path, f"not valid JSON ({e.msg} at line {e.lineno})") from None


def attach_estimates(entries: list[PersonEntry], results_path: str | os.PathLike) -> int:
    """Gives each person the joints of the best-overlapping result of another estimator (in place).

    The file is any COCO keypoint results list ({image_id, keypoints (51), bbox optional, score}); results are
    matched to ground-truth persons of the same image by maximum box IoU (the result's bbox, else its keypoint
    extent), IoU > 0 required. Joints at (0, 0) or with a non-finite value are absent.

    Returns:
        Number of persons that received an estimate.
    """
    results = load_json(results_path)
    if not isinstance(results, list):
        raise InputError(results_path, "expected a list of COCO keypoint results")
    by_image: dict[int, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for i, res in enumerate(results):
        record = f"[{i}] (image_id {res.get('image_id') if isinstance(res, dict) else None})"
        if not isinstance(res, dict) or "image_id" not in res or "keypoints" not in res:
            raise InputError(results_path, "a result needs 'image_id' and 'keypoints'", record)
        kps = _keypoint_array(results_path, res, record)
        present = usable_joints(kps[None, :, :2], np.ones((1, NUM_JOINTS), dtype=bool))[0]
        box = res.get("bbox")
        if box is None or len(box) != 4:
            box = box_from_keypoints(kps[None, :, :2], present[None], extent=1.0)[0]
        by_image[int(res["image_id"])].append((np.asarray(box, dtype=np.float64), kps))
    matched = 0
    for e in entries:
        cands = by_image.get(e.image_id)
        if not cands:
            continue
        iou = box_iou(e.box[None], np.stack([c[0] for c in cands]))[0]
        best = int(np.argmax(iou))
        if iou[best] <= 0:
            continue
        kps = cands[best][1]
        e.estimated = kps[:, :2].copy()
        e.estimated_valid = usable_joints(kps[None, :, :2], np.ones((1, NUM_JOINTS), dtype=bool))[0]
        matched += 1
    log.info("%s: estimates for %d of %d training persons", results_path, matched, len(entries))
    return matched
