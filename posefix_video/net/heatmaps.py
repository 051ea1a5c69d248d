"""The heatmap codec, used by training and inference alike (torch, batched, on any device).

Frames of reference:
    crop pixels: x right, y down, integer = pixel centre of the (H, W) network crop.
    heatmap cells: the (h, w) = (H/stride, W/stride) output maps; cell i <-> crop pixel stride*i (stride 4), the
        reference's soft-argmax convention (no half-pixel shift).

Network input normalisation (applied here, once, as the model's input contract says: net/contract.py). Our own
contract: the RGB crop is divided by 255 and normalised with the ImageNet mean/std (what torchvision ImageNet
weights expect), and each input-pose heatmap is an unnormalised Gaussian with peak 1.0. The reference feeds BGR
pixels minus RGB means next to 255-peak heatmaps, i.e. both on one 0..255 scale; we keep "both on one scale" in
the normalised units: the image channels have unit standard deviation, and a peak-1 Gaussian has the same order of
magnitude, so the randomly initialised heatmap filters of conv1 start on the same footing as the pretrained RGB
filters. The authors' imported models keep their own contract (BGR minus RGB-ordered means, no std, peak 255).
"""

from __future__ import annotations

import torch

from posefix_video.keypoints import get_layout
from posefix_video.net.contract import OURS_HEATMAP_PEAK, OURS_MEAN, OURS_STD, InputContract

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HEATMAP_PEAK = OURS_HEATMAP_PEAK
# radius (heatmap cells) of the disc whose softmax mass is the per-joint confidence (2 cells = 8 crop px)
CONFIDENCE_RADIUS = 2.0


def render_gaussians(
    coords: torch.Tensor, valid: torch.Tensor, height: int, width: int, sigma: float
) -> torch.Tensor:
    """Unnormalised Gaussians (peak 1) at `coords`, zero maps for invalid joints.

    Args:
        coords: (B, J, 2) x/y in pixels of the (height, width) grid; NaN/inf allowed where not valid.
        valid: (B, J) bool.
        height, width: grid size.
        sigma: standard deviation in pixels.

    Returns:
        (B, J, height, width) float32 on coords' device.
    """
    valid = valid.to(torch.bool)
    coords = torch.where(valid[..., None], coords.float(), torch.zeros((), device=coords.device))
    xs = torch.arange(width, device=coords.device, dtype=torch.float32)
    ys = torch.arange(height, device=coords.device, dtype=torch.float32)
    # separable: exp(-(dx^2 + dy^2) / 2s^2) = exp(-dx^2 / 2s^2) * exp(-dy^2 / 2s^2)
    gx = torch.exp(-((xs - coords[..., 0:1]) ** 2) / (2 * sigma**2))  # (B, J, W)
    gy = torch.exp(-((ys - coords[..., 1:2]) ** 2) / (2 * sigma**2))  # (B, J, H)
    gy = gy * valid[..., None].to(gy.dtype)
    return gy[..., :, None] * gx[..., None, :]  # (B, J, H, W)


def make_network_input(
    crops: torch.Tensor,
    keypoints_crop: torch.Tensor,
    valid: torch.Tensor,
    sigma: float | None = None,
    ignored: tuple[int, ...] | None = None,
    *,
    contract: InputContract | None = None,
) -> torch.Tensor:
    """The network input: normalised crop + input-pose heatmaps at full crop resolution, as the model's input
    contract says (the one place a contract is applied: refiner, trainer and exports all build inputs here).

    Args:
        crops: (B, 3, H, W) RGB, uint8 (or float holding 0..255 values).
        keypoints_crop: (B, J, 2) input pose, x/y in crop pixels.
        valid: (B, J) bool; invalid joints (and the `ignored` slots) get an all-zero heatmap.
        sigma: Gaussian sigma in crop pixels, used without a contract (ModelConfig.input_sigma: 7 at 256x192, 9
            at 384x288); with a contract it must be None or equal contract.sigma.
        ignored: slots never labeled in the layout (PoseTrack18 ears), always zeroed; None means the contract
            layout's (none without a contract).
        contract: channel order, mean/std, heatmap peak and sigma; None means our own normalisation (RGB,
            ImageNet mean/std, peak 1) with `sigma`.

    Returns:
        (B, 3+J, H, W) float32 on crops' device: [image channels in the contract's order, J heatmaps].
    """
    if contract is None:
        if sigma is None:
            raise ValueError("make_network_input needs a sigma or a contract")
        order, mean, std, peak = "RGB", OURS_MEAN, OURS_STD, OURS_HEATMAP_PEAK
        ignored = () if ignored is None else ignored
    else:
        if sigma is not None and float(sigma) != contract.sigma:
            raise ValueError(f"sigma {sigma} differs from the contract's {contract.sigma}")
        order, mean, std, peak, sigma = (contract.channel_order, contract.mean, contract.std,
                                         contract.heatmap_peak, contract.sigma)
        ignored = get_layout(contract.layout).ignored if ignored is None else ignored
    B, _, H, W = crops.shape
    if order == "BGR":
        crops = crops.flip(1)  # frames are RGB everywhere; a channel permutation, exact
    mean_t = torch.tensor(mean, device=crops.device, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=crops.device, dtype=torch.float32).view(1, 3, 1, 1)
    image = crops.float() - mean_t  # (B, 3, H, W)
    if std != (1.0, 1.0, 1.0):
        image = image / std_t
    valid = valid.to(device=crops.device, dtype=torch.bool)
    if ignored:
        valid = valid.clone()
        valid[:, list(ignored)] = False
    heat = render_gaussians(keypoints_crop.to(crops.device), valid, H, W, sigma)  # (B, J, H, W)
    if peak != 1.0:
        heat = heat * peak
    return torch.cat([image, heat], dim=1)


