"""Crop geometry shared by training and inference (numpy, batched over persons).

Pixel convention everywhere: integer coordinates are pixel centres, in the frame and in the crop (as
cv2.warpAffine). A crop of size (H, W) around a box with centre c and size (w, h) maps the box centre to
(W/2, H/2) and scales by W/w and H/h (the box already has the crop's aspect ratio):

    u = W/2 + (x - cx) * W/w        v = H/2 + (y - cy) * H/h

which is the PoseFix/Simple-Baselines transform (x_img = x_crop / W * w + x0 at test time). Optional rotation
(degrees, counter-clockwise in the image as seen) turns the crop about the box centre.
"""

from __future__ import annotations

import numpy as np

# Box recipe of the reference (test time): keypoint extent x1.2, then aspect w/h = 0.75, then x1.25.
KEYPOINT_BOX_EXTENT = 1.2
CROP_ASPECT = 0.75
CROP_SCALE = 1.25
MIN_BOX_SIZE = 20.0  # px, used when all usable joints coincide


def usable_joints(keypoints: np.ndarray, present: np.ndarray, ignored: tuple[int, ...] = ()) -> np.ndarray:
    """(N, J) bool: joints that may define a crop: present, finite, not the (0, 0) placeholder, not ignored.

    (0, 0) is treated as "missing" because several trackers write it for joints they drop (ultralytics zeroes
    joints with confidence < 0.5; poseval's absent marker is 0,0,0); one such joint would drag the box to the
    image corner.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    finite = np.isfinite(keypoints).all(-1)
    origin = (keypoints == 0).all(-1)
    mask = np.asarray(present, dtype=bool) & finite & ~origin
    if ignored:
        mask[..., list(ignored)] = False
    return mask


def box_from_keypoints(keypoints: np.ndarray, usable: np.ndarray, extent: float = KEYPOINT_BOX_EXTENT) -> np.ndarray:
    """(N, 4) boxes [x, y, w, h] around the usable joints, enlarged by `extent` about their centre.

    Persons with no usable joint get NaN boxes (the caller passes them through). A zero extent along an axis
    becomes MIN_BOX_SIZE.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    usable = np.asarray(usable, dtype=bool)
    big = np.where(usable[..., None], keypoints, np.inf)
    small = np.where(usable[..., None], keypoints, -np.inf)
    any_usable = usable.any(axis=-1)
    lo = np.where(any_usable[..., None], big.min(axis=-2), 0.0)  # (N, 2)
    hi = np.where(any_usable[..., None], small.max(axis=-2), 0.0)
    centre = (lo + hi) / 2
    size = (hi - lo) * extent
    size = np.where(size > 0, size, MIN_BOX_SIZE)
    boxes = np.concatenate([centre - size / 2, size], axis=-1)
    boxes[~any_usable] = np.nan
    return boxes


def crop_box(
    boxes: np.ndarray, aspect: float = CROP_ASPECT, scale: float = CROP_SCALE
) -> tuple[np.ndarray, np.ndarray]:
    """Centres (N, 2) and sizes (N, 2) of crops: the shorter side of each box widened to w/h = `aspect`, then
    both sides multiplied by `scale`."""
    boxes = np.asarray(boxes, dtype=np.float64)
    centre = boxes[..., :2] + boxes[..., 2:] / 2
    w = boxes[..., 2].copy()
    h = boxes[..., 3].copy()
    wider = w > aspect * h
    h = np.where(wider, w / aspect, h)
    w = np.where(wider, w, h * aspect)
    size = np.stack([w, h], axis=-1) * scale
    return centre, size


def crop_affine(
    centre: np.ndarray,
    size: np.ndarray,
    out_hw: tuple[int, int],
    rotation_deg: np.ndarray | float = 0.0,
) -> np.ndarray:
    """(N, 2, 3) affine matrices mapping frame pixels to crop pixels.

    Args:
        centre: (N, 2) box centres in frame pixels.
        size: (N, 2) box sizes (w, h) in frame pixels, at the crop's aspect ratio.
        out_hw: crop (H, W).
        rotation_deg: (N,) or scalar rotation of the crop content, degrees counter-clockwise.
    """
    centre = np.asarray(centre, dtype=np.float64).reshape(-1, 2)
    size = np.asarray(size, dtype=np.float64).reshape(-1, 2)
    n = centre.shape[0]
    H, W = out_hw
    theta = np.deg2rad(np.broadcast_to(np.asarray(rotation_deg, dtype=np.float64), (n,)))
    sx = W / size[:, 0]
    sy = H / size[:, 1]
    cos, sin = np.cos(theta), np.sin(theta)
    # u = W/2 + sx * ( cos*(x-cx) + sin*(y-cy) ),  v = H/2 + sy * (-sin*(x-cx) + cos*(y-cy))
    # (y points down, so this turns the content counter-clockwise as seen on screen)
    M = np.empty((n, 2, 3))
    M[:, 0, 0] = sx * cos
    M[:, 0, 1] = sx * sin
    M[:, 1, 0] = -sy * sin
    M[:, 1, 1] = sy * cos
    M[:, 0, 2] = W / 2 - M[:, 0, 0] * centre[:, 0] - M[:, 0, 1] * centre[:, 1]
    M[:, 1, 2] = H / 2 - M[:, 1, 0] * centre[:, 0] - M[:, 1, 1] * centre[:, 1]
    return M


