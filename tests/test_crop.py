"""Device crops: agreement with cv2.warpAffine, frame stacking without bleed, boxes, affine round trips."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from posefix_video import geometry
from posefix_video.keypoints import COCO17, POSETRACK18
from posefix_video.net.crop import affine_torch, crop_boxes, crop_frames, invert_affine_torch


def _cv2_crops(frames, frame_index, M, hw):
    return np.stack([cv2.warpAffine(frames[f], m, (hw[1], hw[0]), flags=cv2.INTER_LINEAR)
                     for f, m in zip(frame_index, M)])


def test_crops_match_cv2_warpaffine_on_real_frames(shared_data):
    path = shared_data / "posetrack18_mmpose/images/val/009473_mpii_test/000000.jpg"
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    img = cv2.resize(img, (480, 270), interpolation=cv2.INTER_AREA)
    frames = np.stack([img, np.ascontiguousarray(img[::-1, ::-1])])
    rng = np.random.default_rng(0)
    P = 8
    centre = rng.uniform([-50, -50], [530, 320], (P, 2))  # some boxes reach far outside the frame
    size = rng.uniform(30, 400, (P, 1)) * np.array([0.75, 1.0])
    M = geometry.crop_affine(centre, size, (64, 48), rng.uniform(-60, 60, P))
    frame_index = np.array([0, 1] * 4)
    ours = crop_frames(frames, frame_index, M, (64, 48)).permute(0, 2, 3, 1).numpy()
    ref = _cv2_crops(frames, frame_index, M, (64, 48))
    diff = np.abs(ours.astype(int) - ref.astype(int))
    assert ours.dtype == np.uint8 and ours.shape == (P, 64, 48, 3)
    # cv2 quantises sample positions to 1/32 px: at most 1 grey level apart, including the zero border
    assert diff.max() <= 1
    assert (diff > 0).mean() < 0.01


def test_outside_samples_read_zero_not_the_neighbouring_frame():
    frames = np.full((3, 20, 30, 3), 200, dtype=np.uint8)
    frames[1] = 50
    # a box centred on the bottom edge of frame 1, and one on the top edge of frame 1: half the crop is outside
    M = geometry.crop_affine(np.array([[15.0, 19.5], [15.0, -0.5]]), np.array([[12.0, 16.0], [12.0, 16.0]]), (16, 12))
    crops = crop_frames(frames, np.array([1, 1]), M, (16, 12)).permute(0, 2, 3, 1).numpy()
    ref = _cv2_crops(frames, [1, 1], M, (16, 12))
    assert np.abs(crops.astype(int) - ref.astype(int)).max() <= 1
    assert crops[0, -1].max() == 0 and crops[0, 0].min() == 50
    assert crops[1, 0].max() == 0 and crops[1, -1].min() == 50


def test_affine_round_trip_on_device_within_1e3_px():
    rng = np.random.default_rng(1)
    M = geometry.crop_affine(rng.uniform(0, 1000, (5, 2)), rng.uniform(50, 500, (5, 2)), (256, 192),
                             rng.uniform(-80, 80, 5))
    pts = rng.uniform(-100, 1100, (5, 17, 2))
    Mt = torch.as_tensor(M)
    crop_pts = affine_torch(Mt, torch.as_tensor(pts))
    assert np.allclose(crop_pts.numpy(), geometry.apply_affine(M, pts), atol=1e-9)
    back = affine_torch(invert_affine_torch(Mt.float()), crop_pts.float().double())
    assert np.abs(back.numpy() - pts).max() < 1e-3


def test_crop_boxes_ignore_absent_nan_origin_and_ignored_joints():
    kp = np.zeros((4, 17, 2))
    kp[:, :, 0] = np.linspace(100, 140, 17)
    kp[:, :, 1] = np.linspace(200, 280, 17)
    present = np.ones((4, 17), dtype=bool)
    kp[1, 5] = [0.0, 0.0]  # placeholder of a dropped joint
    kp[1, 6] = [np.nan, np.nan]
    kp[1, 3] = [1e4, 1e4]  # ear slot: ignored in posetrack18
    present[2] = False
    kp[3] = np.nan
    boxes = crop_boxes(kp, present, POSETRACK18, (256, 192))
    assert boxes.ok.tolist() == [True, True, False, False]
    assert boxes.reason == [None, None, "no usable joints", "no usable joints"]
    assert not boxes.usable[1, [3, 4, 5, 6]].any() and boxes.usable[1, 7:].all()
    # person 1's box comes from its remaining joints only: same extent as person 0
    assert np.allclose(boxes.centre[1], boxes.centre[0]) and np.allclose(boxes.size[1], boxes.size[0])
    # extent 80 px tall x1.2 = 96 -> widen to aspect 0.75 -> x1.25: 90 x 120 around (120, 240)
    assert np.allclose(boxes.centre[0], [120, 240]) and np.allclose(boxes.size[0], [90, 120])
    coco = crop_boxes(kp[:1], present[:1], COCO17, (256, 192))
    assert coco.usable[0, 3]  # not ignored in COCO
