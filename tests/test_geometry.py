import numpy as np

from posefix_video.geometry import (
    apply_affine,
    box_from_keypoints,
    crop_affine,
    crop_box,
    hflip_affine,
    invert_affine,
    usable_joints,
)


def test_usable_joints_skip_absent_nan_origin_and_ignored():
    kps = np.full((1, 17, 2), 50.0)
    kps[0, 0] = [0, 0]
    kps[0, 1] = [np.nan, 3]
    present = np.ones((1, 17), bool)
    present[0, 2] = False
    mask = usable_joints(kps, present, ignored=(3, 4))
    assert mask[0].tolist() == [False, False, False, False, False] + [True] * 12


def test_box_and_crop_box_by_hand():
    kps = np.zeros((1, 17, 2))
    kps[0, :, 0] = np.linspace(100, 140, 17)  # x extent 40
    kps[0, :, 1] = np.linspace(200, 300, 17)  # y extent 100
    usable = np.ones((1, 17), bool)
    box = box_from_keypoints(kps, usable)
    np.testing.assert_allclose(box[0], [120 - 24, 250 - 60, 48, 120])
    centre, size = crop_box(box)
    np.testing.assert_allclose(centre[0], [120, 250])
    np.testing.assert_allclose(size[0], [90 * 1.25, 120 * 1.25])  # w widened to 0.75 * 120
    assert np.isnan(box_from_keypoints(kps, np.zeros((1, 17), bool))).all()


def test_affine_maps_centre_and_round_trips():
    rng = np.random.default_rng(0)
    centre = rng.uniform(100, 500, (5, 2))
    size = np.stack([rng.uniform(50, 200, 5)] * 2, -1) * [0.75, 1]
    M = crop_affine(centre, size, (256, 192), rotation_deg=rng.uniform(-80, 80, 5))
    np.testing.assert_allclose(apply_affine(M, centre[:, None]).squeeze(1), np.tile([96.0, 128.0], (5, 1)))
    pts = rng.uniform(0, 600, (5, 17, 2))
    back = apply_affine(invert_affine(M), apply_affine(M, pts))
    assert np.abs(back - pts).max() < 1e-9
    flipped = apply_affine(hflip_affine(M, 192), pts)
    np.testing.assert_allclose(flipped[..., 0], 191 - apply_affine(M, pts)[..., 0])


def test_rotation_is_counter_clockwise_on_screen():
    # a point to the right of the centre goes up (smaller v) when the content turns 90 deg counter-clockwise
    M = crop_affine(np.array([[0.0, 0.0]]), np.array([[100.0, 100.0]]), (100, 100), rotation_deg=90)
    u, v = apply_affine(M, np.array([[[10.0, 0.0]]]))[0, 0]
    assert abs(u - 50) < 1e-9 and abs(v - 40) < 1e-9