def hflip_affine(M: np.ndarray, out_w: int) -> np.ndarray:
    """Composes a horizontal mirror of the crop (u -> W - 1 - u, the reference's convention) after `M`."""
    M = np.array(M, dtype=np.float64, copy=True)
    M[..., 0, :] *= -1
    M[..., 0, 2] += out_w - 1
    return M


def invert_affine(M: np.ndarray) -> np.ndarray:
    """(N, 2, 3) inverse transforms (crop pixels -> frame pixels)."""
    M = np.asarray(M, dtype=np.float64)
    A = M[..., :2]
    t = M[..., 2:]
    A_inv = np.linalg.inv(A)
    return np.concatenate([A_inv, -A_inv @ t], axis=-1)


def apply_affine(M: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Transforms (N, K, 2) points by (N, 2, 3) matrices."""
    M = np.asarray(M, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    return points @ np.swapaxes(M[..., :2], -1, -2) + M[..., None, :, 2]


# Display rotation (phone videos): our decoders turn the coded frame by `rotation` degrees counter-clockwise
# (np.rot90 with k = rotation / 90, video/decoders.py). Pixel centres stay on integers, so a W x H coded frame maps
#   90:  (x, y) -> (y, W - 1 - x)        180: (x, y) -> (W - 1 - x, H - 1 - y)        270: (x, y) -> (H - 1 - y, x)
DISPLAY_ROTATIONS = (0, 90, 180, 270)


def display_rotation_affine(rotation: int, coded_hw: tuple[int, int]) -> np.ndarray:
    """(2, 3) affine mapping coded-frame pixels to displayed-frame pixels.

    Args:
        rotation: degrees counter-clockwise the display turns the coded frame (`VideoInfo.rotation`): 0, 90, 180
            or 270.
        coded_hw: (H, W) of the coded frame.

    The inverse (displayed -> coded) is `display_rotation_affine((360 - rotation) % 360, displayed_hw)`; both have
    entries 0 and +-1 only, so points with few fractional bits map back exactly.
    """
    if rotation not in DISPLAY_ROTATIONS:
        raise ValueError(f"display rotation must be one of {DISPLAY_ROTATIONS}, got {rotation!r}")
    H, W = coded_hw
    return {
        0: np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
        90: np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, W - 1.0]]),
        180: np.array([[-1.0, 0.0, W - 1.0], [0.0, -1.0, H - 1.0]]),
        270: np.array([[0.0, -1.0, H - 1.0], [1.0, 0.0, 0.0]]),
    }[rotation]


def rotated_size(hw: tuple[int, int], rotation: int) -> tuple[int, int]:
    """(H, W) of a frame of size `hw` after turning it by `rotation` degrees (swapped for 90 and 270)."""
    return (hw[1], hw[0]) if rotation % 180 else (hw[0], hw[1])


def rotate_points(points: np.ndarray, rotation: int, coded_hw: tuple[int, int]) -> np.ndarray:
    """(..., 2) coded-frame points -> displayed-frame points (see `display_rotation_affine`)."""
    M = display_rotation_affine(rotation, coded_hw)
    points = np.asarray(points, dtype=np.float64)
    # written out rather than a matmul: 0 * inf would turn a non-finite coordinate of the other axis into NaN
    out = np.empty(points.shape)
    for row in range(2):
        col = int(np.flatnonzero(M[row, :2])[0])
        out[..., row] = M[row, col] * points[..., col] + M[row, 2]
    return out


def rotate_boxes(boxes: np.ndarray, rotation: int, coded_hw: tuple[int, int]) -> np.ndarray:
    """(..., 4) boxes [x, y, w, h] in coded-frame pixels -> the same boxes in displayed-frame pixels."""
    boxes = np.asarray(boxes, dtype=np.float64)
    a = rotate_points(boxes[..., :2], rotation, coded_hw)
    b = rotate_points(boxes[..., :2] + boxes[..., 2:], rotation, coded_hw)
    size = boxes[..., 3:1:-1] if rotation % 180 else boxes[..., 2:]  # (h, w) when turned a quarter
    return np.concatenate([np.minimum(a, b), size], axis=-1)
