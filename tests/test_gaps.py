"""Gap filling (video/gaps.py) and `refine_video(fill_gaps=N)`: interpolated inputs, flags, counts, validity."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

import numpy as np
import pytest

from posefix_video.demo import DEMO_CHECKPOINT, ClipSpec, load_demo_refiner, make_clip, simulate_tracks
from posefix_video.errors import PosefixError
from posefix_video.io.posetrack18 import read_posetrack18
from posefix_video.io.validate import validate_posetrack18
from posefix_video.keypoints import POSETRACK18
from posefix_video.records import PersonRecord, PoseSequence
from posefix_video.synthetic.tracker_sim import TrackerSimSettings
from posefix_video.video.gaps import FILLED_KEY, drop_weak_fills, gap_records, with_records
from posefix_video.video.refine_video import refine_video


def _rec(frame, track, x, present=None, box=None, score=0.8):
    kp = np.stack([np.full(17, float(x)), np.arange(17, dtype=float) * 10 + 5], -1)
    present = np.ones(17, dtype=bool) if present is None else present
    return PersonRecord(frame=frame, track_id=track, keypoints=np.where(present[:, None], kp, 0.0),
                        scores=np.where(present, score, 0.0), present=present, box=box, person_score=score)


def _seq(records, frames=10):
    seq = PoseSequence(name="v", layout=POSETRACK18, num_frames=frames)
    for r in records:
        seq.add(r)
    return seq


def test_gap_records_interpolate_between_the_ends():
    hole = np.ones(17, dtype=bool)
    hole[5] = False
    seq = _seq([_rec(0, 1, 10.0, box=np.array([0, 0, 10, 20.0]), score=0.9),
                _rec(3, 1, 40.0, present=hole, box=np.array([30, 0, 10, 23.0]), score=0.6),
                _rec(0, 2, 100.0), _rec(1, 2, 100.0)])  # track 2 has no gap
    fills = gap_records(seq, max_gap=2)
    assert [(r.frame, r.track_id) for r in fills] == [(1, 1), (2, 1)]
    a, b = fills
    np.testing.assert_allclose(a.keypoints[0], [20.0, 5.0])  # 1/3 of the way from x=10 to x=40
    np.testing.assert_allclose(b.keypoints[0], [30.0, 5.0])
    np.testing.assert_allclose(a.box, [10, 0, 10, 21.0])
    assert not a.present[5] and a.present.sum() == 16  # a joint missing at one end stays missing
    np.testing.assert_allclose(a.scores[a.present], 0.6)  # the smaller end score
    assert a.person_score == pytest.approx(0.6)
    assert a.extra[FILLED_KEY] is True
    assert gap_records(seq, max_gap=1) == []  # the gap (2 frames) is longer than allowed
    assert gap_records(seq, max_gap=0) == []


def test_ambiguous_tracks_are_not_filled_and_ids_stay_unique():
    seq = _seq([_rec(0, 1, 10.0), _rec(0, 1, 50.0), _rec(2, 1, 10.0), _rec(0, 3, 5.0), _rec(4, 3, 5.0),
                _rec(2, 3, 5.0)])
    fills = gap_records(seq, max_gap=8)
    assert [(r.frame, r.track_id) for r in fills] == [(1, 3), (3, 3)]  # track 1 occurs twice in frame 0
    merged = with_records(seq, fills)
    assert merged.num_persons == seq.num_persons + 2
    for r in fills:  # a fill goes only where its track is absent
        ids = [p.track_id for p in merged.persons_in(r.frame)]
        assert ids.count(r.track_id) == 1


def test_drop_weak_fills_by_mean_confidence():
    fill = _rec(1, 1, 10.0)
    fill.extra[FILLED_KEY] = True
    conf = np.full(17, 0.5)
    conf[0] = 0.0
    fill.extra["posefix_confidence"] = conf.tolist()
    unrefined = _rec(2, 1, 10.0)
    unrefined.extra[FILLED_KEY] = True  # passed through by the refiner: no confidence, never written
    seq = _seq([_rec(0, 1, 10.0), fill, unrefined])
    mean = 16 * 0.5 / 17
    out, kept, dropped = drop_weak_fills(seq, mean - 1e-6)
    assert (kept, dropped, out.num_persons) == (1, 1, 2)
    out, kept, dropped = drop_weak_fills(seq, mean + 1e-6)
    assert (kept, dropped, out.num_persons) == (0, 2, 1)


@pytest.fixture(scope="module")
def gap_clip(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gaps")
    clip = make_clip(tmp / "clip", ClipSpec(seed=2100, frames=8, first_video=1))
    settings = dataclasses.replace(TrackerSimSettings.clean(), posefix=0.5, miss_person=0.2, miss_length=3.0,
                                   new_id_after_miss=0.0)
    tracks = simulate_tracks(clip, tmp / "tracks", settings, seed=3)
    return clip, tracks, load_demo_refiner(DEMO_CHECKPOINT, batch_size=16)


def test_refine_video_fills_gaps_validly(gap_clip, tmp_path):
    clip, tracks, refiner = gap_clip
    base = refine_video(clip.video, tracks, out=tmp_path / "base.json", refiner=refiner, seq_name=clip.gt.stem)
    s = refine_video(clip.video, tracks, out=tmp_path / "fill.json", refiner=refiner, seq_name=clip.gt.stem,
                     fill_gaps=8, fill_min_confidence=0.0)
    expected = len(gap_records(read_posetrack18(tracks), 8))
    assert expected > 0 and base.filled == 0
    # threshold 0: every fill the refiner could crop is written
    assert s.filled + s.fill_rejected == expected and s.filled > 0
    assert "gap fills:" in str(s)
    data = json.loads((tmp_path / "fill.json").read_text())
    filled = [a for a in data["annotations"] if a.get(FILLED_KEY)]
    assert len(filled) == s.filled
    assert len(data["annotations"]) == base.persons + s.filled
    assert validate_posetrack18(tmp_path / "fill.json", clip.gt) == []
    per_image = Counter((a["image_id"], a["track_id"]) for a in data["annotations"])
    assert max(per_image.values()) == 1  # unique ids per frame
    # a threshold above any confidence writes no fill: the same file as without gap filling
    s2 = refine_video(clip.video, tracks, out=tmp_path / "none.json", refiner=refiner, seq_name=clip.gt.stem,
                      fill_gaps=8, fill_min_confidence=1.01)
    assert s2.filled == 0 and s2.fill_rejected == expected
    assert json.loads((tmp_path / "none.json").read_text()) == json.loads((tmp_path / "base.json").read_text())


def test_resume_fingerprint_includes_the_fill_options(gap_clip, tmp_path):
    clip, tracks, refiner = gap_clip
    out = tmp_path / "out.json"

    def stop(k):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        refine_video(clip.video, tracks, out=out, refiner=refiner, seq_name=clip.gt.stem, batch_size=4,
                     chunk_frames_max=2, fill_gaps=4, on_chunk=stop)
    with pytest.raises(PosefixError, match="other inputs or options"):
        refine_video(clip.video, tracks, out=out, refiner=refiner, seq_name=clip.gt.stem, batch_size=4,
                     chunk_frames_max=2, fill_gaps=8, resume=True)
    with pytest.raises(KeyboardInterrupt):
        refine_video(clip.video, tracks, out=out, refiner=refiner, seq_name=clip.gt.stem, batch_size=4,
                     chunk_frames_max=2, fill_gaps=4, on_chunk=stop)
    s = refine_video(clip.video, tracks, out=out, refiner=refiner, seq_name=clip.gt.stem, batch_size=4,
                     chunk_frames_max=2, fill_gaps=4, resume=True)
    assert s.resumed_frames > 0
    full = refine_video(clip.video, tracks, out=tmp_path / "full.json", refiner=refiner, seq_name=clip.gt.stem,
                        batch_size=4, chunk_frames_max=2, fill_gaps=4)
    assert (s.filled, s.fill_rejected) == (full.filled, full.fill_rejected)
    assert json.loads(out.read_text()) == json.loads((tmp_path / "full.json").read_text())
