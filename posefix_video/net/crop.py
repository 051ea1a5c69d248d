"""Person crops cut on the model's device from uint8 frames, batched over persons and frames.

Boxes and affines come from `geometry` (numpy, tiny: P x 17 numbers); the pixels never leave the device. A crop is
what `cv2.warpAffine(frame, M, (W, H), flags=cv2.INTER_LINEAR)` gives with its default BORDER_CONSTANT fill 0
(the training workers' crop): bilinear, integer coordinates = pixel centres, pixels outside the frame read as 0.

How one `grid_sample` call serves many frames: the frames are stacked along the height into one image with a
zero row above and below each frame, and every sample's frame row is clamped to [-1, H] (the zero rows) before
the frame's offset is added. A sample outside its frame therefore interpolates zeros, exactly like
BORDER_CONSTANT, and never bleeds into the neighbouring frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from posefix_video import geometry
from posefix_video.keypoints import KeypointLayout

BORDER_VALUE = 0  # grey level outside the frame, as cv2.warpAffine's default BORDER_CONSTANT


@dataclass
class CropBoxes:
    """Crop boxes of P persons (numpy, frame pixels).

    Attributes:
        usable: (P, J) bool, joints that defined the box.
        ok: (P,) bool, persons that can be cropped.
        reason: (P,) why a person cannot be cropped (None when ok).
        centre: (P, 2) box centres (NaN where not ok).
        size: (P, 2) box sizes (w, h) at the crop aspect (NaN where not ok).
    """

    usable: np.ndarray
    ok: np.ndarray
    reason: list[str | None]
    centre: np.ndarray
    size: np.ndarray


def crop_boxes(
    keypoints: np.ndarray, present: np.ndarray, layout: KeypointLayout, input_hw: tuple[int, int]
) -> CropBoxes:
    """Test-time crop boxes from input keypoints: extent x1.2, aspect W/H of the crop, x1.25.

    Absent, NaN/inf, (0, 0) and ignored joints do not count (geometry.usable_joints).

    Args:
        keypoints: (P, J, 2) frame pixels.
        present: (P, J) bool.
        layout: keypoint layout (its ignored slots never define a box).
        input_hw: the network crop (H, W); its aspect sets the box aspect (0.75 for 256x192 and 384x288).
    """
    keypoints = np.asarray(keypoints, dtype=np.float64).reshape(-1, layout.num_joints, 2)
    usable = geometry.usable_joints(keypoints, present, layout.ignored)
    H, W = input_hw
    with np.errstate(invalid="ignore", over="ignore"):  # absurd coordinates overflow: caught as degenerate below
        boxes = geometry.box_from_keypoints(keypoints, usable)
        centre, size = geometry.crop_box(boxes, aspect=W / H)
        finite = np.isfinite(centre).all(-1) & np.isfinite(size).all(-1) & (size > 0).all(-1)
    has_joints = usable.any(-1)
    ok = has_joints & finite
    reason = [None if o else ("no usable joints" if not j else "degenerate crop box") for o, j in zip(ok, has_joints)]
    return CropBoxes(usable=usable, ok=ok, reason=reason, centre=centre, size=size)


def affine_torch(matrices: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Transforms (P, K, 2) points by (P, 2, 3) affine matrices (batched, on the tensors' device)."""
    return points @ matrices[..., :2].transpose(-1, -2) + matrices[..., None, :, 2]


def invert_affine_torch(matrices: torch.Tensor) -> torch.Tensor:
    """(P, 2, 3) inverse affines (crop -> frame), computed in float64."""
    m = matrices.double()
    A_inv = torch.linalg.inv(m[..., :2])
    return torch.cat([A_inv, -A_inv @ m[..., 2:]], dim=-1)


@dataclass
class FrameStack:
    """Frames stacked for batched sampling: (1, 3, F*(H+2), W) float, each frame with a zero row above and below."""

    image: torch.Tensor
    num_frames: int
    height: int
    width: int


