"""The two SimpleBaseline conventions: box -> crop, heatmaps -> keypoints, flip test (numpy boxes, torch heatmaps).

Microsoft's human-pose-estimation.pytorch ("msra") and mmpose 1.x ("mmpose") agree on the recipe -- aspect 0.75,
x1.25 padding, a cv2 bilinear crop whose centre is the box centre, argmax + quarter-cell shift toward the higher
neighbour, flip test with flipped-back, pair-swapped heatmaps shifted right one column -- and differ in details
that this module reproduces to the float32 rounding (simplebaseline_reference/README.md has the table):

                      msra                                         mmpose
    box -> crop       centre x + w/2; aspect fix; x1.25; /200      x2 = x + w; centre (x1+x2)/2; x1.25; aspect fix
                      (pixel_std), float32                         float32
    crop matrix       3 float32 points along (0, -w/2)             3 float32 points along (-w/2, 0)
    max <= 0          joint at heatmap (0, 0), maxval kept          joint at heatmap (-1, -1), score kept
    quarter shift     x and y only if 1 < x < W-1 and 1 < y < H-1  x if 1 < x < W-1 and 0 < y < H; y if
                                                                   1 < y < H-1 and 0 < x < W
    back to the frame inverse float32-point affine                 kp * 4 / input * s + c - s/2

Both crop matrices are the one a cv2.getAffineTransform of those float32 points gives (solved in float64 here).
"""

from __future__ import annotations

import numpy as np
import torch

CONVENTIONS = ("msra", "mmpose")
PIXEL_STD = 200.0  # Microsoft's box scale unit
PADDING = 1.25


