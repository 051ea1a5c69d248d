"""read_tracks: each format on small hand-written files, frame-base rules, and round trips through PoseTrack18."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from posefix_video.errors import InputError
from posefix_video.io import read_tracks, write_coco_results, write_csv_tracks, write_posetrack18
from posefix_video.keypoints import COCO17, POSETRACK18


def _kps(seed: float, absent=(3,)) -> list[float]:
    trip = np.stack([np.arange(17) * 10.0 + seed, np.arange(17) * 5.0 + 2 * seed, np.full(17, 0.75)], axis=1)
    trip[list(absent)] = 0.0
    return trip.ravel().tolist()


def _write(tmp_path, name, content) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def _csv_line(frame, tid, seed=1.0) -> str:
    return f"{frame},{tid}," + ",".join(repr(v) for v in _kps(seed))


# ------------------------------------------------------------------------------------------------ formats


def test_coco_results_int_ids(tmp_path):
    data = [{"image_id": 0, "category_id": 1, "keypoints": _kps(1), "score": 0.8, "track_id": 4},
            {"image_id": 2, "category_id": 1, "keypoints": _kps(2), "score": 0.7, "bbox": [1, 2, 3, 4]}]  # fmt: skip
    seq = read_tracks(_write(tmp_path, "r.json", data))
    assert seq.source_format == "coco" and seq.layout is COCO17
    assert sorted(seq.frames) == [0, 2]
    a, b = seq.persons_in(0)[0], seq.persons_in(2)[0]
    assert a.track_id == 4 and b.track_id is None and a.person_score == 0.8
    assert a.keypoints[1].tolist() == [11.0, 7.0] and a.scores[1] == 0.75  # v is the joint score
    assert not a.present[3] and a.present.sum() == 16
    assert b.box.tolist() == [1, 2, 3, 4] and a.extra == {"category_id": 1, "image_id": 0}


def test_coco_results_posetrack_ids_and_file_names(tmp_path):
    data = [{"image_id": 10034180007, "keypoints": _kps(1)}, {"image_id": 10034180002, "keypoints": _kps(1)}]
    seq = read_tracks(_write(tmp_path, "pt.json", data), frame_base=1)  # PoseTrack ids ignore the frame base
    assert sorted(seq.frames) == [2, 7]
    data = [{"image_id": "images/val/x/000004.jpg", "keypoints": _kps(1)}, {"image_id": "000000.jpg",
                                                                            "keypoints": _kps(1)}]  # fmt: skip
    assert sorted(read_tracks(_write(tmp_path, "fn.json", data)).frames) == [0, 4]


def test_coco_layout_option(tmp_path):
    path = _write(tmp_path, "r.json", [{"image_id": 0, "keypoints": _kps(1)}])
    assert read_tracks(path, layout="posetrack18").layout is POSETRACK18


def test_alphapose_idx_and_file_names(tmp_path):
    data = [{"image_id": "1.jpg", "category_id": 1, "keypoints": _kps(1), "score": 2.1, "box": [0, 0, 5, 5],
             "idx": [[3.0], [3.0]]},
            {"image_id": "2.jpg", "category_id": 1, "keypoints": _kps(2), "score": 2.0, "idx": [2.6]},
            {"image_id": "2.jpg", "category_id": 1, "keypoints": _kps(3), "score": 2.0, "idx": 5}]  # fmt: skip
    seq = read_tracks(_write(tmp_path, "alphapose-results.json", data))
    assert seq.source_format == "alphapose"
    # "1.jpg" is the smallest frame and the count is unknown: 1-based.
    assert sorted(seq.frames) == [0, 1]
    assert [p.track_id for p in seq.persons()] == [3, 3, 5]
    assert seq.persons_in(0)[0].box.tolist() == [0, 0, 5, 5]


def test_csv_with_and_without_header(tmp_path):
    body = "\n".join([_csv_line(0, 1, 1.0), _csv_line(0, "", 2.0), "", "# comment", _csv_line(3, -1, 3.0)])
    from posefix_video.io.csv_tracks import CSV_HEADER

    for text in (body, ",".join(CSV_HEADER) + "\n" + body):
        seq = read_tracks(_write(tmp_path, "t.csv", text))
        assert seq.source_format == "csv" and sorted(seq.frames) == [0, 3]
        assert [p.track_id for p in seq.persons()] == [1, None, None]
        p = seq.persons_in(3)[0]
        assert p.keypoints[2].tolist() == [23.0, 16.0] and p.scores[2] == 0.75 and not p.present[3]


def test_posetrack17(tmp_path):
    points = [{"id": [13], "x": [100.0], "y": [50.0], "score": [0.9]},
              {"id": [12], "x": [101.0], "y": [60.0], "score": [0.8]},
              {"id": [0], "x": [90.0], "y": [300.0], "score": [0.7]}]  # fmt: skip
    rect = {"x1": [90], "y1": [40], "x2": [110], "y2": [70], "score": [0.95], "track_id": [6],
            "annopoints": [{"point": points}]}  # fmt: skip
    data = {"annolist": [{"image": [{"name": "images/bonn/000342_mpii/00000001.jpg"}], "annorect": []},
                         {"image": [{"name": "images/bonn/000342_mpii/00000002.jpg"}], "annorect": [rect]}]}
    seq = read_tracks(_write(tmp_path, "pt17.json", data))
    assert seq.source_format == "posetrack17" and seq.layout is POSETRACK18 and seq.num_frames == 2
    p = seq.persons_in(1)[0]
    assert p.track_id == 6 and p.person_score == 0.95
    assert np.flatnonzero(p.present).tolist() == [0, 1, 16]  # nose, head_bottom (neck), right_ankle
    assert p.keypoints[16].tolist() == [90.0, 300.0] and p.scores[1] == 0.8
    assert p.extra["bbox_head"] == [90, 40, 20, 30]


def test_forced_format(tmp_path):
    path = _write(tmp_path, "r.txt", [{"image_id": 0, "keypoints": _kps(1), "idx": 1}])
    assert read_tracks(path, format="coco").persons_in(0)[0].track_id is None
    assert read_tracks(path, format="alphapose").persons_in(0)[0].track_id == 1
    with pytest.raises(InputError, match="unknown format 'motchallenge'"):
        read_tracks(path, format="motchallenge")


# ------------------------------------------------------------------------------------------------ frame base


def _frames(tmp_path, numbers, **kw):
    text = "\n".join(_csv_line(n, i) for i, n in enumerate(numbers))
    return sorted(read_tracks(_write(tmp_path, "fb.csv", text), **kw).frames)


def test_frame_base_explicit(tmp_path):
    assert _frames(tmp_path, [1, 2], frame_base=0) == [1, 2]
    assert _frames(tmp_path, [1, 2], frame_base=1) == [0, 1]
    with pytest.raises(InputError, match=r"line 1: frame 0 gives frame index -1 < 0 \(a frame 0 in a file read as"):
        _frames(tmp_path, [0, 2], frame_base=1)


@pytest.mark.parametrize(
    "numbers, num_frames, expected, reason",
    [
        ([0, 4], None, [0, 4], "read as 0-based (the smallest frame number is 0)"),
        ([0, 10], 11, [0, 10], "read as 0-based (the smallest frame number is 0)"),
        ([3, 10], 10, [2, 9], "read as 1-based (the largest frame number equals the frame count 10)"),
        ([1, 5], None, [0, 4], "read as 1-based (the smallest frame number is 1 and the frame count is unknown)"),
        ([1, 5], 10, [0, 4], "read as 1-based (the smallest frame number is 1 (a guess"),
        ([3, 5], None, [3, 5], "read as 0-based (a GUESS"),
    ],
)
def test_frame_base_auto(tmp_path, caplog, numbers, num_frames, expected, reason):
    with caplog.at_level(logging.INFO, logger="posefix_video.io.checks"):
        assert _frames(tmp_path, numbers, num_frames=num_frames) == expected
    assert reason in caplog.text and "fb.csv" in caplog.text
    certain = "smallest frame number is 0" in reason or "equals the frame count" in reason
    assert caplog.records[-1].levelno == (logging.INFO if certain else logging.WARNING)  # a guess is a warning


def test_frame_beyond_count(tmp_path):
    with pytest.raises(InputError, match=r"line 2: frame index 12 is beyond the video's 11 frames"):
        _frames(tmp_path, [0, 12], num_frames=11)


# ------------------------------------------------------------------------------------------------ round trips


def _same_poses(a, b):
    pa, pb = list(a.persons()), list(b.persons())
    assert [(p.frame, p.track_id) for p in pa] == [(p.frame, p.track_id) for p in pb]
    for x, y in zip(pa, pb):
        np.testing.assert_array_equal(x.present, y.present)
        np.testing.assert_allclose(x.keypoints, y.keypoints)
        np.testing.assert_allclose(x.scores, y.scores)


@pytest.mark.parametrize("fmt", ["csv", "coco", "alphapose"])
def test_round_trip_through_posetrack18(tmp_path, fmt):
    if fmt == "csv":
        src = _write(tmp_path, "in.csv", "\n".join([_csv_line(0, 3, 1.0), _csv_line(0, 8, 2.0), _csv_line(2, 3)]))
    else:
        key = "idx" if fmt == "alphapose" else "track_id"
        src = _write(tmp_path, "in.json", [{"image_id": 0, "keypoints": _kps(1), key: 3},
                                           {"image_id": 0, "keypoints": _kps(2), key: 8},
                                           {"image_id": 2, "keypoints": _kps(1), key: 3}])  # fmt: skip
    seq = read_tracks(src, layout="posetrack18", num_frames=4)
    assert seq.source_format == fmt
    out = tmp_path / "000007_mpiinew_test.json"
    write_posetrack18(seq, out)
    back = read_tracks(out)
    assert back.num_frames == 4 and back.source_format == "posetrack18"
    _same_poses(seq, back)


def test_coco_and_csv_writers_round_trip(tmp_path):
    data = [{"image_id": 5, "category_id": 1, "keypoints": _kps(1), "score": 0.5, "track_id": 2},
            {"image_id": 7, "category_id": 1, "keypoints": _kps(2), "score": 0.6, "track_id": 2}]  # fmt: skip
    seq = read_tracks(_write(tmp_path, "in.json", data), frame_base=0)
    written = write_coco_results(seq, tmp_path / "out.json")
    assert [e["image_id"] for e in written] == [5, 7]  # original ids given back
    assert written[0]["keypoints"] == data[0]["keypoints"] and written[0]["score"] == 0.5
    _same_poses(seq, read_tracks(tmp_path / "out.json", frame_base=0))
    write_csv_tracks(seq, tmp_path / "out.csv")
    _same_poses(seq, read_tracks(tmp_path / "out.csv", frame_base=0))
    ids = write_coco_results(list(seq.persons()), tmp_path / "o2.json", image_ids={5: 100, 7: 200})
    assert [e["image_id"] for e in ids] == [100, 200]
