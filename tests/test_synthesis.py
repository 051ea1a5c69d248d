"""Error synthesis: radii, tables, type frequencies against the renormalised table, geometric constraints."""

from __future__ import annotations

import numpy as np
import pytest

from posefix_video.keypoints import COCO17, POSETRACK18
from posefix_video.synthesis import (
    GOOD,
    INVERSION,
    JITTER,
    MISS,
    SWAP,
    ZEROED,
    is_crowded,
    ks_radius,
    nominal_probabilities,
    synthesize_poses,
)

# A standing person facing the camera in a 256x192 crop (left joints on the image right).
POSE = np.array(
    [[96, 50], [100, 45], [92, 45], [106, 48], [86, 48], [115, 75], [77, 75], [125, 110], [67, 110],
     [130, 140], [62, 140], [108, 145], [84, 145], [110, 185], [82, 185], [112, 225], [80, 225]],
    dtype=np.float64,
)  # fmt: skip
AREA = 82.0 * 200.0


def test_ks_radius_matches_hand_computation():
    # d = 2 sigma sqrt(A) sqrt(-2 ln ks): shoulder (0.079), A = 100^2, ks = 0.5 -> 0.158 * 100 * 1.17741
    r = ks_radius(0.5, np.array([1e4]), COCO17.sigma_array)
    assert r[0, 5] == pytest.approx(15.8 * 1.1774100225, rel=1e-9)
    assert ks_radius(0.1, np.array([1e4]), COCO17.sigma_array)[0, 0] == pytest.approx(5.2 * 2.1459660263, rel=1e-9)
    hip85 = ks_radius(0.85, np.array([4e4]), COCO17.sigma_array)[0, 11]
    assert hip85 == pytest.approx(0.214 * 200 * np.sqrt(-2 * np.log(0.85)), rel=1e-9)


def test_nominal_table_values():
    p = nominal_probabilities(np.array([5, 5, 8, 12, 12, 17]), np.array([0, 1, 1, 0, 3, 5]))
    # good column of posefix_method.md §1.6 (nose, shoulder, hip, ankle)
    assert p[0, 0, GOOD] == pytest.approx(0.68)
    assert p[1, 0, GOOD] == pytest.approx(0.67)  # nv<=5 crowded
    assert p[2, 5, GOOD] == pytest.approx(0.49)  # 6-10 crowded shoulder
    assert p[3, 11, GOOD] == pytest.approx(0.61)  # nv>10 hip
    assert p[4, 11, GOOD] == pytest.approx(0.54)  # nv>10 crowded (overlap>=3) hip
    assert p[5, 15, GOOD] == pytest.approx(0.76)  # nv=17 never crowded
    assert p[0, 11, MISS] == 0.25 and p[2, 11, MISS] == 0.15 and p[3, 11, MISS] == 0.10
    assert p[0, 12, JITTER] == 0.25 and p[3, 1, JITTER] == 0.15 and p[3, 14, INVERSION] == 0.06
    assert p[4, 7, SWAP] == 0.15 and p[3, 7, SWAP] == 0.06
    np.testing.assert_allclose(p.sum(-1), 1.0)
    assert is_crowded(np.array([10, 11, 15, 16]), np.array([1, 1, 3, 3])).tolist() == [True, False, True, False]


def _situation(n, layout, labeled, near_shifts, overlap, estimated=True, seed=0):
    """n copies of POSE with `labeled` joints labeled (the rest from an estimator), near persons shifted copies."""
    rng = np.random.default_rng(seed)
    gt = POSE[None] + rng.normal(0, 1.0, (n, 17, 2))
    gt_valid = np.zeros((n, 17), dtype=bool)
    gt_valid[:, labeled] = True
    gt_valid &= layout.used_mask
    M = len(near_shifts)
    near = gt[:, None] + np.asarray(near_shifts, dtype=np.float64).reshape(1, M, 1, 2) if M else np.zeros((n, 0, 17, 2))
    near_valid = np.broadcast_to(layout.used_mask, (n, M, 17)).copy()
    est = gt + rng.normal(0, 2.0, gt.shape) if estimated else None
    est_valid = np.ones((n, 17), dtype=bool) if estimated else None
    return dict(gt=gt, gt_valid=gt_valid, near=near, near_valid=near_valid, area=np.full(n, AREA),
                overlap=np.full(n, overlap), layout=layout, estimated=est, estimated_valid=est_valid)  # fmt: skip


def _expected(s):
    """(n, 17, 5) renormalised table: inversion needs a labeled partner, swap a near joint or partner."""
    layout = s["layout"]
    gv = s["gt_valid"]
    nv = gv.sum(-1)
    p = nominal_probabilities(nv, s["overlap"]).copy()
    partner = layout.flip_permutation
    has_partner = partner != np.arange(17)
    p[..., INVERSION] *= gv[:, partner] & has_partner
    nvalid = s["near_valid"]
    swap_ok = nvalid.any(1) | (nvalid[:, :, partner].any(1) & has_partner)
    p[..., SWAP] *= swap_ok
    centre = gv | (s["estimated_valid"] if s["estimated"] is not None else False)
    centre &= layout.used_mask
    p = p / p.sum(-1, keepdims=True)
    return np.where(centre[..., None], p, 0.0), centre