def _f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def box_center_scale(
    boxes_xywh: np.ndarray, convention: str, input_hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Crop centres and sizes (px, w/h = input aspect, padded x1.25) of (P, 4) [x, y, w, h] boxes.

    Returns:
        centre (P, 2) float32, size (P, 2) float32 in pixels (msra: its scale x 200, as get_affine_transform uses).
    """
    boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    H, W = input_hw
    aspect = W * 1.0 / H
    if convention == "msra":
        x, y, w, h = boxes.T
        centre = _f32(np.stack([x + w * 0.5, y + h * 0.5], -1))  # float64 sums stored as float32
        h2 = np.where(w > aspect * h, w * 1.0 / aspect, h)
        w2 = np.where(w < aspect * h, h * aspect, w)
        scale = _f32(np.stack([w2 / PIXEL_STD, h2 / PIXEL_STD], -1)) * np.float32(PADDING)
        return centre, scale * np.float32(PIXEL_STD)
    if convention == "mmpose":
        b = _f32(boxes)
        x1, y1 = b[:, 0], b[:, 1]
        x2, y2 = x1 + b[:, 2], y1 + b[:, 3]  # float32, as bbox_xywh2xyxy
        centre = np.stack([x1 + x2, y1 + y2], -1) * np.float32(0.5)
        scale = np.stack([x2 - x1, y2 - y1], -1) * np.float32(PADDING)
        w, h = scale[:, :1], scale[:, 1:]
        a = np.float32(aspect)
        size = np.where(w > h * a, np.hstack([w, w / a]), np.hstack([h * a, h]))
        return centre, size.astype(np.float32)
    raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = a - b  # float32
    return b + np.stack([-d[:, 1], d[:, 0]], -1)


def _points(centre: np.ndarray, size: np.ndarray, convention: str, out_wh: tuple[int, int]):
    """The three float32 point pairs (frame, crop) each reference hands to cv2.getAffineTransform."""
    centre, size = _f32(centre), _f32(size)
    n = len(centre)
    dst_w, dst_h = out_wh
    half = size[:, 0].astype(np.float64) * -0.5  # src_w * -0.5, exact
    zero = np.zeros(n)
    if convention == "msra":
        src_dir, dst_dir = np.stack([zero, half], -1), np.array([0.0, dst_w * -0.5])
    else:
        src_dir, dst_dir = np.stack([half, zero], -1), np.array([dst_w * -0.5, 0.0])
    src0 = centre
    src1 = _f32(centre.astype(np.float64) + src_dir)  # float64 sum stored in a float32 array
    src = np.stack([src0, src1, _third_point(src0, src1)], 1)  # (P, 3, 2) float32
    d0 = _f32(np.broadcast_to([dst_w * 0.5, dst_h * 0.5], (n, 2)))
    d1 = _f32(d0.astype(np.float64) + dst_dir)
    dst = np.stack([d0, d1, _third_point(d0, d1)], 1)
    return src, dst


def _affine_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(P, 2, 3) float64 affines mapping src -> dst (3 points each), as cv2.getAffineTransform (float64 solve)."""
    A = np.concatenate([src.astype(np.float64), np.ones(src.shape[:2] + (1,))], -1)  # (P, 3, 3)
    sol = np.linalg.solve(A, dst.astype(np.float64))  # (P, 3, 2): columns = the two rows of the affine
    return np.swapaxes(sol, -1, -2)


def crop_matrices(centre: np.ndarray, size: np.ndarray, convention: str, input_hw: tuple[int, int]) -> np.ndarray:
    """(P, 2, 3) frame -> crop affines as the reference builds them (for net/warp.py)."""
    src, dst = _points(centre, size, convention, (input_hw[1], input_hw[0]))
    return _affine_from_points(src, dst)


def heatmap_to_frame(
    coords: np.ndarray, centre: np.ndarray, size: np.ndarray, convention: str, input_hw: tuple[int, int],
    heatmap_hw: tuple[int, int],
) -> np.ndarray:
    """(P, J, 2) heatmap cells -> float64 frame pixels, each reference's way (cell i <-> crop pixel stride*i)."""
    coords = np.asarray(coords, dtype=np.float64)
    h, w = heatmap_hw
    if convention == "msra":  # transform_preds: the inverse affine of float32 points at heatmap size
        src, dst = _points(centre, size, convention, (w, h))
        M = _affine_from_points(dst, src)  # heatmap -> frame
        return coords @ np.swapaxes(M[:, :, :2], -1, -2) + M[:, None, :, 2]
    c = _f32(centre).astype(np.float64)[:, None]
    s = _f32(size).astype(np.float64)[:, None]
    H, W = input_hw
    stride = np.array([W / w, H / h])
    return coords * stride / np.array([W, H]) * s + c - 0.5 * s


# ---------------------------------------------------------------------------------------------------------------
# heatmaps (torch, batched)


def flip_back(heatmaps: torch.Tensor, flip_perm: torch.Tensor) -> torch.Tensor:
    """Heatmaps of a mirrored input, back in the original frame: mirrored along W, left/right slots swapped, then
    shifted right by one column with column 0 kept (both references). (B, J, h, w) -> (B, J, h, w)."""
    out = heatmaps[:, flip_perm].flip(-1)
    out[..., 1:] = out[..., :-1].clone()
    return out


def decode_argmax(heatmaps: torch.Tensor, convention: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer argmax + quarter-cell shift toward the higher neighbour, with the convention's border and max <= 0
    rules. Ties go to the first maximum in row-major order (np.argmax and torch.argmax agree).

    Args:
        heatmaps: (B, J, h, w) float32.
        convention: "msra" or "mmpose".

    Returns:
        coords (B, J, 2) float32 heatmap cells; maxvals (B, J) float32 (value at the integer argmax, before the
        shift, kept when <= 0).
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    B, J, h, w = heatmaps.shape
    hm = heatmaps.float()
    flat = hm.reshape(B, J, h * w)
    maxvals, idx = flat.max(dim=-1)  # first maximum on ties
    x = idx % w
    y = torch.div(idx, w, rounding_mode="floor")
    found = maxvals > 0
    if convention == "msra":
        x, y = torch.where(found, x, 0), torch.where(found, y, 0)
        ok = (x > 1) & (x < w - 1) & (y > 1) & (y < h - 1)
        ok_x = ok_y = ok
    else:
        x, y = torch.where(found, x, -1), torch.where(found, y, -1)
        ok_x = (x > 1) & (x < w - 1) & (y > 0) & (y < h)
        ok_y = (y > 1) & (y < h - 1) & (x > 0) & (x < w)

    def at(xx: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
        i = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1))[..., None]
        return flat.gather(-1, i)[..., 0]

    dx = torch.where(ok_x, at(x + 1, y) - at(x - 1, y), torch.zeros_like(maxvals))
    dy = torch.where(ok_y, at(x, y + 1) - at(x, y - 1), torch.zeros_like(maxvals))
    coords = torch.stack([x.float() + torch.sign(dx) * 0.25, y.float() + torch.sign(dy) * 0.25], dim=-1)
    return coords, maxvals
