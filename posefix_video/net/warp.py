"""Person crops bit-identical to OpenCV's fixed-point `cv2.warpAffine(..., INTER_LINEAR)` on uint8, batched.

`net/crop.py` samples at exact float positions (one grid_sample; at most 1 grey level from cv2). The top-down
references (Microsoft's and mmpose's SimpleBaseline pipelines) crop with OpenCV <= 4.10's fixed-point path, and a
re-implementation that must reproduce their keypoints within 0.05 px needs their crop to the bit (a float crop moves
near-tie argmaxes by tens of pixels: simplebaseline_reference/README.md, row 13). That path, which this module
reproduces in integer arithmetic:

- the frame -> crop matrix is inverted in float64 (crop -> frame: A);
- each crop pixel (x, y) gets the frame position in 1/1024 px: X = round(A00*x*1024) + round((A01*y + A02)*1024)
  + 16 (round = half to even), then >> 5 gives 1/32 px: integer part >> 5, fraction & 31 (same for Y);
- bilinear weights are the exact integers (32-fx)(32-fy), fx(32-fy), (32-fx)fy, fx*fy (sum 1024), pixels outside
  the frame read 0 (BORDER_CONSTANT), and the result is (sum + 512) >> 10. (cv2's table holds these x32 in 15 bits,
  the (0, 0) entry as 32767 + 1 on the far tap; both give the same uint8.)

All persons of a batch are cut with four gathers from the zero-padded frames (no per-crop loop).
"""

from __future__ import annotations

import torch

_AB_SCALE = 1024  # cv2 AB_BITS = 10
_ROUND_DELTA = 16  # AB_SCALE / INTER_TAB_SIZE / 2
_TAB = 32  # INTER_TAB_SIZE: positions quantised to 1/32 px


def invert_like_cv2(matrices: torch.Tensor) -> torch.Tensor:
    """(P, 2, 3) float64 frame -> crop affines to crop -> frame, with cv2.warpAffine's own float64 formula."""
    m = matrices.double()
    a, b, c = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2]
    d, e, f = m[:, 1, 0], m[:, 1, 1], m[:, 1, 2]
    det = a * e - b * d
    inv_det = torch.where(det != 0, 1.0 / det, torch.zeros_like(det))
    a2, e2 = e * inv_det, a * inv_det
    b2, d2 = -b * inv_det, -d * inv_det
    c2 = -a2 * c - b2 * f
    f2 = -d2 * c - e2 * f
    return torch.stack([torch.stack([a2, b2, c2], -1), torch.stack([d2, e2, f2], -1)], 1)


_PAD = 2  # zero margin around each frame: both taps of a sample left/above/right/below the frame read zeros


def pad_frames(frames: torch.Tensor) -> torch.Tensor:
    """(F, H, W, 3) uint8 -> (F, H+4, W+4, 3) with a two-pixel zero border (the BORDER_CONSTANT value)."""
    p = _PAD
    return torch.nn.functional.pad(frames.permute(0, 3, 1, 2), (p, p, p, p)).permute(0, 2, 3, 1).contiguous()


def warp_affine_exact(
    padded: torch.Tensor, frame_index: torch.Tensor, matrices: torch.Tensor, out_hw: tuple[int, int]
) -> torch.Tensor:
    """Crops as cv2.warpAffine(frame, M, (W, H), flags=INTER_LINEAR) gives them (OpenCV's fixed-point path).

    Args:
        padded: (F, Hf+4, Wf+4, 3) uint8 frames from `pad_frames`, on the device.
        frame_index: (P,) int64 into the frames.
        matrices: (P, 2, 3) float64 frame -> crop affines (what would be passed to cv2).
        out_hw: crop (H, W).

    Returns:
        (P, 3, H, W) uint8 crops on the frames' device (channels in the frames' order).
    """
    device = padded.device
    H, W = out_hw
    P = matrices.shape[0]
    if P == 0:
        return torch.zeros(0, 3, H, W, dtype=torch.uint8, device=device)
    inv = invert_like_cv2(matrices.to(device))  # (P, 2, 3) crop -> frame
    xs = torch.arange(W, device=device, dtype=torch.float64)
    ys = torch.arange(H, device=device, dtype=torch.float64)
    # per column (adelta/bdelta) and per row (X0/Y0), each rounded on its own as cv2 does, in 1/1024 px; bounded to
    # +-2^30 (1e6 px, far outside any frame) so that their sums fit int32
    lim = 2**30

    def fixed(v: torch.Tensor) -> torch.Tensor:
        return torch.round(v * _AB_SCALE).clamp_(-lim, lim).int()

    adelta = fixed(inv[:, 0, 0, None] * xs)  # (P, W)
    bdelta = fixed(inv[:, 1, 0, None] * xs)
    x0 = fixed(inv[:, 0, 1, None] * ys + inv[:, 0, 2, None]) + _ROUND_DELTA  # (P, H)
    y0 = fixed(inv[:, 1, 1, None] * ys + inv[:, 1, 2, None]) + _ROUND_DELTA
    X = (x0[:, :, None] + adelta[:, None, :]) >> 5  # (P, H, W) in 1/32 px
    Y = (y0[:, :, None] + bdelta[:, None, :]) >> 5

    _, Hp, Wp, _ = padded.shape
    fh, fw = Hp - 2 * _PAD, Wp - 2 * _PAD
    # top-left tap, clamped into the zero margin: taps (x0, x0+1) outside the frame both read zero there
    sx = (X >> 5).clamp_(-_PAD, fw) + _PAD
    sy = (Y >> 5).clamp_(-_PAD, fh) + _PAD
    base = (frame_index.to(device).int() * (Hp * Wp))[:, None, None]
    i00 = (sy * Wp + sx + base).view(-1).long()
    flat = padded.view(-1, 3)
    wx1 = (X & (_TAB - 1)).view(-1, 1)
    wy1 = (Y & (_TAB - 1)).view(-1, 1)
    wx0, wy0 = _TAB - wx1, _TAB - wy1
    total = flat[i00].int() * (wx0 * wy0)
    total += flat[i00 + 1].int() * (wx1 * wy0)
    total += flat[i00 + Wp].int() * (wx0 * wy1)
    total += flat[i00 + (Wp + 1)].int() * (wx1 * wy1)
    out = (total + 512) >> 10  # (P*H*W, 3), 0..255
    return out.to(torch.uint8).view(P, H, W, 3).permute(0, 3, 1, 2).contiguous()