def _check_geometry(s, res):
    """Every sampled point satisfies its type's KS band and closest-candidate rule."""
    layout = s["layout"]
    gt, gv = s["gt"], s["gt_valid"]
    centre = gt.copy()
    if s["estimated"] is not None:
        centre = np.where(gv[..., None], gt, s["estimated"])
    partner = layout.flip_permutation
    has_partner = partner != np.arange(17)
    d85 = ks_radius(0.85, s["area"], layout.sigma_array)
    d50 = ks_radius(0.50, s["area"], layout.sigma_array)
    d10 = ks_radius(0.10, s["area"], layout.sigma_array)
    pt = res.keypoints
    n = gt.shape[0]
    inf = np.full((n, 17), np.inf)

    def dist(points, valid):
        return np.where(valid, np.linalg.norm(pt - points, axis=-1), np.inf)

    d_gt = np.linalg.norm(pt - centre, axis=-1)
    d_inv = dist(gt[:, partner], gv[:, partner] & has_partner)
    near, nvalid = s["near"], s["near_valid"]
    d_near = [dist(near[:, m], nvalid[:, m]) for m in range(near.shape[1])]
    d_near += [dist(near[:, m][:, partner], nvalid[:, m][:, partner] & has_partner) for m in range(near.shape[1])]
    d_swaps = np.stack(d_near) if d_near else inf[None]
    d_others_than_gt = np.minimum(d_inv, d_swaps.min(0))
    et = res.error_type
    eps = 1e-9
    tol = 1e-6

    good = et == GOOD
    assert np.all(d_gt[good] <= d85[good] + tol) and np.all(d_others_than_gt[good] > d_gt[good] - eps)
    jit = et == JITTER
    assert np.all((d_gt[jit] >= d85[jit] - tol) & (d_gt[jit] <= d50[jit] + tol))
    assert np.all(d_others_than_gt[jit] > d_gt[jit] - eps)
    inv = et == INVERSION
    assert np.all(d_inv[inv] <= d50[inv] + tol)
    assert np.all(np.minimum(d_gt, d_swaps.min(0))[inv] > d_inv[inv] - eps)
    sw = et == SWAP
    ok_centre = (d_swaps <= d50 + tol) & (d_gt > d_swaps - eps) & (d_inv > d_swaps - eps)
    assert np.all(ok_centre.any(0)[sw])
    ms = et == MISS
    all_d = np.concatenate([d_gt[None], d_inv[None], d_swaps])  # (C, n, 17)
    in_band = (all_d >= d50 - tol) & (all_d <= d10 + tol)
    # the source candidate is in band, every other candidate is farther than d50
    far_from_rest = np.stack([np.delete(all_d, c, axis=0).min(0) > d50 - eps for c in range(all_d.shape[0])])
    assert np.all((in_band & far_from_rest).any(0)[ms])
    assert np.all(res.keypoints[et == ZEROED] == 0) and np.all(res.valid == (et >= 0))
    return good.sum() + jit.sum() + inv.sum() + sw.sum() + ms.sum()


SITUATIONS = [
    # (layout, labeled joints, near person shifts, overlap, estimated)
    (COCO17, list(range(17)), [], 0, True),  # nv 17, alone
    (COCO17, list(range(13)), [(70, 5)], 1, True),  # nv 13, neighbour, not crowded
    (COCO17, [0, 5, 6, 7, 8, 11, 12, 13], [(-70, 0)], 1, True),  # nv 8, crowded
    (COCO17, [0, 5, 7, 11, 13], [], 0, True),  # nv 5, alone, most partners unlabeled
    (POSETRACK18, list(range(17)), [(70, 0), (-70, 5), (0, 90)], 3, True),  # nv 15, crowded (overlap>=3)
    (COCO17, [1, 2, 5, 6, 9, 10, 15, 16], [(0, 60)], 2, False),  # nv 8, no estimator: unlabeled zeroed
]


def test_type_frequencies_match_renormalised_table_and_constraints_hold():
    n = 2000  # 6 situations x 2000 persons x 17 joints = 204,000 joints
    total_checked = 0
    for k, (layout, labeled, shifts, overlap, est) in enumerate(SITUATIONS):
        s = _situation(n, layout, labeled, shifts, overlap, estimated=est, seed=k)
        rng = np.random.default_rng(100 + k)
        res = synthesize_poses(rng=rng, **s)
        expected, centre = _expected(s)
        assert np.array_equal(res.error_type == ZEROED, ~centre), f"situation {k}: zeroed joints"
        freq = np.stack([(res.error_type == t).mean() for t in range(5)])
        want = expected.reshape(-1, 5).sum(0) / expected.shape[0] / 17
        np.testing.assert_allclose(freq, want, atol=0.01, err_msg=f"situation {k}")
        # per joint group too, with a tolerance matched to the smaller count
        for group in (slice(0, 5), slice(5, 11), slice(11, 17)):
            f = np.stack([(res.error_type[:, group] == t).mean() for t in range(5)])
            w = expected[:, group].reshape(-1, 5).mean(0)
            np.testing.assert_allclose(f, w, atol=0.025, err_msg=f"situation {k} joints {group}")
        total_checked += _check_geometry(s, res)
    assert total_checked > 160_000


