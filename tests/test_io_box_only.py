"""Box-only inputs (MOTChallenge text, COCO detections JSON, ultralytics detect/track labels): read as persons with a
box and every joint absent, person class only, frame bases as for the pose formats, mixed with poses where the
format allows; malformed versions named by file, record and problem."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from posefix_video.errors import InputError
from posefix_video.io import read_tracks

REPO = Path(__file__).resolve().parents[1]
KP = [10.0, 20.0, 0.9] * 17


def _write(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def _box_only(p):
    return p.box is not None and not p.present.any() and (p.keypoints == 0).all() and p.scores is None


def test_mot_results_are_1_based_with_ids_scores_and_no_id(tmp_path):
    path = _write(tmp_path, "track.txt", "1,3,10.5,20,30,40,0.9,-1,-1,-1\n2,3,11,21,30,40,0.8,-1,-1,-1\n"
                                         "\n2,-1,50,60,10,20,0.5,-1,-1,-1\n")
    seq = read_tracks(path)
    assert seq.source_format == "mot" and seq.meta["frame_base"] == 1
    persons = list(seq.persons())
    assert all(_box_only(p) for p in persons)
    assert [(p.frame, p.track_id, p.person_score) for p in persons] == [(0, 3, 0.9), (1, 3, 0.8), (1, None, 0.5)]
    assert persons[0].box.tolist() == [10.5, 20.0, 30.0, 40.0]
    # a frame 0 makes the file 0-based; an explicit frame base wins; 6 fields (no conf) are fine
    zero = read_tracks(_write(tmp_path, "z.txt", "0,1,1,2,3,4\n5,1,1,2,3,4\n"))
    assert sorted(zero.frames) == [0, 5] and zero.persons_in(0)[0].person_score is None
    assert sorted(read_tracks(path, frame_base=0).frames) == [1, 2]


def test_mot_ground_truth_keeps_person_classes_only(tmp_path):
    # frame, id, box, consider, class, visibility: 1 pedestrian, 3 car, 7 static person, 8 distractor
    path = _write(tmp_path, "gt.txt", "1,1,10,20,30,40,1,1,0.9\n1,2,10,20,30,40,0,3,1\n1,3,5,5,5,5,1,7,0.2\n"
                                      "2,4,1,1,1,1,0,8,0.5\n")
    seq = read_tracks(path)
    assert [p.track_id for p in seq.persons()] == [1, 3]
    assert seq.persons_in(0)[0].extra == {"consider": 1, "class": 1, "visibility": 0.9}
    assert seq.meta["skipped_classes"] == {3: 1, 8: 1}


def test_coco_detections_person_category_and_mixed_with_keypoints(tmp_path):
    data = [{"image_id": 0, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.9},
            {"image_id": 0, "category_id": 18, "bbox": [1, 2, 3, 4], "score": 0.8},  # a dog
            {"image_id": "images/000001.jpg", "category_id": 1, "bbox": [5, 6, 7, 8], "score": 0.7, "track_id": 4},
            {"image_id": 1, "category_id": 1, "keypoints": KP, "score": 0.6}]
    seq = read_tracks(_write(tmp_path, "det.json", data))
    assert seq.source_format == "coco" and seq.meta["skipped_categories"] == 1
    a, b = seq.persons_in(0)[0], seq.persons_in(1)
    assert _box_only(a) and a.box.tolist() == [1, 2, 3, 4] and a.person_score == 0.9
    assert _box_only(b[0]) and b[0].track_id == 4 and b[0].extra["image_id"] == "images/000001.jpg"
    assert b[1].present.all() and b[1].box is None  # the pose entry, as before


def test_ultralytics_detect_and_track_labels(tmp_path):
    d = tmp_path / "labels"
    d.mkdir()
    # track: cls cx cy w h conf id; class 2 (car) skipped
    (d / "clip_1.txt").write_text("0 0.5 0.5 0.2 0.4 0.91 7\n2 0.1 0.1 0.1 0.1 0.5 8\n")
    (d / "clip_3.txt").write_text("0 0.25 0.5 0.1 0.2 0.8 7\n")
    seq = read_tracks(d, image_size=(200, 100))
    assert seq.meta["frame_base"] == 1 and seq.meta["skipped_classes"] == {2: 1}
    p = seq.persons_in(0)[0]
    assert _box_only(p) and p.track_id == 7 and p.person_score == pytest.approx(0.91)
    assert p.box == pytest.approx([80.0, 30.0, 40.0, 40.0])  # centre (100, 50), size (40, 40)
    assert seq.persons_in(2)[0].box == pytest.approx([40.0, 40.0, 20.0, 20.0])
    # 6 values: a track id when integral on every 6-value line, else a confidence; 5 values: box only
    (d / "clip_1.txt").write_text("0 0.5 0.5 0.2 0.4 7\n0 0.1 0.1 0.1 0.1\n")
    (d / "clip_3.txt").write_text("0 0.25 0.5 0.1 0.2 9\n")
    seq = read_tracks(d, image_size=(200, 100))
    assert [(p.track_id, p.person_score) for p in seq.persons()] == [(7, None), (None, None), (9, None)]
    (d / "clip_3.txt").write_text("0 0.25 0.5 0.1 0.2 0.75\n")
    assert [p.person_score for p in read_tracks(d, image_size=(200, 100)).persons()] == [7.0, None, 0.75]


def test_ultralytics_folder_mixing_pose_and_detection_lines(tmp_path):
    d = tmp_path / "labels"
    d.mkdir()
    pose = " ".join(["0", "0.5", "0.5", "0.2", "0.4"] + ["0.5", "0.5", "0.9"] * 17 + ["3"])
    (d / "v_1.txt").write_text(pose + "\n0 0.2 0.2 0.1 0.1 0.6 4\n")
    seq = read_tracks(d, image_size=(100, 100))
    a, b = seq.persons_in(0)
    assert a.present.all() and a.track_id == 3 and a.keypoints[0].tolist() == [50.0, 50.0]
    assert _box_only(b) and b.track_id == 4


# (file name, content, read_tracks kwargs, regex the message must match after the file name)
CASES = {
    "mot_field_count": ("a.txt", "1,1,10,20,30,40,0.9\n1,2,10,20\n", {},
                        r"line 2: 4 fields; a MOTChallenge line has 6-10"),
    "mot_not_a_number": ("b.txt", "1,1,10,20,30,40,0.9,-1,-1,-1\n2,1,11,21,30,x,0.9,-1,-1,-1\n", {},
                         r"line 2: column `bb_height` is 'x', expected a number"),
    "mot_nan": ("c.txt", "1,1,10,nan,30,40,0.9\n", {}, r"line 1: column `bb_top` is nan, expected a finite number"),
    "mot_fractional_id": ("d.txt", "1,1.5,10,20,30,40,0.9\n", {}, r"line 1: column `id` is 1.5, expected an integer"),
    "mot_negative_size": ("e.txt", "1,1,10,20,-30,40,0.9\n", {},
                          r"line 1: box \[x, y, w, h\] = \[10.0, 20.0, -30.0, 40.0\] has a negative size"),
    "mot_huge_box": ("f.txt", "1,1,1e9,20,30,40,0.9\n", {}, r"line 1: box .* more than 100000 px from the frame"),
    "mot_duplicate_id": ("g.txt", "1,1,10,20,30,40,0.9\n1,1,50,20,30,40,0.9\n", {},
                         r"line 2: track_id 1 appears twice in frame 0 \(first at line 1\)"),
    "mot_beyond_video": ("h.txt", "1,1,10,20,30,40,0.9\n9,1,10,20,30,40,0.9\n", {"num_frames": 5},
                         r"line 2: frame index 8 is beyond the video's 5 frames"),
    "mot_frame_0_as_1_based": ("i.txt", "0,1,10,20,30,40,0.9\n", {"frame_base": 1},
                               r"line 1: frame 0 gives frame index -1 < 0 \(a frame 0 in a file read as 1-based\)"),
    "det_bbox_length": ("j.json", [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3], "score": 0.9}], {},
                        r"entry \[0\] \(image_id 1\): `bbox` has 3 values, expected 4"),
    "det_bbox_string": ("k.json", [{"image_id": 1, "category_id": 1, "bbox": [1, "2", 3, 4]}], {},
                        r"entry \[0\] \(image_id 1\): `bbox`\[1\] is \"2\", expected a number"),
    "det_negative_size": ("l.json", [{"image_id": 1, "bbox": [1, 2, 3, -4]}], {},
                          r"entry \[0\] \(image_id 1\): box .* has a negative size"),
    "det_no_bbox_no_keypoints": ("m.json", [{"image_id": 1, "bbox": [1, 2, 3, 4]}, {"image_id": 2, "score": 1}], {},
                                 r"entry \[1\] \(image_id 2\): entry without `keypoints` \(or, for a box-only "
                                 r"detection, `bbox`\)"),
    "det_bad_image_id": ("n.json", [{"image_id": "abc.jpg", "bbox": [1, 2, 3, 4]}], {},
                         r"entry \[0\] \(image_id 'abc.jpg'\): image_id 'abc.jpg' does not name a frame"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_box_files(tmp_path, case):
    name, content, kwargs, pattern = CASES[case]
    path = _write(tmp_path, name, content)
    with pytest.raises(InputError) as err:
        read_tracks(path, **kwargs)
    message = str(err.value)
    assert message.startswith(f"{path}: "), message
    assert re.search(pattern, message), message


@pytest.mark.parametrize("lines, message", [
    (["0 0.5 0.5 0.2 0.4 0.9 2.5"], r"v_1.txt: line 1: track id \(last column\) is 2.5, expected an integer"),
    (["0 0.5 0.5 0.2 -0.4 0.9 2"], r"v_1.txt: line 1: box \[x, y, w, h\] = .* has a negative size"),
    (["0 0.5 0.5 0.2 0.4 0.9 2", "0 0.5 abc 0.2 0.4 0.9 3"], r"v_1.txt: line 2: column 3 is 'abc'"),
    (["0 0.5 0.5 0.2 0.4 0.9 2", "0 0.5 0.5 0.2 0.4 0.9 2"], r"v_1.txt: line 2: track_id 2 appears twice in frame 0"),
    (["0 0.5 0.5 0.2"], r"v_1.txt: line 1: 4 columns; .* a detection line \(boxes only\) has 5-7"),
])  # fmt: skip
def test_malformed_ultralytics_detection_labels(tmp_path, lines, message):
    d = tmp_path / "labels"
    d.mkdir()
    (d / "v_1.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=message):
        read_tracks(d, format="ultralytics", image_size=(100, 100))


def test_validate_input_accepts_box_only_files(tmp_path):
    good = _write(tmp_path, "track.txt", "1,3,10,20,30,40,0.9,-1,-1,-1\n2,3,11,21,30,40,0.8,-1,-1,-1\n")
    bad = _write(tmp_path, "bad.txt", "1,3,10,20,30,40\n2,3,11,21,30\n")
    run = [subprocess.run([sys.executable, "-m", "pipelines.validate", str(p), "--input"], cwd=REPO,
                          capture_output=True, text=True, timeout=120) for p in (good, bad)]
    assert run[0].returncode == 0, run[0].stderr
    assert "OK: mot, 2 persons on 2 frames" in run[0].stderr and "2 with a box and no pose" in run[0].stderr
    assert run[1].returncode == 2 and "Traceback" not in run[1].stderr
    assert re.search(r"bad.txt: line 2: 5 fields; a MOTChallenge line has 6-10", run[1].stderr), run[1].stderr


def test_box_only_records_pass_the_refiner_untouched(tmp_path):
    """Without an initializer a box-only person has no joint to refine: passed through, counted, nothing raised."""
    torch = pytest.importorskip("torch")
    from posefix_video.config import ModelConfig
    from posefix_video.net.model import build_model
    from posefix_video.net.refiner import Refiner

    seq = read_tracks(_write(tmp_path, "t.txt", "1,1,10,20,30,40,0.9\n"))
    cfg = ModelConfig(depth=18, input_size=(64, 64), width=8, deconv_channels=16)
    torch.manual_seed(0)
    refiner = Refiner.from_model(build_model(cfg), cfg, device="cpu", flip_test=False, batch_size=2)
    out, counts = refiner.refine_records(np.zeros((1, 80, 80, 3), np.uint8), list(seq.persons()))
    assert len(out) == 1 and _box_only(out[0]) and sum(counts.values()) == 1
