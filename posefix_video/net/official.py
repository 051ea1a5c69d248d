"""The official PoseFix test rules (mks0601/PoseFix_RELEASE, main/test.py + gen_batch.py + data/*/dataset.py), for
exact comparison with the authors' code: `Refiner(official_test=True)`, `refine_coco --official-test`.

Differences from our default rules (net/crop.py, docs/model.md "Test rules"):
- the crop box comes from EVERY non-ignored joint whatever its score, so a missing joint given as (0, 0) drags
  the box to the image origin; the extent x1.2 about the centre (20 px when zero), then the aspect fix and x1.25,
  with the official float32/float64 mix (the box is cast to float32, the rest runs in float64 as NumPy 1.x did);
- the crop matrix is cv2.getAffineTransform of float32-rounded points (centre -> crop centre, centre - (0, w/2)
  -> top middle), and the crop is OpenCV's fixed-point bilinear warp (net/warp.py, bit-identical);
- a joint is moved into the crop only if its score (the triplet's third value) is > 0; a score-0 joint keeps its
  IMAGE coordinates, read as crop coordinates;
- every non-ignored joint gets an input heatmap and is refined; nothing is passed through;
- map back with the box: x = x_crop / W * (x1 - x0) + x0.
The flip test (mirror W-1-x, swap the layout's pairs, average coordinates) is the same in both rule sets.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import torch

from posefix_video.keypoints import KeypointLayout
from posefix_video.net.warp import pad_frames, warp_affine_exact

EXTENT = 1.2  # data/*/dataset.py input_pose_load
ZERO_EXTENT = 20.0  # px, when xmax == xmin (or ymax == ymin)
SCALE = 1.25  # gen_batch.py


def official_boxes(keypoints: np.ndarray, layout: KeypointLayout, input_hw: tuple[int, int]) -> dict[str, np.ndarray]:
    """Crop boxes, crop matrices and map-back boxes of P persons, as the official test computes them.

    Args:
        keypoints: (P, J, 2) image px (absent joints as (0, 0), as a COCO results file gives them).
        layout: its ignored slots take no part in the box.
        input_hw: crop (H, W).

    Returns:
        dict of numpy arrays: `ok` (P,) (False for non-finite joints), `centre` (P, 2) float64, `scale` (P, 2)
        float64 box size (w, h), `matrix` (P, 2, 3) float64 image -> crop, `box` (P, 4) float64 x0, y0, x1, y1.
    """
    H, W = input_hw
    kp = np.asarray(keypoints, dtype=np.float64)
    used = kp[:, layout.used_mask]  # (P, K, 2)
    ok = np.isfinite(used).all((-1, -2))
    used = np.where(ok[:, None, None], used, 0.0)
    lo, hi = used.min(1), used.max(1)  # (P, 2)
    extent = np.where(hi > lo, hi - lo, ZERO_EXTENT)
    mid = (lo + hi) / 2.0
    lo2 = mid - extent / 2.0 * EXTENT
    hi2 = mid + extent / 2.0 * EXTENT
    xywh = np.concatenate([lo2, hi2 - lo2], axis=-1).astype(np.float32)  # generate_batch: astype(np.float32)
    x, y, w, h = (xywh[:, i].astype(np.float64) for i in range(4))
    # NumPy 1.x (the official run): float32 scalar op Python float -> float64
    centre = np.stack([x + w * 0.5, y + h * 0.5], axis=-1)
    aspect = W / H
    wider, taller = w > aspect * h, w < aspect * h
    sw = np.where(taller, h * aspect, w) * SCALE
    sh = np.where(wider, w / aspect, h) * SCALE
    # neither branch taken: np.array([float32, float32]) * 1.25 stays float32
    same = ~(wider | taller)
    sw = np.where(same, (xywh[:, 2] * np.float32(SCALE)).astype(np.float64), sw)
    sh = np.where(same, (xywh[:, 3] * np.float32(SCALE)).astype(np.float64), sh)
    scale = np.stack([sw, sh], axis=-1)
    box = np.concatenate([centre - scale * 0.5, centre + scale * 0.5], axis=-1)
    return {"ok": ok, "centre": centre, "scale": scale, "matrix": _affine(centre, sw, input_hw), "box": box}


def _affine(centre: np.ndarray, src_w: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
    """gen_batch.get_affine_transform (no rotation, no shift): three float32 point pairs -> cv2.getAffineTransform."""
    H, W = input_hw
    n = len(centre)
    src = np.zeros((n, 3, 2), dtype=np.float32)
    dst = np.zeros((n, 3, 2), dtype=np.float32)
    src[:, 0] = centre
    src[:, 1] = centre + np.stack([np.zeros(n), src_w * -0.5], axis=-1)
    dst[:, 0] = [W * 0.5, H * 0.5]
    dst[:, 1] = np.array([W * 0.5, H * 0.5]) + np.array([0, W * -0.5], np.float32)
    for pts in (src, dst):  # get_3rd_point, in float32
        direct = pts[:, 0] - pts[:, 1]
        pts[:, 2] = pts[:, 1] + np.stack([-direct[:, 1], direct[:, 0]], axis=-1)
    # cv2's own LU solve: np.linalg.solve differs in the last bits (1e-12), which can flip a fixed-point rounding
    # of the warp; a 6x6 solve per person on the host costs microseconds
    return np.stack([cv2.getAffineTransform(s, d) for s, d in zip(src, dst)]) if n else np.zeros((0, 2, 3))


def official_crop_joints(keypoints: np.ndarray, joint_scores: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(P, J, 2) float64 input joints in crop px: moved by `matrix` where the score is > 0, else kept as given."""
    kp = np.asarray(keypoints, dtype=np.float64)
    moved = kp @ np.swapaxes(matrix[:, :, :2], -1, -2) + matrix[:, None, :, 2]
    return np.where((np.asarray(joint_scores) > 0)[..., None], moved, kp)


