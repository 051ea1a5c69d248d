"""poseval's PCKh assignment and VOC AP, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from posefix_video.eval.ap import assign_frame, joint_distances, voc_ap
from posefix_video.eval.posetrack_data import NUM_EVAL_JOINTS, Persons


def _persons(centres, head=10.0, present=None, tracks=None) -> Persons:
    """Persons whose 15 joints all sit at one point; head box diagonal 10/0.6 -> head size `head`."""
    n = len(centres)
    xy = np.repeat(np.asarray(centres, float)[:, None, :], NUM_EVAL_JOINTS, axis=1)
    pres = np.ones((n, NUM_EVAL_JOINTS), bool) if present is None else np.asarray(present)
    side = head / 0.6 / np.sqrt(2)
    boxes = np.array([[0, 0, side, side]] * n, float)
    return Persons(np.arange(n) if tracks is None else np.asarray(tracks), xy, pres,
                   np.full((n, NUM_EVAL_JOINTS), 0.5), boxes)


def test_voc_ap_hand_computed():
    # Ranked labels 1, 0, 1 with 4 GT: recall .25 .25 .5, precision 1 .5 .667 -> AP = .25*1 + .25*(2/3).
    ap, pre, rec = voc_ap(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 4)
    assert ap == pytest.approx(100 * (0.25 + 0.25 * 2 / 3))
    assert pre == pytest.approx(100 * 2 / 3) and rec == pytest.approx(50.0)
    # The order comes from the scores, not the input order.
    ap2, _, _ = voc_ap(np.array([0.7, 0.9, 0.8]), np.array([True, True, False]), 4)
    assert ap2 == pytest.approx(ap)


def test_voc_ap_nan_and_zero_rules():
    assert voc_ap(np.zeros(0), np.zeros(0, bool), 5) == (0.0, 0.0, 0.0)  # no predictions: 0, not NaN
    assert voc_ap(np.zeros(0), np.zeros(0, bool), 0) == (0.0, 0.0, 0.0)  # neither GT nor predictions: 0
    ap, pre, rec = voc_ap(np.array([0.3]), np.array([False]), 0)  # predictions without GT: NaN
    assert np.isnan(ap) and np.isnan(rec) and pre == 0.0


def test_distance_uses_gt_head_size_and_inclusive_threshold():
    gt = _persons([[0, 0]], head=10.0)
    pred = _persons([[5, 0]])  # exactly 0.5 head sizes away: a match (<= is inclusive)
    dist = joint_distances(gt, pred)
    assert dist.shape == (1, 1, NUM_EVAL_JOINTS)
    assert np.allclose(dist, 0.5)
    labels, match = assign_frame(dist, gt.present)
    assert labels.all() and match.all()
    far = joint_distances(gt, _persons([[5.01, 0]]))
    assert not assign_frame(far, gt.present)[0].any()


def test_greedy_assignment_leaves_the_loser_unmatched():
    # Two GT persons at x=0 and x=100. Pred 0 hits GT 0 fully; pred 1 hits GT 0 on 8 joints and GT 1 on 7 joints:
    # it picks GT 0 (higher PCKh), loses it to pred 0 (PCKh 1.0 > 8/15), and stays
    # unmatched even though GT 1 is free. A Hungarian assignment would have matched it.
    gt = _persons([[0, 0], [100, 0]])
    pred = _persons([[0, 0], [0, 0]])
    pred.xy[1, 8:] = [100, 0]
    dist = joint_distances(gt, pred)
    labels, _ = assign_frame(dist, gt.present)
    assert labels[0].all()
    assert not labels[1].any()


def test_matched_prediction_of_unlabeled_joint_is_false_positive():
    present = np.ones((1, NUM_EVAL_JOINTS), bool)
    present[0, 3] = False
    gt = _persons([[0, 0]], present=present)
    pred = _persons([[0, 0]])
    labels, _ = assign_frame(joint_distances(gt, pred), gt.present)
    assert labels[0, 3] == False  # noqa: E712
    assert labels[0, np.arange(NUM_EVAL_JOINTS) != 3].all()
    assert np.isinf(joint_distances(gt, pred)[0, 0, 3])
