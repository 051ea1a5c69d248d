"""Per-track temporal filters: exact behaviour on signals with known answers, gaps, and track boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from posefix_video.keypoints import POSETRACK18
from posefix_video.records import PersonRecord, PoseSequence
from posefix_video.video.smoothing import OneEuroParams, SavgolParams, one_euro, savgol, smooth_sequence


def person(frame, track, xy, present=None):
    kp = np.tile(np.asarray(xy, float), (17, 1))
    return PersonRecord(frame=frame, track_id=track, keypoints=kp, scores=np.ones(17),
                        present=np.ones(17, bool) if present is None else present)


def test_savgol_keeps_quadratics_and_removes_alternating_noise():
    t = np.arange(20, dtype=float)
    clean = 0.5 * t**2 - 3 * t + 7
    x = np.stack([clean, clean], -1)[:, None, :]  # (T, 1, 2)
    valid = np.ones((20, 1), bool)
    assert np.allclose(savgol(x, valid, SavgolParams(7, 2))[:, 0, 0], clean)
    noisy = x + np.where(t % 2, 1.0, -1.0)[:, None, None]
    out = savgol(noisy, valid, SavgolParams(7, 2))
    assert np.abs(out - x)[3:-3].max() < 0.3  # an order-2 fit over 7 samples takes +-1 alternation down to 1/7


def test_savgol_runs_do_not_cross_gaps():
    x = np.zeros((12, 1, 2))
    x[6:] = 100.0
    valid = np.ones((12, 1), bool)
    valid[5] = False  # the step happens at a gap: each side is constant and must stay exactly so
    out = savgol(x, valid, SavgolParams(5, 2))
    assert np.allclose(out[:5], x[:5], atol=1e-9) and np.allclose(out[6:], x[6:], atol=1e-9)
    short = savgol(x[:2], valid[:2], SavgolParams(5, 2))  # too short for any window above the order
    assert np.array_equal(short, x[:2])


def test_one_euro_first_step_by_hand():
    p = OneEuroParams(min_cutoff=0.1, beta=0.0, d_cutoff=0.5)
    x = np.array([[[0.0, 0.0]], [[10.0, 0.0]], [[10.0, 0.0]]])
    out = one_euro(x, np.ones((3, 1), bool), p)
    a = 1 / (1 + 1 / (2 * np.pi * 0.1))
    assert out[0, 0, 0] == 0.0
    assert np.isclose(out[1, 0, 0], a * 10)
    assert np.isclose(out[2, 0, 0], a * 10 + (1 - a) * a * 10)


def test_one_euro_restarts_after_gap_and_beta_reduces_lag():
    x = np.zeros((6, 1, 2))
    x[3:] = 50.0
    valid = np.ones((6, 1), bool)
    valid[2] = False
    out = one_euro(x, valid, OneEuroParams())
    assert out[3, 0, 0] == 50.0  # a new run starts at its own first value
    ramp = np.arange(30, dtype=float)[:, None, None] * np.array([5.0, 0.0])
    v = np.ones((30, 1), bool)
    slow = one_euro(ramp, v, OneEuroParams(beta=0.0))
    fast = one_euro(ramp, v, OneEuroParams(beta=0.5))
    assert abs(fast[-1, 0, 0] - ramp[-1, 0, 0]) < abs(slow[-1, 0, 0] - ramp[-1, 0, 0])


@pytest.mark.parametrize("method", ["oneeuro", "savgol"])
def test_sequence_tracks_smoothed_separately(method):
    seq = PoseSequence(name="s", layout=POSETRACK18)
    rng = np.random.default_rng(0)
    for f in range(15):
        seq.add(person(f, 1, [100 + rng.normal(0, 2), 50]))
        if f >= 5:  # a second track starting mid-clip at another place: must not pull track 1
            seq.add(person(f, 2, [400, 300]))
    seq.add(PersonRecord(frame=3, track_id=None, keypoints=np.full((17, 2), 7.0), scores=None,
                         present=np.ones(17, bool)))
    before1 = np.array([r.keypoints[0, 0] for r in seq.persons() if r.track_id == 1])
    n = smooth_sequence(seq, method)
    assert n == 15 + 10
    after1 = np.array([r.keypoints[0, 0] for r in seq.persons() if r.track_id == 1])
    assert after1.std() < before1.std() and np.abs(after1 - 100).max() < 8
    assert all(np.allclose(r.keypoints, [400, 300]) for r in seq.persons() if r.track_id == 2)
    assert next(r for r in seq.persons() if r.track_id is None).keypoints[0, 0] == 7.0
    assert [len(seq.frames[f]) for f in range(15)] == [1, 1, 1, 2, 1] + [2] * 10


def test_absent_joints_untouched():
    seq = PoseSequence(name="s", layout=POSETRACK18)
    present = np.ones(17, bool)
    present[0] = False
    for f in range(9):
        r = person(f, 0, [f * 3.0 + (f % 2), 0], present)
        r.keypoints[0] = 0.0
        seq.add(r)
    smooth_sequence(seq, "savgol", SavgolParams(5, 1))
    assert all(r.keypoints[0, 0] == 0.0 for r in seq.persons())
