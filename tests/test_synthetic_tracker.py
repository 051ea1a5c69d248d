"""Tracker simulator: poseval-valid predictions, each error process doing what it says, scores tracking error."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from posefix_video.io import read_posetrack18
from posefix_video.keypoints import POSETRACK18
from posefix_video.records import PersonRecord, PoseSequence
from posefix_video.synthesis import ks_radius
from posefix_video.synthetic import posetrack_videos
from posefix_video.synthetic.tracker_sim import TrackerSimSettings, simulate_files, simulate_sequence

OFF = TrackerSimSettings.clean()


def _walker_gt(num_frames: int = 40, persons: int = 3) -> PoseSequence:
    """Hand-made GT: persons standing apart, slowly moving right (well separated: no swaps possible)."""
    base = np.array([[0, 0], [0, 10], [0, -30], [0, 0], [0, 0], [10, 20], [-10, 20], [14, 45], [-14, 45], [16, 70],
                     [-16, 70], [8, 80], [-8, 80], [8, 120], [-8, 120], [8, 160], [-8, 160]], float)  # fmt: skip
    seq = PoseSequence(name="000001_mpiinew_test", layout=POSETRACK18, num_frames=num_frames)
    present = np.ones(17, bool)
    present[[3, 4]] = False
    for f in range(num_frames):
        for k in range(persons):
            kp = base + [100 + 200 * k + f, 50]
            box = np.array([80 + 200 * k + f, 15, 40, 200])
            seq.add(PersonRecord(frame=f, track_id=k, keypoints=kp, scores=None, present=present,
                                 visibility=present.astype(float), box=box))  # fmt: skip
    return seq


def _errors(gt: PoseSequence, pred: PoseSequence):
    """(error px, score, d50) of every predicted joint, matched to GT by the simulator's GT track id."""
    out = []
    for f, persons in pred.frames.items():
        by_track = {p.track_id: p for p in gt.frames[f]}
        for p in persons:
            g = by_track[p.extra["sim_gt_track_id"]]
            d50 = ks_radius(0.5, np.array([g.box[2] * g.box[3]]), POSETRACK18.sigma_array)[0]
            for j in np.flatnonzero(p.present):
                out.append((np.linalg.norm(p.keypoints[j] - g.keypoints[j]), p.scores[j], d50[j]))
    return np.array(out)


def test_all_processes_off_reproduces_the_ground_truth():
    gt = _walker_gt()
    pred = simulate_sequence(gt, OFF, np.random.default_rng(0))
    assert pred.num_persons == gt.num_persons
    for f in gt.frames:
        for g, p in zip(gt.frames[f], pred.frames[f]):
            assert p.track_id == g.track_id
            assert np.array_equal(p.present, g.present)
            assert np.allclose(p.keypoints[p.present], g.keypoints[g.present])
            assert (p.scores[~p.present] == 0).all() and (p.scores[p.present] > 0.5).mean() > 0.9


def test_posefix_errors_follow_the_tables_and_scores_fall_with_error():
    gt = _walker_gt(num_frames=60)
    pred = simulate_sequence(gt, replace(OFF, posefix=1.0), np.random.default_rng(1))
    types = np.array([p.extra["sim_error_type"] for p in pred.persons()])
    body = types[:, 5:]
    # Isolated persons with 15 labeled joints: no swaps; good ~ 0.61-0.76 renormalised up a little; jitter and
    # miss clearly present; inversions rare.
    frac = np.array([(body == t).mean() for t in range(5)])
    assert frac[4] == 0
    assert 0.6 < frac[0] < 0.85 and 0.1 < frac[1] < 0.25 and 0.03 < frac[2] < 0.15 and 0.01 < frac[3] < 0.08
    # Distances by type, in KS-0.5 radii: good within d85 (0.484 d50), jitter between d85 and d50.
    for p in pred.persons():
        g = gt.frames[p.frame][p.extra["sim_gt_track_id"]]
        d50 = ks_radius(0.5, np.array([g.box[2] * g.box[3]]), POSETRACK18.sigma_array)[0]
        rel = np.linalg.norm(p.keypoints - g.keypoints, axis=1) / np.maximum(d50, 1e-9)
        t = np.array(p.extra["sim_error_type"])
        assert (rel[t == 0] <= 0.487).all()  # d85 / d50 = 0.4842, plus the 0.01 px rounding of the file
        assert ((rel[t == 1] >= 0.481) & (rel[t == 1] <= 1.003)).all()
        assert (rel[(t == 2)] >= 0.3).all()
    err, score, d50 = _errors(gt, pred).T
    rel = err / d50
    assert np.median(rel) < 0.5 and (rel > 1.0).mean() > 0.05
    assert np.corrcoef(rel, score)[0, 1] < -0.5
    assert score[rel < 0.3].mean() > score[rel > 1.0].mean() + 0.3


