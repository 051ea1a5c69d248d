import math

import torch
from torch import nn

from posefix_video.net.heatmaps import bilinear_target
from posefix_video.train.losses import PoseFixLoss, conv_l2_penalty

H, W = 8, 6


def _peaked_logits(center: torch.Tensor, sharpness: float = 2.0) -> torch.Tensor:
    """(1, 1, H, W) logits of a Gaussian bump at center (x, y) cells; differentiable in center."""
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    d2 = (xs - center[0]) ** 2 + (ys - center[1]) ** 2
    return (-sharpness * d2)[None, None]


def test_bilinear_target_weights_by_hand():
    t = bilinear_target(torch.tensor([[[2.25, 3.5]]]), H, W).reshape(H, W)
    expected = torch.zeros(H, W)
    expected[3, 2] = 0.75 * 0.5
    expected[3, 3] = 0.25 * 0.5
    expected[4, 2] = 0.75 * 0.5
    expected[4, 3] = 0.25 * 0.5
    assert torch.allclose(t, expected)


def test_border_targets_stay_on_the_map():
    pts = torch.tensor([[W - 1.0, H - 1.0], [W - 1.0, 0.0], [0.0, H - 1.0], [W - 0.5, 2.0], [-0.7, -3.0]])
    t = bilinear_target(pts[None], H, W).reshape(-1, H, W)
    assert torch.allclose(t.sum((1, 2)), torch.ones(len(pts)))
    assert t[0, H - 1, W - 1] == 1.0  # exactly on the last cell: all weight there
    assert t[1, 0, W - 1] == 1.0
    assert t[2, H - 1, 0] == 1.0
    assert t[3, 2, W - 1] == 1.0  # beyond the border: clamped onto it
    assert t[4, 0, 0] == 1.0


def test_loss_is_minimal_at_the_true_point_and_gradient_points_to_it():
    truth = torch.tensor([3.3, 4.6])
    crit = PoseFixLoss()
    tgt, valid = truth.reshape(1, 1, 2), torch.ones(1, 1)

    def loss_at(c):
        return crit(_peaked_logits(c), tgt, valid)["loss"]

    best = loss_at(truth)
    for dx, dy in [(1, 0), (-1, 0), (0, 1), (0, -1), (0.5, 0.5), (-2, 1)]:
        assert loss_at(truth + torch.tensor([dx, dy])) > best
    for start in ([0.5, 0.5], [5.0, 7.0], [3.3, 1.0]):
        c = torch.tensor(start, requires_grad=True)
        loss_at(c).backward()
        step = -c.grad
        to_truth = truth - c.detach()
        assert torch.dot(step, to_truth) > 0.5 * step.norm() * to_truth.norm()  # within 60 degrees of the truth


def test_terms_match_hand_computation():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, H, W)
    tgt = torch.tensor([[[1.0, 2.0], [4.5, 0.0], [2.0, 7.0]], [[0.0, 0.0], [5.0, 3.25], [3.0, 3.0]]])
    valid = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    out = PoseFixLoss()(logits, tgt, valid)
    p = logits.reshape(2, 3, -1).softmax(-1)
    ce = torch.zeros(2, 3)
    pred = torch.zeros(2, 3, 2)
    for b in range(2):
        for j in range(3):
            pm = p[b, j].reshape(H, W)
            pred[b, j, 0] = sum(pm[:, x].sum() * x for x in range(W))
            pred[b, j, 1] = sum(pm[y, :].sum() * y for y in range(H))
            x, y = tgt[b, j].tolist()
            x0, y0 = min(math.floor(x), W - 2), min(math.floor(y), H - 2)
            fx, fy = x - x0, y - y0
            for (cx, cy), wgt in [((x0, y0), (1 - fx) * (1 - fy)), ((x0 + 1, y0), fx * (1 - fy)),
                                  ((x0, y0 + 1), (1 - fx) * fy), ((x0 + 1, y0 + 1), fx * fy)]:
                ce[b, j] -= wgt * math.log(pm[cy, cx])
    v = valid.float()
    assert torch.allclose(out["heatmap"], (ce * v).sum() / 6, rtol=1e-5)  # invalid joints stay in the denominator
    assert torch.allclose(out["coord"], ((pred - tgt).abs() * v[..., None]).sum() / 12, rtol=1e-5)
    assert torch.allclose(out["loss"], out["heatmap"] + out["coord"])
    assert torch.allclose(out["pred_cells"], pred, atol=1e-5)


def test_masking_removes_invalid_and_ignored_joints():
    torch.manual_seed(1)
    logits = torch.randn(2, 4, H, W, requires_grad=True)
    tgt = torch.rand(2, 4, 2) * 5
    valid = torch.tensor([[1, 0, 1, 1], [0, 1, 1, 1]], dtype=torch.bool)
    joint_mask = torch.tensor([True, True, True, False])
    out = PoseFixLoss(joint_mask=joint_mask)(logits, tgt, valid)
    out["loss"].backward()
    g = logits.grad.abs().sum((2, 3))
    assert torch.all(g[0, 1] == 0) and torch.all(g[1, 0] == 0) and torch.all(g[:, 3] == 0)
    assert torch.all(g[0, 0] > 0) and torch.all(g[1, 2] > 0)
    # changing a masked joint's target changes nothing
    tgt2 = tgt.clone()
    tgt2[0, 1] = 0.0
    tgt2[:, 3] = 1.0
    out2 = PoseFixLoss(joint_mask=joint_mask)(logits, tgt2, valid)
    assert torch.equal(out["loss"], out2["loss"])


def test_conv_l2_penalty_decays_only_conv_kernels():
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ConvTranspose2d(2, 1, 2))
    expected = 0.5 * 1e-2 * (m[0].weight.pow(2).sum() + m[2].weight.pow(2).sum())
    assert torch.allclose(conv_l2_penalty(m, 1e-2), expected)


def test_nan_coordinates_of_invalid_joints_do_not_poison_the_loss():
    logits = torch.randn(1, 2, H, W)
    tgt = torch.tensor([[[2.0, 3.0], [float("nan"), float("nan")]]])
    out = PoseFixLoss()(logits, tgt, torch.tensor([[True, False]]))
    ref = PoseFixLoss()(logits, torch.tensor([[[2.0, 3.0], [0.0, 0.0]]]), torch.tensor([[True, False]]))
    assert torch.isfinite(out["loss"]) and torch.equal(out["loss"], ref["loss"])