def refine_official(
    predict_crops: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    per_step: int,
    frames: torch.Tensor | np.ndarray,
    frame_index: np.ndarray,
    keypoints: np.ndarray,
    joint_scores: np.ndarray,
    layout: KeypointLayout,
    input_hw: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs P persons under the official rules.

    Args:
        predict_crops: Refiner.predict_crops (network input, flip test, soft-argmax).
        device: where crops are cut.
        per_step: persons per forward pass.
        frames: (F, H, W, 3) uint8 RGB.
        frame_index: (P,) int into frames.
        keypoints: (P, J, 2) image px, absent joints as (0, 0).
        joint_scores: (P, J) the input triplets' third values (> 0: the joint is moved into the crop).
        layout: ignored slots get no heatmap and are not refined.
        input_hw: crop (H, W).

    Returns:
        keypoints (P, J, 2) float64 image px (NaN where not ok), confidence (P, J) float32, ok (P,) bool.
    """
    P, J = keypoints.shape[:2]
    boxes = official_boxes(keypoints, layout, input_hw)
    ok = np.flatnonzero(boxes["ok"])
    out = np.full((P, J, 2), np.nan)
    conf_out = np.zeros((P, J), dtype=np.float32)
    if not len(ok):
        return out, conf_out, boxes["ok"]
    used, local = np.unique(frame_index[ok], return_inverse=True)
    frames = torch.as_tensor(frames)
    padded = pad_frames(frames[torch.as_tensor(used, device=frames.device)].to(device))
    M = torch.as_tensor(boxes["matrix"][ok], device=device)
    kp_crop = torch.as_tensor(official_crop_joints(keypoints[ok], joint_scores[ok], boxes["matrix"][ok]),
                              device=device)
    valid = torch.as_tensor(np.broadcast_to(layout.used_mask, (len(ok), J)).copy(), device=device)
    local = torch.as_tensor(local, device=device)
    coords_all, conf_all = [], []
    for s in range(0, len(ok), per_step):  # batches of crops, not crops
        sl = slice(s, s + per_step)
        crops = warp_affine_exact(padded, local[sl], M[sl], input_hw)  # (b, 3, H, W) uint8
        coords, conf = predict_crops(crops, kp_crop[sl].float(), valid[sl])
        coords_all.append(coords)
        conf_all.append(conf)
    coords = torch.cat(coords_all).cpu().numpy().astype(np.float64)  # (N, J, 2) crop px
    box = boxes["box"][ok]
    H, W = input_hw
    out[ok, :, 0] = coords[..., 0] / W * (box[:, 2:3] - box[:, 0:1]) + box[:, 0:1]
    out[ok, :, 1] = coords[..., 1] / H * (box[:, 3:4] - box[:, 1:2]) + box[:, 1:2]
    conf_out[ok] = torch.cat(conf_all).float().cpu().numpy()
    return out, conf_out, boxes["ok"]