def test_drift_is_temporally_correlated():
    gt = _walker_gt(num_frames=200, persons=1)
    pred = simulate_sequence(gt, replace(OFF, drift=1.0, drift_rho=0.9), np.random.default_rng(2))
    off = np.array([pred.frames[f][0].keypoints[9] - gt.frames[f][0].keypoints[9] for f in range(200)])[:, 0]
    lag1 = np.corrcoef(off[:-1], off[1:])[0, 1]
    assert 0.8 < lag1 < 0.97
    d85 = ks_radius(0.85, np.array([40 * 200.0]), POSETRACK18.sigma_array)[0, 9]
    assert 0.5 * d85 < off.std() < 1.6 * d85


def test_missed_persons_come_in_bursts_and_dropped_joints_are_absent():
    gt = _walker_gt(num_frames=300, persons=2)
    pred = simulate_sequence(gt, replace(OFF, miss_person=0.05, miss_length=5.0, drop_joints=0.2),
                             np.random.default_rng(3))  # fmt: skip
    seen = np.array([[any(p.extra["sim_gt_track_id"] == k for p in pred.persons_in(f)) for f in range(300)]
                     for k in range(2)])  # fmt: skip
    missing = 1 - seen.mean()
    assert 0.1 < missing < 0.35  # p / (p + 1/L) ~ 0.2
    runs = [len(r) for row in seen for r in "".join("x" if not v else "." for v in row).split(".") if r]
    assert np.mean(runs) > 2.5
    present = np.array([p.present for p in pred.persons()])[:, 5:]
    assert 0.15 < 1 - present.mean() < 0.25
    for p in pred.persons():
        assert (p.keypoints[~p.present] == 0).all() and (p.scores[~p.present] == 0).all()


def test_identity_switches_and_fresh_ids_keep_ids_unique_per_frame():
    gt = _walker_gt(num_frames=100, persons=3)
    pred = simulate_sequence(gt, replace(OFF, id_switch=0.2, miss_person=0.05, new_id_after_miss=1.0),
                             np.random.default_rng(4))  # fmt: skip
    switched = fresh = False
    for f in range(100):
        ids = [p.track_id for p in pred.persons_in(f)]
        assert len(ids) == len(set(ids)) and all(0 <= i < 10000 for i in ids)
        for p in pred.persons_in(f):
            switched |= p.track_id != p.extra["sim_gt_track_id"] and p.track_id < 3
            fresh |= p.track_id >= 3
    assert switched and fresh


def test_simulated_files_are_valid_and_evaluate_below_ground_truth(tmp_path):
    from posefix_video.eval import evaluate_posetrack
    from posefix_video.io.validate import validate_posetrack18

    settings = posetrack_videos.VideoSettings(num_videos=1, num_frames=12, seed=5, width=320, height=240,
                                              write_mp4=False)  # fmt: skip
    (gt_path,) = posetrack_videos.write_posetrack_videos(tmp_path / "gt", settings)
    (pred_path,) = simulate_files([gt_path], tmp_path / "pred", TrackerSimSettings(), seed=0)
    assert pred_path.name == gt_path.name
    assert validate_posetrack18(pred_path, gt_path) == []
    gt_data, pred_data = json.loads(gt_path.read_text()), json.loads(pred_path.read_text())
    assert pred_data["images"] == gt_data["images"]
    for ann in pred_data["annotations"]:
        assert len(ann["scores"]) == 17 and ann["keypoints"][9:15] == [0] * 6  # ears not output
    result = evaluate_posetrack([gt_path], [pred_path])
    assert 30 < result.groups("ap")["Total"] < 99
    again = simulate_files([gt_path], tmp_path / "again", TrackerSimSettings(), seed=0)[0]
    assert again.read_bytes() == pred_path.read_bytes()
    seq = read_posetrack18(pred_path)
    assert seq.num_frames == 12


def test_non_posetrack_layout_is_refused():
    from posefix_video.errors import PosefixError
    from posefix_video.keypoints import COCO17

    with pytest.raises(PosefixError, match="PoseTrack18"):
        simulate_sequence(PoseSequence(name="x", layout=COCO17), OFF, np.random.default_rng(0))


def test_simulator_runs_on_real_posetrack_ground_truth(shared_data, tmp_path):
    """Real multi-frame GT (Bonn, converted to PoseTrack18; no nose labels): valid, evaluable predictions."""
    from posefix_video.eval import evaluate_posetrack
    from posefix_video.io.validate import validate_posetrack18

    gt_path = shared_data / "bonn_posetrack_cvpr17" / "annotations" / "060470979_bonn_test.json"
    (pred_path,) = simulate_files([gt_path], tmp_path, TrackerSimSettings(), seed=1)
    assert validate_posetrack18(pred_path, gt_path) == []
    gt, pred = read_posetrack18(gt_path), read_posetrack18(pred_path)
    assert 0.9 * gt.num_persons < pred.num_persons <= gt.num_persons
    for p in pred.persons():
        g = next(q for q in gt.frames[p.frame] if q.track_id == p.extra["sim_gt_track_id"])
        assert not (p.present & ~g.present).any()  # nothing output where the GT has no label (e.g. the nose)
    ap = evaluate_posetrack([gt_path], [pred_path]).groups("ap")["Total"]
    assert 40 < ap < 98