def stack_frames(frames: torch.Tensor | np.ndarray, device: torch.device | str | None = None) -> FrameStack:
    """Moves (F, H, W, 3) uint8 RGB frames to `device` once (as uint8) and stacks them for `sample_crops`.

    The float copy costs F*H*W*3*4 bytes on the device: pass frames in windows, not a whole video.
    """
    frames = torch.as_tensor(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (F, H, W, 3), got {tuple(frames.shape)}")
    if frames.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    device = frames.device if device is None else torch.device(device)
    frames = frames.to(device, non_blocking=True)
    n, H, W, _ = frames.shape
    buf = torch.zeros(3, n, H + 2, W, device=device, dtype=torch.float32)
    buf[:, :, 1 : H + 1] = frames.permute(3, 0, 1, 2)
    return FrameStack(image=buf.view(1, 3, n * (H + 2), W), num_frames=n, height=H, width=W)


def sample_crops(
    stack: FrameStack, frame_index: torch.Tensor, matrices: torch.Tensor, out_hw: tuple[int, int]
) -> torch.Tensor:
    """Bilinear crops of many persons from a FrameStack in one grid_sample call.

    Args:
        stack: the frames (see stack_frames).
        frame_index: (P,) int, which frame each crop comes from.
        matrices: (P, 2, 3) frame -> crop affines (frame pixels to crop pixels).
        out_hw: crop (H, W).

    Returns:
        (P, 3, H, W) uint8 crops (rounded like cv2), on the stack's device.
    """
    device = stack.image.device
    H, W = out_hw
    P = matrices.shape[0]
    if P == 0:
        return torch.zeros(0, 3, H, W, dtype=torch.uint8, device=device)
    inv = invert_affine_torch(matrices.to(device))  # (P, 2, 3) crop -> frame, float64
    u = torch.arange(W, device=device, dtype=torch.float64)
    v = torch.arange(H, device=device, dtype=torch.float64)
    # frame position of every crop pixel centre: (P, H, W)
    x = inv[:, 0, 0, None, None] * u + inv[:, 0, 1, None, None] * v[:, None] + inv[:, 0, 2, None, None]
    y = inv[:, 1, 0, None, None] * u + inv[:, 1, 1, None, None] * v[:, None] + inv[:, 1, 2, None, None]
    fh = stack.height
    # rows beyond [-1, H] are all zero in the padded frame: clamp there so no sample reaches the next frame
    y = y.clamp(-1, fh) + (frame_index.to(device).double() * (fh + 2) + 1)[:, None, None]
    x = x.clamp(-2, stack.width + 1)
    total_h = stack.num_frames * (fh + 2)
    grid = torch.stack([x * (2 / (stack.width - 1)) - 1, y * (2 / (total_h - 1)) - 1], dim=-1).float()
    out = F.grid_sample(
        stack.image, grid.view(1, P * H, W, 2), mode="bilinear", padding_mode="zeros", align_corners=True
    )  # (1, 3, P*H, W)
    out = out.view(3, P, H, W).permute(1, 0, 2, 3)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def crop_frames(
    frames: torch.Tensor | np.ndarray,
    frame_index: torch.Tensor | np.ndarray,
    matrices: torch.Tensor | np.ndarray,
    out_hw: tuple[int, int],
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Cuts (P, 3, H, W) uint8 crops from (F, Hf, Wf, 3) uint8 frames; the batched twin of cv2.warpAffine.

    Args:
        frames: (F, Hf, Wf, 3) uint8 RGB.
        frame_index: (P,) int into frames.
        matrices: (P, 2, 3) frame -> crop affines (geometry.crop_affine).
        out_hw: crop (H, W).
        device: where to cut (default: the frames' device).
    """
    stack = stack_frames(frames, device)
    matrices = torch.as_tensor(np.asarray(matrices) if not torch.is_tensor(matrices) else matrices)
    return sample_crops(stack, torch.as_tensor(frame_index), matrices.double(), out_hw)
