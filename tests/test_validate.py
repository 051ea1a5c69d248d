"""The poseval-compatibility validator: clean real files, every problem found with its location, CLI exit codes."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from posefix_video.io import read_tracks, write_posetrack18
from posefix_video.io.validate import check_posetrack18, file_name_problem, validate_posetrack18
from posefix_video.keypoints import COCO17, POSETRACK18

REPO = Path(__file__).resolve().parents[1]
REAL = ["posetrack18_mmpose/annotations/val/012834_mpii_test.json",
        "bonn_posetrack_cvpr17/annotations/060470979_bonn_test.json"]  # fmt: skip


def _pred():
    images = [{"id": 10000010000 + i, "file_name": f"images/val/000001_mpii_test/{i:06d}.jpg"} for i in range(3)]
    ann = {"image_id": 10000010001, "track_id": 1, "keypoints": [1.0] * 51, "scores": [0.5] * 17}
    return {"images": images, "annotations": [ann, dict(ann, track_id=2)],
            "categories": [{"id": 1, "name": "person", "keypoints": list(POSETRACK18.names)}]}  # fmt: skip


@pytest.mark.parametrize("rel", REAL)
def test_written_real_files_pass(shared_data, tmp_path, rel):
    out = tmp_path / Path(rel).name
    write_posetrack18(read_tracks(shared_data / rel), out)
    assert validate_posetrack18(out) == []  # read as GT: scores [] and bbox_head everywhere
    assert validate_posetrack18(out, gt_path=shared_data / rel, kind="gt") == []


def test_clean_prediction():
    assert check_posetrack18(_pred(), "pred") == []


def test_every_problem_reported_with_location():
    data = _pred()
    data["categories"][0]["keypoints"] = list(COCO17.names)
    data["images"][2]["file_name"] = "images/clip/000002.jpg"
    a, b = data["annotations"]
    b["track_id"] = 1  # duplicate in frame
    a["keypoints"] = a["keypoints"][:-1] + [float("nan")]
    a["scores"] = []
    data["annotations"].append({"image_id": 7, "track_id": 10001, "keypoints": [0] * 51, "scores": [0] * 17})
    data["annotations"].append({"image_id": 10000010000, "keypoints": [0] * 51, "scores": [0] * 17})
    problems = [str(p) for p in check_posetrack18(data, "pred")]
    expected = [
        "categories[0].keypoints: lacks head_bottom, head_top (these are COCO names",
        "images[2] (images/clip/000002.jpg): folder 'clip' is not poseval-parsable",
        "images: 2 video folders",
        "annotations[0] (image_id 10000010001, track_id 1): `keypoints`[50] is nan, expected a finite number",
        "annotations[0] (image_id 10000010001, track_id 1): no `scores`",
        "annotations[1] (image_id 10000010001, track_id 1): track_id 1 already used in this frame by annotations[0]",
        "annotations[2] (image_id 7, track_id 10001): image_id 7 links to no entry of `images`",
        "annotations[2] (image_id 7, track_id 10001): track_id 10001 >= 10000",
        "annotations[3] (image_id 10000010000, track_id None): no `track_id`",
    ]
    for text in expected:
        assert any(p.startswith(text) for p in problems), (text, problems)
    assert len(problems) == len(expected)


def test_gt_needs_bbox_head_and_category_checks():
    data = _pred()
    for a in data["annotations"]:
        a["scores"] = []
    data["categories"].append({"name": "dog"})
    problems = [str(p) for p in check_posetrack18(data, "gt")]
    assert problems[0] == "categories: 2 entries, poseval requires exactly 1 (person)"
    assert sum("needs `bbox_head`" in p for p in problems) == 2
    data["categories"] = [{"name": "people", "keypoints": list(POSETRACK18.names[:16])}]
    problems = [str(p) for p in check_posetrack18(data, "gt")]
    assert "categories[0]: name is 'people', poseval requires 'person'" in problems
    assert "categories[0].keypoints: 16 names, poseval requires 15 or 17" in problems


def test_file_names():
    assert file_name_problem("images/val/000342_mpii_test/000012.jpg") is None
    assert file_name_problem("images/060470979_bonn_test/000000.jpg") is None
    assert "not a frame number" in file_name_problem("images/000001_mpiinew_test/frame.jpg")
    assert "not poseval-parsable" in file_name_problem("images/000001_coco_test/000001.jpg")
    assert ">= 10000" in file_name_problem("images/000001_mpiinew_test/012345.jpg")


def test_against_gt(tmp_path):
    gt, pred = _pred(), _pred()
    pred["images"] = list(reversed(pred["images"]))
    pred["images"].append({"id": 5, "file_name": "images/val/000001_mpii_test/000009.jpg"})
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "p.json").write_text(json.dumps(pred))
    problems = [str(p) for p in validate_posetrack18(tmp_path / "p.json", tmp_path / "gt.json")]
    assert problems[0].startswith("images: 4 frames, the ground truth has 3")
    assert problems[1].startswith("images[0]: file_name 'images/val/000001_mpii_test/000002.jpg', the ground truth")
    assert len(problems) == 3  # positions 0 and 2 differ, 1 matches


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pipelines.validate", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_cli_exit_codes(tmp_path):
    good = tmp_path / "000001_mpii_test.json"
    good.write_text(json.dumps(_pred()))
    run = _cli(good)
    assert run.returncode == 0 and "OK" in run.stderr
    bad = copy.deepcopy(_pred())
    bad["annotations"][1]["track_id"] = 1
    bad["annotations"][0]["scores"] = [0.5] * 3
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    run = _cli(tmp_path / "bad.json")
    assert run.returncode == 1
    assert run.stdout.count("bad.json: annotations[") == 2 and "2 problem(s)" in run.stderr
    (tmp_path / "cut.json").write_text(json.dumps(_pred())[:50])
    run = _cli(tmp_path / "cut.json")
    assert run.returncode == 2 and "cut.json: invalid JSON" in run.stderr and "Traceback" not in run.stderr
