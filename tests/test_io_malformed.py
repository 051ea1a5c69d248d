"""Malformed inputs: each gives a specific message naming the file, the record and the problem; via the CLI,
exit 2 and no traceback."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from posefix_video.errors import InputError
from posefix_video.io import read_tracks
from posefix_video.keypoints import COCO17, POSETRACK18

REPO = Path(__file__).resolve().parents[1]
KP = [10.0, 20.0, 0.9] * 17


def _pt18(annotations, names=POSETRACK18.names):
    images = [{"id": 10000010000 + i, "file_name": f"images/val/000001_mpii_test/{i:06d}.jpg"} for i in range(2)]
    return json.dumps({"images": images, "annotations": annotations,
                       "categories": [{"id": 1, "name": "person", "keypoints": list(names)}]})  # fmt: skip


def _coco(*entries):
    return json.dumps(list(entries))


def _csv(*rows):
    return "\n".join(rows)


ROW = "0,1," + ",".join(["1.5"] * 51)

# (file name, content, read_tracks kwargs, regex the message must match after the file name)
CASES = {
    "truncated_json": ("t.json", _coco({"image_id": 0, "keypoints": KP})[:-20], {},
                       r"invalid JSON at line 1, column \d+: .*\(the file looks truncated\)"),
    "empty_file": ("e.json", "  \n", {}, "the file is empty"),
    "wrong_keypoint_count": ("k.json", _coco({"image_id": 0, "keypoints": KP[:-3]}), {},
                             r"entry \[0\] \(image_id 0\): `keypoints` has 48 values, expected 51"),
    "nan": ("n.json", _coco({"image_id": 0, "keypoints": KP[:-1] + [float("nan")]}), {},
            r"entry \[0\] \(image_id 0\): `keypoints`\[50\] is nan, expected a finite number"),
    "infinite": ("i.json", _coco({"image_id": 3, "keypoints": [float("inf")] + KP[1:]}), {},
                 r"entry \[0\] \(image_id 3\): `keypoints`\[0\] is inf, expected a finite number"),
    "string_in_keypoints": ("s.json", _coco({"image_id": 0, "keypoints": KP[:4] + ["12"] + KP[5:]}), {},
                            r"entry \[0\] \(image_id 0\): `keypoints`\[4\] is \"12\", expected a number"),
    "null_in_keypoints": ("z.json", _pt18([{"image_id": 10000010000, "track_id": 1, "keypoints": [None] + KP[1:]}]),
                          {}, r"annotations\[0\] \(image_id 10000010000, track_id 1\): `keypoints`\[0\] is null"),
    "duplicate_track": ("d.json", _coco({"image_id": 1, "keypoints": KP, "track_id": 2},
                                        {"image_id": 1, "keypoints": KP, "track_id": 2}), {},
                        r"entry \[1\] \(image_id 1\): track_id 2 appears twice in frame 0 \(first at entry \[0\]"),
    "negative_frame": ("f.json", _coco({"image_id": -4, "keypoints": KP}), {"frame_base": 0},
                       r"entry \[0\] \(image_id -4\): frame -4 gives frame index -4 < 0"),
    "frame_beyond_count": ("g.csv", _csv(ROW, "9,1," + ",".join(["1"] * 51)), {"num_frames": 5},
                           r"line 2: frame index 9 is beyond the video's 5 frames"),
    "unknown_text_format": ("u.txt", "hello world\n", {}, r"unknown format: not JSON"),
    "unknown_json_format": ("v.json", '{"foo": 1, "bar": []}', {},
                            r"unknown JSON format: an object with keys foo, bar"),
    "mot_txt": ("mot.txt", "1,1,10,20,30,40,0.9,-1,-1,-1\n2,1,11,21,30,x,0.9,-1,-1,-1\n", {},
                r"line 2: column `bb_height` is 'x', expected a number"),
    "coco_detections": ("det.json", _coco({"image_id": 1, "category_id": 1, "bbox": [1, 2, 3], "score": 0.9}), {},
                        r"entry \[0\] \(image_id 1\): `bbox` has 3 values, expected 4"),
    "alphapose_26": ("ap.json", _coco({"image_id": "0.jpg", "keypoints": [1.0] * 78, "idx": 1, "box": [0, 0, 1, 1]}),
                     {}, r"entry \[0\] \(image_id '0.jpg'\): AlphaPose output with 26 keypoints \(Halpe-26\)"),
    "csv_columns": ("c.csv", _csv(ROW, "1,1,2,3"), {},
                    r"line 2: 4 columns, expected 53 \(frame, track_id, then x, y, score for 17 joints\)"),
    "csv_string": ("c2.csv", _csv(ROW.replace("0,1,1.5", "0,1,abc", 1)), {},
                   r"line 1: column `nose_x` is 'abc', expected a number"),
    "pt18_coco_names_wrong_count": ("w.json", _pt18([], names=COCO17.names[:15]), {},
                                    r"`categories\[0\].keypoints` has 15 names; 17 are required"),
    "pt18_missing_track_id": ("m.json", _pt18([{"image_id": 10000010001, "keypoints": KP}]), {},
                              r"annotations\[0\] \(image_id 10000010001, track_id None\): annotation without "
                              r"`track_id`"),
    "pt18_unknown_image": ("x.json", _pt18([{"image_id": 5, "track_id": 0, "keypoints": KP}]), {},
                           r"annotations\[0\] .*image_id 5 is not the id of any entry of `images`"),
    "alphapose_bad_idx": ("bi.json", _coco({"image_id": "1.jpg", "keypoints": KP, "idx": ["a"]}), {},
                          r"entry \[0\] \(image_id '1.jpg'\): `idx` is \['a'\]"),
    "image_id_not_a_frame": ("nf.json", _coco({"image_id": "frame_a.jpg", "keypoints": KP}), {},
                             r"image_id 'frame_a.jpg' does not name a frame"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_message(tmp_path, case):
    name, content, kwargs, pattern = CASES[case]
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError) as err:
        read_tracks(path, **kwargs)
    message = str(err.value)
    assert message.startswith(f"{path}: "), message
    assert re.search(pattern, message), message


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="nope.json: file not found"):
        read_tracks(tmp_path / "nope.json")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pipelines.validate", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.mark.parametrize("case", ["truncated_json", "mot_txt", "alphapose_26", "csv_columns"])
def test_malformed_through_cli(tmp_path, case):
    name, content, _, pattern = CASES[case]
    path = tmp_path / name
    path.write_text(content)
    run = _cli(path, "--input")
    assert run.returncode == 2
    assert "Traceback" not in run.stderr and str(path) in run.stderr
    assert re.search(pattern, run.stderr), run.stderr


def test_cli_input_ok_and_frame_base_warning(tmp_path):
    path = tmp_path / "ok.csv"
    path.write_text(_csv("1,1," + ",".join(["1.5"] * 51), "2,1," + ",".join(["1.5"] * 51)))
    run = _cli(path, "--input")
    assert run.returncode == 0, run.stderr
    assert "read as 1-based" in run.stderr and "OK: csv, 2 persons on 2 frames" in run.stderr