def flip_average(coords: torch.Tensor, conf: torch.Tensor, flip_perm: torch.Tensor,
                 width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The flip test's average: (2B, J, 2) crop px and (2B, J) confidences of [crops; mirrored crops] -> (B, J, 2)
    and (B, J). The mirrored pass is un-swapped (left/right slots) and un-mirrored (u -> W-1-u) first; coordinates
    are averaged, not heatmaps, as the reference does."""
    B = coords.shape[0] // 2
    back = coords[B:][:, flip_perm].clone()
    back[..., 0] = (width - 1) - back[..., 0]
    return (coords[:B] + back) / 2, (conf[:B] + conf[B:][:, flip_perm]) / 2


def soft_argmax(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Expected cell position under each map's softmax.

    Args:
        logits: (B, J, h, w), any float dtype (computed in float32).

    Returns:
        coords: (B, J, 2) float32 x/y in heatmap cells.
        probs: (B, J, h, w) float32 softmax over each map.
    """
    B, J, h, w = logits.shape
    probs = torch.softmax(logits.float().reshape(B, J, h * w), dim=-1).reshape(B, J, h, w)
    xs = torch.arange(w, device=logits.device, dtype=torch.float32)
    ys = torch.arange(h, device=logits.device, dtype=torch.float32)
    x = (probs.sum(dim=2) * xs).sum(-1)  # marginal over rows, then E[x]
    y = (probs.sum(dim=3) * ys).sum(-1)
    return torch.stack([x, y], dim=-1), probs


def cells_to_crop(coords_cells: torch.Tensor, stride: int = 4) -> torch.Tensor:
    """Heatmap cells -> crop pixels (cell i <-> pixel stride*i)."""
    return coords_cells * stride


def crop_to_cells(coords_crop: torch.Tensor, stride: int = 4) -> torch.Tensor:
    """Crop pixels -> heatmap cells (pixel x <-> cell x/stride)."""
    return coords_crop / stride


def mass_confidence(probs: torch.Tensor, coords_cells: torch.Tensor, radius: float = CONFIDENCE_RADIUS) -> torch.Tensor:
    """Per-joint confidence: the softmax mass within `radius` cells of the soft-argmax point.

    A peaked, unimodal map gives ~1; a flat or multi-modal map (the soft-argmax then lies between modes) gives a
    small value, so this measures what the soft-argmax coordinate is worth, unlike the raw peak value (~0.2 even
    for clear joints, reference issue #50).

    Args:
        probs: (B, J, h, w) softmax maps.
        coords_cells: (B, J, 2) soft-argmax positions in cells.

    Returns:
        (B, J) float32 in [0, 1].
    """
    B, J, h, w = probs.shape
    xs = torch.arange(w, device=probs.device, dtype=torch.float32)
    ys = torch.arange(h, device=probs.device, dtype=torch.float32)
    dx2 = (xs - coords_cells[..., 0:1]) ** 2  # (B, J, w)
    dy2 = (ys - coords_cells[..., 1:2]) ** 2  # (B, J, h)
    inside = (dy2[..., :, None] + dx2[..., None, :]) <= radius**2  # (B, J, h, w)
    return (probs * inside).sum(dim=(-2, -1))


def bilinear_target(coords_cells: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """One-hot bilinear targets: each joint's unit mass split over the 4 cells around its position.

    Border handling: positions are clamped into [0, w-1] x [0, h-1] (a joint outside the map puts its mass on the
    nearest border cell; the loss should mask joints outside the crop anyway), and the top-left cell index is
    clipped to w-2 / h-2 so that a position on the last row/column puts weight 1 on that cell. Every map therefore
    sums to exactly 1: no mass is dropped at the right/bottom border (the reference's issue #8).

    Args:
        coords_cells: (B, J, 2) x/y in heatmap cells (crop pixels / stride). Must be finite.
        h, w: heatmap size, both >= 2.

    Returns:
        (B, J, h*w) float32, rows summing to 1 (row-major cell index y*w + x).
    """
    if h < 2 or w < 2:
        raise ValueError(f"heatmap must be at least 2x2, got {h}x{w}")
    B, J, _ = coords_cells.shape
    x = coords_cells[..., 0].float().clamp(0, w - 1)
    y = coords_cells[..., 1].float().clamp(0, h - 1)
    x0 = x.floor().clamp(max=w - 2)
    y0 = y.floor().clamp(max=h - 2)
    fx, fy = x - x0, y - y0  # in [0, 1]
    x0, y0 = x0.long(), y0.long()
    index = torch.stack([y0 * w + x0, y0 * w + x0 + 1, (y0 + 1) * w + x0, (y0 + 1) * w + x0 + 1], dim=-1)
    weight = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], dim=-1)  # (B, J, 4)
    target = torch.zeros(B, J, h * w, device=coords_cells.device, dtype=torch.float32)
    return target.scatter_add_(-1, index, weight)
