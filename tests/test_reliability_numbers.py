"""Issue 15, class 2: no wrong numbers with exit 0. Booleans are not numbers; a keypoint coordinate beyond
+-MAX_COORDINATE px (1e7, 1e300) is refused by every reader and reported by the validator, naming the file, the
record and the joint; and the refiner never writes a person's joints into a crop box dragged far off the frame."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posefix_video.errors import InputError
from posefix_video.io import read_tracks
from posefix_video.io.checks import MAX_COORDINATE
from posefix_video.keypoints import POSETRACK18
from posefix_video.records import PersonRecord, PoseSequence

SEQ = "000001_mpiinew_test"


def _pt18(path, keypoints_values, scores=None):
    """A one-frame PoseTrack18 prediction file with one person."""
    data = {
        "images": [{"id": 10000010000, "file_name": f"images/val/{SEQ}/000000.jpg"}],
        "annotations": [{"image_id": 10000010000, "track_id": 3, "id": 1, "category_id": 1,
                         "keypoints": keypoints_values, "scores": scores if scores is not None else [0.9] * 17}],
        "categories": [{"id": 1, "name": "person", "keypoints": list(POSETRACK18.names)}],
    }
    path.write_text(json.dumps(data))
    return path


def _values(x=100.0):
    return [v for j in range(17) for v in (x + j, 50.0 + j, 1)]


@pytest.mark.parametrize("bad", [True, False])
def test_boolean_coordinate_refused(tmp_path, bad):
    values = _values()
    values[3] = bad  # joint 1's x
    path = _pt18(tmp_path / "p.json", values)
    with pytest.raises(InputError, match=r"`keypoints`\[3\] is (true|false), expected a number") as err:
        read_tracks(path)
    assert "track_id 3" in str(err.value) and str(path) in str(err.value)


def test_boolean_in_coco_results_and_scores_refused(tmp_path):
    values = _values()
    values[1] = True
    (tmp_path / "r.json").write_text(json.dumps([{"image_id": 0, "category_id": 1, "keypoints": values,
                                                   "score": 0.9}]))
    with pytest.raises(InputError, match="expected a number"):
        read_tracks(tmp_path / "r.json", frame_base=0)
    scores = [0.5] * 17
    scores[4] = True
    with pytest.raises(InputError, match=r"`scores`\[4\] is true"):
        read_tracks(_pt18(tmp_path / "s.json", _values(), scores))


@pytest.mark.parametrize("value", [1e7, -1e7, 1e300])
def test_far_coordinate_refused_by_reader_and_validator(tmp_path, value, capsys):
    from pipelines.validate import main as validate

    values = _values()
    values[3 * 5 + 1] = value  # joint 5's y
    path = _pt18(tmp_path / "p.json", values)
    with pytest.raises(InputError) as err:
        read_tracks(path)
    msg = str(err.value)
    assert str(path) in msg and "track_id 3" in msg and "keypoint 5 (left_shoulder)" in msg
    assert validate([str(path)]) == 1
    out = capsys.readouterr().out
    assert "keypoint 5 is at" in out and "track_id 3" in out
    assert validate([str(path), "--input"]) == 2


def test_far_coordinate_in_csv_refused(tmp_path):
    from posefix_video.io.csv_tracks import write_csv_tracks

    seq = PoseSequence(name="x", layout=POSETRACK18, num_frames=2)
    kp = np.tile(np.array([[100.0, 80.0]]), (17, 1))
    seq.add(PersonRecord(frame=0, track_id=1, keypoints=kp, scores=np.ones(17), present=np.ones(17, bool)))
    kp = kp.copy()
    kp[16, 0] = 2e7
    seq.add(PersonRecord(frame=1, track_id=1, keypoints=kp, scores=np.ones(17), present=np.ones(17, bool)))
    write_csv_tracks(seq, tmp_path / "t.csv")
    with pytest.raises(InputError, match=r"line 3: keypoint 16 \(right_ankle\) is at \(2e\+07, 80\)"):
        read_tracks(tmp_path / "t.csv", frame_base=0, layout="posetrack18")


def test_limit_keeps_real_coordinates(tmp_path):
    values = _values(x=-3000.0)  # well outside an ordinary frame, still a coordinate: kept
    values[0] = MAX_COORDINATE  # the limit itself is allowed
    seq = read_tracks(_pt18(tmp_path / "p.json", values))
    assert seq.persons_in(0)[0].keypoints[0, 0] == MAX_COORDINATE


@pytest.fixture(scope="module")
def refiner():
    from pathlib import Path

    from posefix_video.net.refiner import Refiner

    ckpt = Path(__file__).resolve().parents[1] / "assets" / "demo_checkpoint.pth"
    return Refiner.from_checkpoint(ckpt, device="cpu", flip_test=False, batch_size=8)


def _person(frame, x0, y0, far=None):
    kp = np.stack([np.linspace(x0, x0 + 40, 17), np.linspace(y0, y0 + 90, 17)], -1)
    present = np.ones(17, bool)
    if far is not None:
        kp[16] = far
    return PersonRecord(frame=frame, track_id=frame, keypoints=kp, scores=np.ones(17), present=present)


def test_refiner_passes_through_a_person_dragged_off_the_frame(refiner):
    frames = np.random.default_rng(0).integers(0, 255, (2, 240, 320, 3), dtype=np.uint8)
    good = _person(0, 120, 60)
    dragged = _person(1, 120, 60, far=(5e4, 6e4))  # below the readers' limit: the refiner's own guard
    out, counts = refiner.refine_records(frames, [good, dragged])
    assert counts == {"crop box far outside the frame": 1}
    np.testing.assert_array_equal(out[1].keypoints, dragged.keypoints)  # passed through exactly
    # refined joints stay inside the crop box the network saw (here: within the frame's neighbourhood)
    from posefix_video.net.crop import crop_boxes

    box = crop_boxes(good.keypoints[None], good.present[None], POSETRACK18, refiner.input_size)
    lo, hi = box.centre[0] - box.size[0] / 2, box.centre[0] + box.size[0] / 2
    used = POSETRACK18.used_mask
    assert ((out[0].keypoints[used] >= lo - 1) & (out[0].keypoints[used] <= hi + 1)).all()
    assert not np.array_equal(out[0].keypoints, good.keypoints)


def test_refiner_passes_through_a_person_entirely_outside_the_frame(refiner):
    frames = np.zeros((1, 240, 320, 3), np.uint8)
    outside = _person(0, -900, -700)  # box ends at about x -830, y -580
    out, counts = refiner.refine_records(frames, [outside])
    assert counts == {"crop box far outside the frame": 1}
    np.testing.assert_array_equal(out[0].keypoints, outside.keypoints)