def test_posetrack_ears_zeroed_and_no_inversion_for_head():
    s = _situation(300, POSETRACK18, list(range(17)), [(70, 0)], 1)
    res = synthesize_poses(rng=np.random.default_rng(1), **s)
    assert np.all(res.error_type[:, [3, 4]] == ZEROED) and not res.valid[:, [3, 4]].any()
    assert not np.any(res.error_type[:, [0, 1, 2]] == INVERSION)
    assert np.any(res.error_type[:, 5:] == INVERSION)


def test_unlabeled_joints_use_estimator_or_are_absent():
    labeled = [0, 5, 6, 11, 12]
    with_est = _situation(400, COCO17, labeled, [], 0, estimated=True)
    with_est["estimated"] = with_est["gt"] + np.array([40.0, 0.0])  # far from gt: samples follow the estimate
    res = synthesize_poses(rng=np.random.default_rng(2), **with_est)
    unl = np.setdiff1d(np.arange(17), labeled)
    assert res.valid[:, unl].all()
    near_est = res.error_type[:, unl] <= JITTER
    d_est = np.linalg.norm(res.keypoints[:, unl] - with_est["estimated"][:, unl], axis=-1)
    d50 = ks_radius(0.5, with_est["area"], COCO17.sigma_array)[:, unl]
    assert np.all(d_est[near_est] <= d50[near_est] + 1e-6)
    # The estimator's joints are no ground truth: nv counts labeled joints only (nv 5 -> miss 0.25 for hips).
    assert np.mean(res.error_type[:, 11:13] == MISS) > 0.15

    without = _situation(400, COCO17, labeled, [], 0, estimated=False)
    res2 = synthesize_poses(rng=np.random.default_rng(2), **without)
    assert np.all(res2.error_type[:, unl] == ZEROED) and not res2.valid[:, unl].any()
    assert np.all(res2.keypoints[:, unl] == 0)
    assert res2.valid[:, labeled].all()


def test_inversion_centre_is_partner_ground_truth():
    s = _situation(2000, COCO17, list(range(17)), [], 0)
    res = synthesize_poses(rng=np.random.default_rng(3), **s)
    partner = COCO17.flip_permutation
    inv = res.error_type == INVERSION
    d = np.linalg.norm(res.keypoints - s["gt"][:, partner], axis=-1)
    d50 = ks_radius(0.5, s["area"], COCO17.sigma_array)
    assert inv.sum() > 100 and np.all(d[inv] <= d50[inv] + 1e-6)


def test_deterministic_given_generator_state():
    s = _situation(50, COCO17, list(range(17)), [(70, 0)], 1)
    a = synthesize_poses(rng=np.random.default_rng(7), **s)
    b = synthesize_poses(rng=np.random.default_rng(7), **s)
    c = synthesize_poses(rng=np.random.default_rng(8), **s)
    assert np.array_equal(a.keypoints, b.keypoints) and np.array_equal(a.error_type, b.error_type)
    assert not np.array_equal(a.keypoints, c.keypoints)


def test_empty_inputs():
    res = synthesize_poses(np.zeros((0, 17, 2)), np.zeros((0, 17), bool), np.zeros((0, 0, 17, 2)),
                           np.zeros((0, 0, 17), bool), np.zeros(0), np.zeros(0, int), COCO17,
                           np.random.default_rng(0))  # fmt: skip
    assert res.keypoints.shape == (0, 17, 2)
    none = synthesize_poses(POSE[None], np.zeros((1, 17), bool), np.zeros((1, 0, 17, 2)), np.zeros((1, 0, 17), bool),
                            np.array([AREA]), np.array([0]), COCO17, np.random.default_rng(0))  # fmt: skip
    assert np.all(none.error_type == ZEROED)


def test_exact_pooled_pick_path_keeps_the_constraints(monkeypatch):
    # Without rejection rounds every swap/miss point comes from the exact pooled survivor counts.
    import posefix_video.synthesis as synthesis

    monkeypatch.setattr(synthesis, "_REJECTION_ROUNDS", 0)
    s = _situation(600, COCO17, [0, 5, 6, 7, 8, 11, 12, 13], [(-70, 0), (0, 60)], 3)
    res = synthesize_poses(rng=np.random.default_rng(9), **s)
    assert np.isin(res.error_type, (MISS, SWAP)).sum() > 500
    _check_geometry(s, res)
    expected, _ = _expected(s)
    freq = np.stack([(res.error_type == t).mean() for t in range(5)])
    np.testing.assert_allclose(freq, expected.reshape(-1, 5).mean(0), atol=0.015)
