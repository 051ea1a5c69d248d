"""PoseTrack 2018 reader and writer: real-file round trips, hand-written cases, track-id remapping."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from posefix_video.errors import InputError, PosefixError
from posefix_video.io import read_posetrack18, write_posetrack18
from posefix_video.keypoints import COCO17, POSETRACK18
from posefix_video.records import PersonRecord, PoseSequence

REAL_FILES = [
    "posetrack18_mmpose/annotations/val/003418_mpii_test.json",
    "posetrack18_mmpose/annotations/val/009473_mpii_test.json",
    "posetrack18_mmpose/annotations/val/012834_mpii_test.json",
    "bonn_posetrack_cvpr17/annotations/048242360_bonn_test.json",
    "bonn_posetrack_cvpr17/annotations/060470979_bonn_test.json",
]


def _person(frame, track_id, scale=1.0, scores=True, present=None):
    kp = (np.arange(34, dtype=np.float64).reshape(17, 2) + 1) * scale + frame
    pres = np.ones(17, bool) if present is None else present
    return PersonRecord(frame=frame, track_id=track_id, keypoints=kp, scores=np.full(17, 0.5) if scores else None,
                        present=pres)  # fmt: skip


def _pt18_file(tmp_path, annotations, names=POSETRACK18.names, n_images=2, name="000001_mpii_test.json"):
    images = [{"id": 10000010000 + i, "file_name": f"images/val/000001_mpii_test/{i:06d}.jpg"} for i in range(n_images)]
    cats = [{"id": 1, "name": "person", "keypoints": list(names)}]
    path = tmp_path / name
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": cats}))
    return path


@pytest.mark.parametrize("rel", REAL_FILES)
def test_real_file_round_trip_equal_content(shared_data, tmp_path, rel):
    src = shared_data / rel
    original = json.loads(src.read_text())
    seq = read_posetrack18(src)
    assert seq.layout is POSETRACK18
    assert seq.num_frames == len(original["images"])
    assert seq.num_persons == len(original["annotations"])
    out = tmp_path / src.name
    write_posetrack18(seq, out)
    written = json.loads(out.read_text())
    assert written["images"] == original["images"]
    assert written["categories"] == original["categories"]
    # Same persons in the same order; parsed JSON compares 750 == 750.0, so every field must match exactly.
    assert written["annotations"] == original["annotations"]
    assert "posefix" not in written  # nothing was renumbered


def test_real_file_fields(shared_data):
    seq = read_posetrack18(shared_data / "posetrack18_mmpose/annotations/val/009473_mpii_test.json")
    assert seq.name == "009473_mpii_test"
    assert seq.image_ids == [10094730000]
    assert seq.file_names == ["images/val/009473_mpii_test/000000.jpg"]
    p = seq.persons_in(0)[0]
    assert p.track_id == 0 and p.scores is None
    # First annotation: nose (750, 297.5) labeled, left ear (0, 0, 0) absent.
    assert p.keypoints[0].tolist() == [750, 297.5] and p.present[0]
    assert not p.present[3] and not p.present[4]
    assert p.present.sum() == 14  # num_keypoints of the file
    assert p.extra["bbox_head"] == [648, 253, 138, 103] and p.extra["num_keypoints"] == 14
    assert p.extra["iscrowd"] is False and p.extra["id"] == 1009473000000
    np.testing.assert_array_equal(p.box, [631.5, 167.77146757999992, 351.0, 751.4322540400001])


def test_bonn_frames_are_image_positions(shared_data):
    seq = read_posetrack18(shared_data / "bonn_posetrack_cvpr17/annotations/060470979_bonn_test.json")
    assert seq.num_frames == 41 and sorted(seq.frames) == list(range(41))
    assert all(len(seq.persons_in(f)) == 4 for f in range(41))
    assert [p.track_id for p in seq.persons_in(40)] == [0, 1, 2, 3]


def test_prediction_scores_and_score_round_trip(tmp_path):
    kp = [float(i + 1) for i in range(51)]
    ann = {"image_id": 10000010001, "track_id": 7, "keypoints": kp, "scores": [0.1 * i for i in range(17)],
           "score": 0.9, "bbox_head": [1, 2, 3, 4]}  # fmt: skip
    path = _pt18_file(tmp_path, [ann])
    seq = read_posetrack18(path)
    p = seq.persons_in(1)[0]
    assert p.person_score == 0.9 and p.scores[16] == pytest.approx(1.6)
    assert p.visibility[0] == 3.0 and p.keypoints[1].tolist() == [4.0, 5.0]
    out = tmp_path / "out.json"
    data = write_posetrack18(seq, out)
    a = json.loads(out.read_text())["annotations"][0]
    assert a["keypoints"] == kp and a["scores"] == ann["scores"] and a["score"] == 0.9 and a["track_id"] == 7
    assert a["id"] == 10000010001 * 100  # synthesised annotation id: image_id*100 + index in frame
    assert data["categories"][0]["keypoints"] == list(POSETRACK18.names)


def test_synthesised_images_for_sequence_without_images(tmp_path, caplog):
    seq = PoseSequence(name="my_clip", layout=POSETRACK18, num_frames=3)
    seq.add(_person(2, 5))
    with caplog.at_level(logging.WARNING):
        data = write_posetrack18(seq, tmp_path / "x.json")
    assert "not poseval-parsable" in caplog.text
    names = [img["file_name"] for img in data["images"]]
    assert names == [f"images/000000_mpiinew_test/{i:06d}.jpg" for i in range(3)]
    assert [img["id"] for img in data["images"]] == [30000000000, 30000000001, 30000000002]
    assert data["annotations"][0]["image_id"] == 30000000002

    seq.name = "000342_bonn_train"
    data = write_posetrack18(seq, tmp_path / "y.json")
    assert data["images"][1]["id"] == 2 * 10**10 + 342 * 10**4 + 1
    assert data["images"][1]["file_name"] == "images/000342_bonn_train/000001.jpg"
    with pytest.raises(PosefixError, match="not poseval-parsable"):
        write_posetrack18(seq, tmp_path / "z.json", seq_name="clip")


def test_absent_joints_written_as_zero_triplets(tmp_path):
    present = np.ones(17, bool)
    present[[3, 4, 9]] = False
    seq = PoseSequence(name="000001_mpii_test", layout=POSETRACK18, num_frames=1)
    seq.add(_person(0, 0, present=present))
    data = write_posetrack18(seq, tmp_path / "a.json")
    trip = np.asarray(data["annotations"][0]["keypoints"]).reshape(17, 3)
    assert (trip[[3, 4, 9]] == 0).all()
    assert (trip[[0, 5, 16], 2] == 1).all()  # no input v: present joints get v=1
    back = read_posetrack18(tmp_path / "a.json").persons_in(0)[0]
    np.testing.assert_array_equal(back.present, present)


def test_track_ids_kept_renumbered_and_fresh(tmp_path):
    seq = PoseSequence(name="000001_mpii_test", layout=POSETRACK18, num_frames=3)
    seq.add(_person(0, 12345))
    seq.add(_person(0, 3))
    seq.add(_person(1, 3))
    seq.add(_person(1, None))
    seq.add(_person(2, 12345))
    seq.add(_person(2, None))
    out = tmp_path / "t.json"
    data = write_posetrack18(seq, out)
    ids = [(a["image_id"] % 10, a["track_id"]) for a in data["annotations"]]
    # 12345 >= 10000 forces renumbering by first appearance: 12345 -> 0, 3 -> 1; the two id-less persons get 2, 3.
    assert ids == [(0, 0), (0, 1), (1, 1), (1, 2), (2, 0), (2, 3)]
    assert data["posefix"]["track_id_map"] == [[12345, 0], [3, 1]]
    assert data["posefix"]["fresh_track_ids"] == 2
    # Valid ids are kept as they are; fresh ones continue above the largest.
    seq2 = PoseSequence(name="000001_mpii_test", layout=POSETRACK18, num_frames=1)
    seq2.add(_person(0, 41))
    seq2.add(_person(0, None))
    data2 = write_posetrack18(seq2, tmp_path / "u.json")
    assert [a["track_id"] for a in data2["annotations"]] == [41, 42]


def test_coco_layout_refused_or_converted(tmp_path):
    seq = PoseSequence(name="000001_mpii_test", layout=COCO17, num_frames=1)
    seq.add(_person(0, 1))
    with pytest.raises(PosefixError, match="coco17 layout"):
        write_posetrack18(seq, tmp_path / "c.json")
    assert not (tmp_path / "c.json").exists()
    data = write_posetrack18(seq, tmp_path / "c.json", convert_coco=True)
    trip = np.asarray(data["annotations"][0]["keypoints"]).reshape(17, 3)
    assert (trip[1:5] == 0).all() and trip[0, 0] == 1.0 and trip[5, 0] == 11.0
    assert data["annotations"][0]["scores"][1] == 0.0


def test_persons_beyond_the_image_list_refused(tmp_path):
    seq = PoseSequence(name="000001_mpii_test", layout=POSETRACK18, num_frames=2)
    seq.add(_person(5, 1))
    with pytest.raises(PosefixError, match="frame 5"):
        write_posetrack18(seq, tmp_path / "b.json")
    assert not (tmp_path / "b.json").exists()


@pytest.mark.parametrize(
    "ann, message",
    [
        ({"image_id": 10000010000, "keypoints": [1] * 51}, "without `track_id`"),
        ({"image_id": 10000010000, "track_id": 1, "keypoints": [1] * 50}, "has 50 values, expected 51"),
        ({"image_id": 10000010000, "track_id": 1, "keypoints": [1] * 50 + ["7"]}, r"`keypoints`\[50\] is \"7\""),
        ({"image_id": 10000010000, "track_id": 1, "keypoints": [1] * 50 + [float("nan")]}, "finite"),
        ({"image_id": 99, "track_id": 1, "keypoints": [1] * 51}, "image_id 99 is not the id"),
        ({"image_id": 10000010000, "track_id": "a", "keypoints": [1] * 51}, "expected an integer"),
        ({"image_id": 10000010000, "track_id": 1, "keypoints": [1] * 51, "scores": [1] * 3}, "`scores` has 3"),
    ],
)
def test_bad_annotations(tmp_path, ann, message):
    path = _pt18_file(tmp_path, [ann])
    with pytest.raises(InputError, match=message) as err:
        read_posetrack18(path)
    assert str(path) in str(err.value) and "annotations[0]" in str(err.value)


def test_duplicate_track_in_frame(tmp_path):
    ann = {"image_id": 10000010001, "track_id": 4, "keypoints": [1] * 51}
    path = _pt18_file(tmp_path, [ann, dict(ann)])
    with pytest.raises(InputError, match=r"annotations\[1\].*track_id 4 appears twice in frame 1.*annotations\[0\]"):
        read_posetrack18(path)


def test_categories_checked(tmp_path):
    with pytest.raises(InputError, match="has 15 names; 17 are required"):
        read_posetrack18(_pt18_file(tmp_path, [], names=POSETRACK18.names[:15]))
    seq = read_posetrack18(_pt18_file(tmp_path, [], names=COCO17.names))
    assert seq.layout is COCO17
    with pytest.raises(InputError, match="unexpected: \\['foo'\\]"):
        read_posetrack18(_pt18_file(tmp_path, [], names=POSETRACK18.names[:16] + ("foo",)))
