"""Heatmap codec: input Gaussians, normalisation, soft-argmax, bilinear targets, confidence."""

from __future__ import annotations

import math

import pytest
import torch

from posefix_video.net.heatmaps import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    bilinear_target,
    cells_to_crop,
    crop_to_cells,
    make_network_input,
    mass_confidence,
    render_gaussians,
    soft_argmax,
)


def test_render_peak_at_integer_keypoint_and_centroid_at_subpixel_keypoint():
    coords = torch.tensor([[[10.0, 20.0], [17.3, 31.6]]])
    maps = render_gaussians(coords, torch.ones(1, 2, dtype=torch.bool), 64, 48, sigma=3.0)
    assert maps.shape == (1, 2, 64, 48)
    flat = maps[0, 0].flatten().argmax()
    assert (flat % 48, flat // 48) == (10, 20)
    assert maps[0, 0, 20, 10] == pytest.approx(1.0)
    assert maps[0, 0, 20, 13] == pytest.approx(math.exp(-9 / 18), rel=1e-6)
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(48.0), indexing="ij")
    m = maps[0, 1]
    assert float((m * xs).sum() / m.sum()) == pytest.approx(17.3, abs=1e-3)
    assert float((m * ys).sum() / m.sum()) == pytest.approx(31.6, abs=1e-3)


def test_invalid_and_nan_joints_render_zero():
    coords = torch.tensor([[[10.0, 20.0], [float("nan"), float("nan")], [5.0, 5.0]]])
    valid = torch.tensor([[True, False, False]])
    maps = render_gaussians(coords, valid, 32, 24, sigma=2.0)
    assert torch.isfinite(maps).all()
    assert maps[0, 0].max() == pytest.approx(1.0)
    assert maps[0, 1].abs().max() == 0 and maps[0, 2].abs().max() == 0


def test_network_input_normalises_rgb_and_zeroes_ignored_slots():
    crops = torch.zeros(2, 3, 32, 24, dtype=torch.uint8)
    crops[:, 0] = 255
    crops[:, 1] = 128
    kp = torch.full((2, 17, 2), 12.0)
    x = make_network_input(crops, kp, torch.ones(2, 17, dtype=torch.bool), sigma=2.0, ignored=(3, 4))
    assert x.shape == (2, 20, 32, 24) and x.dtype == torch.float32
    assert x[0, 0, 0, 0] == pytest.approx((1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], rel=1e-5)
    assert x[0, 1, 5, 5] == pytest.approx((128 / 255 - IMAGENET_MEAN[1]) / IMAGENET_STD[1], rel=1e-5)
    assert x[0, 2, 5, 5] == pytest.approx(-IMAGENET_MEAN[2] / IMAGENET_STD[2], rel=1e-5)
    heat = x[:, 3:]
    assert heat[:, [3, 4]].abs().max() == 0
    assert heat[:, 0, 12, 12].tolist() == [1.0, 1.0]


def test_soft_argmax_of_sharp_peak_is_subpixel_accurate():
    h, w = 16, 12
    target = torch.tensor([[[3.3, 9.7], [0.0, 0.0], [11.0, 15.0]]])  # x, y in cells, incl. the far corner
    ys, xs = torch.meshgrid(torch.arange(float(h)), torch.arange(float(w)), indexing="ij")
    # Gaussian logits with sigma 1 cell: its lattice centroid equals the centre far from the borders
    logits = -((xs - 3.3) ** 2 + (ys - 9.7) ** 2) / 2
    coords, probs = soft_argmax(logits.view(1, 1, h, w))
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert coords[0, 0].tolist() == pytest.approx([3.3, 9.7], abs=1e-3)
    # the bilinear one-hot target is decoded exactly, also on the border cells
    onehot = bilinear_target(target, h, w).view(1, 3, h, w)
    coords, _ = soft_argmax(torch.log(onehot.clamp_min(1e-30)))
    assert torch.allclose(coords, target, atol=1e-4)


def test_soft_argmax_runs_in_float32_for_bf16_logits():
    logits = torch.zeros(1, 1, 8, 6, dtype=torch.bfloat16)
    coords, probs = soft_argmax(logits)
    assert coords.dtype == torch.float32
    assert coords[0, 0].tolist() == pytest.approx([2.5, 3.5])


def test_bilinear_target_hand_values_and_borders():
    h, w = 4, 5
    t = bilinear_target(torch.tensor([[[1.25, 2.5]]]), h, w).view(h, w)
    expected = torch.zeros(h, w)
    expected[2, 1], expected[2, 2] = 0.75 * 0.5, 0.25 * 0.5
    expected[3, 1], expected[3, 2] = 0.75 * 0.5, 0.25 * 0.5
    assert torch.allclose(t, expected)
    # exactly on the last column/row, and beyond: all mass kept on the border cell
    edge = torch.tensor([[[4.0, 3.0], [4.0, 1.0], [7.5, -2.0], [4.6, 2.2]]])
    t = bilinear_target(edge, h, w).view(4, h, w)
    assert torch.allclose(t.sum((-2, -1)), torch.ones(4))
    assert t[0, 3, 4] == 1 and t[1, 1, 4] == 1 and t[2, 0, 4] == 1
    assert t[3, 2, 4] == pytest.approx(0.8) and t[3, 3, 4] == pytest.approx(0.2)


def test_crop_cell_mapping_is_stride_4():
    c = torch.tensor([[1.5, 7.0]])
    assert cells_to_crop(c).tolist() == [[6.0, 28.0]]
    assert torch.equal(crop_to_cells(cells_to_crop(c)), c)


def test_mass_confidence_delta_uniform_and_bimodal():
    h, w = 16, 12
    delta = torch.zeros(1, 1, h, w)
    delta[0, 0, 5, 7] = 1
    assert mass_confidence(delta, torch.tensor([[[7.0, 5.0]]])).item() == pytest.approx(1.0)
    uniform = torch.full((1, 1, h, w), 1 / (h * w))
    # cells within radius 2 of (5, 8): 13 cells of the 4-neighbourhood disc
    assert mass_confidence(uniform, torch.tensor([[[5.0, 8.0]]])).item() == pytest.approx(13 / (h * w))
    bimodal = torch.zeros(1, 1, h, w)
    bimodal[0, 0, 2, 1] = bimodal[0, 0, 12, 10] = 0.5
    coords, _ = soft_argmax(torch.log(bimodal.clamp_min(1e-30)))
    assert mass_confidence(bimodal, coords).item() < 1e-6
