"""Training losses: PoseFix's (heatmap cross-entropy against a bilinear one-hot target plus L1 on soft-argmax
coordinates) and Simple Baselines' (MSE against Gaussian target heatmaps) for top-down estimators.

Conventions (docs/architecture.md): output maps are (h, w) = (H/4, W/4) of the crop; cell i <-> crop pixel 4*i; the
soft-argmax is the expectation of the integer cell indices under the softmax over all h*w cells of a joint.

Both terms are masked by ground-truth validity and averaged over batch x joints (L1: batch x joints x 2), with the
invalid joints counted in the denominator as the reference does: a batch with few labeled joints gives a smaller
loss, not a noisier one. Weights 1:1. Weight decay is a separate term (`conv_l2_penalty`) so that the engine can
log it on its own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from posefix_video.net.heatmaps import bilinear_target, render_gaussians, soft_argmax

LOSS_KINDS = ("posefix", "heatmap_mse")


class PoseFixLoss(nn.Module):
    """L_H (softmax cross-entropy vs. the bilinear one-hot target) + L_C (L1 of soft-argmax in cells), masked.

    Args:
        joint_mask: (J,) bool, False for slots the layout never labels (PoseTrack ears); those joints are masked in
            both terms whatever the dataset says. None: all slots used.
        heatmap_weight, coord_weight: weights of the two terms (1 and 1 in the paper).
    """

    def __init__(self, *, joint_mask: torch.Tensor | None = None, heatmap_weight: float = 1.0,
                 coord_weight: float = 1.0):
        super().__init__()
        self.register_buffer("joint_mask", None if joint_mask is None else joint_mask.float(), persistent=False)
        self.heatmap_weight = heatmap_weight
        self.coord_weight = coord_weight

    def forward(self, logits: torch.Tensor, target_cells: torch.Tensor,
                target_valid: torch.Tensor) -> dict[str, torch.Tensor]:
        """Computes the loss terms.

        Args:
            logits: (B, J, h, w) network output (any float dtype; computed in float32).
            target_cells: (B, J, 2) ground-truth (x, y) in heatmap cells (crop px / 4).
            target_valid: (B, J) bool or float ground-truth validity.

        Returns:
            {"loss": weighted sum, "heatmap": L_H, "coord": L_C, "pred_cells": (B, J, 2) soft-argmax (detached)}.
        """
        b, j, h, w = logits.shape
        logp = F.log_softmax(logits.float().reshape(b, j, h * w), dim=-1)
        valid = target_valid.float()
        if self.joint_mask is not None:
            valid = valid * self.joint_mask
        # invalid joints may carry NaN/garbage coordinates: zero them so that 0 * NaN cannot poison the mean
        target_cells = torch.where(valid[..., None] > 0, target_cells.float(), torch.zeros((), device=logits.device))
        # bilinear_target clamps points onto the map, so border joints never index past it (reference issue #8)
        target = bilinear_target(target_cells, h, w)
        heatmap = (-(target * logp).sum(-1) * valid).mean()
        pred, _ = soft_argmax(logits)  # the inference decoder, so training optimises what the Refiner outputs
        coord = ((pred - target_cells).abs() * valid[..., None]).mean()

        loss = self.heatmap_weight * heatmap + self.coord_weight * coord
        return {"loss": loss, "heatmap": heatmap, "coord": coord, "pred_cells": pred.detach()}


class HeatmapMSELoss(nn.Module):
    """Simple Baselines' loss: MSE between the output maps and Gaussian target heatmaps, weighted per joint.

    Targets are unnormalised Gaussians (peak 1, `target_sigma` cells) centred on the true point on the output
    grid. The reference rounds the centre to the nearest cell; we keep the sub-cell position (`render_gaussians`),
    so the argmax + quarter-cell decoder is not biased by the rounding on small grids. The loss is
    0.5 * mean over (B, J, h, w) of (w_j * (pred - target))^2 with w_j the joint's validity (the reference's
    `JointsMSELoss(use_target_weight=True)`: visible-or-occluded labels weigh 1, unlabeled 0).

    Args:
        joint_mask: (J,) bool, False for slots the layout never labels; None: all slots used.
        target_sigma: Gaussian sigma in output cells (2 in Simple Baselines at 64x48 and 96x72).
    """

    def __init__(self, *, joint_mask: torch.Tensor | None = None, target_sigma: float = 2.0):
        super().__init__()
        self.register_buffer("joint_mask", None if joint_mask is None else joint_mask.float(), persistent=False)
        self.target_sigma = float(target_sigma)

    def forward(self, heatmaps: torch.Tensor, target_cells: torch.Tensor,
                target_valid: torch.Tensor) -> dict[str, torch.Tensor]:
        """Computes the loss.

        Args:
            heatmaps: (B, J, h, w) network output (any float dtype; computed in float32).
            target_cells: (B, J, 2) ground-truth (x, y) in heatmap cells; NaN allowed where not valid.
            target_valid: (B, J) bool or float validity (the joint weight).

        Returns:
            {"loss": the weighted MSE, "heatmap": the same value (logged under the PoseFix loss's name)}.
        """
        b, j, h, w = heatmaps.shape
        valid = target_valid.float()
        if self.joint_mask is not None:
            valid = valid * self.joint_mask
        target = render_gaussians(target_cells, valid > 0, h, w, self.target_sigma)  # (B, J, h, w), 0 if invalid
        diff = (heatmaps.float() - target) * valid[..., None, None]
        loss = 0.5 * diff.pow(2).mean()
        return {"loss": loss, "heatmap": loss.detach()}


def build_criterion(kind: str, *, joint_mask: torch.Tensor | None = None, target_sigma: float = 2.0) -> nn.Module:
    """The one place a loss name becomes a criterion ("posefix": `PoseFixLoss`; "heatmap_mse": `HeatmapMSELoss`)."""
    if kind == "posefix":
        return PoseFixLoss(joint_mask=joint_mask)
    if kind == "heatmap_mse":
        return HeatmapMSELoss(joint_mask=joint_mask, target_sigma=target_sigma)
    raise ValueError(f"unknown loss {kind!r} (one of {', '.join(LOSS_KINDS)})")


def conv_l2_penalty(model: nn.Module, weight_decay: float) -> torch.Tensor:
    """weight_decay * sum(w^2) / 2 over convolution and transposed-convolution kernels (slim's l2_regularizer).

    BatchNorm parameters and biases are not decayed, as in the reference.
    """
    terms = [m.weight.float().pow(2).sum() for m in model.modules()
             if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)) and m.weight.requires_grad]
    if not terms:
        return torch.zeros(())
    return 0.5 * weight_decay * torch.stack(terms).sum()
