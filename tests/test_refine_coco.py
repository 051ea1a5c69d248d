"""`python -m pipelines.refine_coco`: one output entry per input in input order, pass-through reasons, input scores
kept, OKS-NMS, AP before/after, errors; and refine_video on a frame folder giving the same keypoints."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipelines.refine_coco import main
from posefix_video.keypoints import COCO17
from posefix_video.video.refine_images import oks_nms

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo_checkpoint.pth"  # posetrack18, R-18 128x96
pytestmark = pytest.mark.skipif(not DEMO.is_file(), reason="demo checkpoint not built")


@pytest.fixture
def scene(tmp_path):
    """Two synthetic images, an annotation file with keypoint GT, and PoseTrack-layout results (scores lists)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    images, anns, results = [], [], []
    for k, (h, w) in enumerate([(240, 320), (200, 300)]):
        cv2.imwrite(str(folder / f"im{k}.png"), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        images.append({"id": 100 + k, "file_name": f"im{k}.png", "height": h, "width": w})
        for j in range(2):
            kp = np.column_stack([rng.uniform(80, 200, 17), rng.uniform(40, 180, 17), np.full(17, 2.0)])
            kp[3:5] = 0  # PoseTrack ears never labeled
            anns.append({"id": len(anns) + 1, "image_id": 100 + k, "category_id": 1, "iscrowd": 0,
                         "keypoints": kp.ravel().tolist(), "num_keypoints": 15, "area": 120.0 * 140.0,
                         "bbox": [80.0, 40.0, 120.0, 140.0]})
            noisy = kp.copy()
            noisy[:, :2] += rng.normal(0, 3, (17, 2))
            noisy[:, 2] = rng.uniform(0.2, 0.9, 17)
            noisy[3:5] = 0
            results.append({"image_id": 100 + k, "category_id": 1, "keypoints": noisy.ravel().tolist(),
                            "scores": noisy[:, 2].round(4).tolist(), "note": f"person {j}"})
    results.insert(1, {**results[0], "image_id": 999})  # not in the annotation file: passed through
    results.append({**results[2], "category_id": 2})  # not a person: passed through
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": images, "annotations": anns,
                               "categories": [{"id": 1, "name": "person"}]}))
    res = tmp_path / "results.json"
    res.write_text(json.dumps(results))
    return folder, ann, res, results


def _run(scene, tmp_path, *extra):
    folder, ann, res, _ = scene
    out = tmp_path / "out.json"
    rc = main([str(folder), "--ann", str(ann), "--results", str(res), "--checkpoint", str(DEMO), "-o", str(out),
               "--device", "cpu", "--no-progress", *extra])
    return rc, out


def test_one_entry_per_input_in_order_scores_kept(scene, tmp_path, capsys):
    rc, out = _run(scene, tmp_path)
    assert rc == 0
    inputs, written = scene[3], json.loads(out.read_text())
    assert len(written) == len(inputs)
    err = capsys.readouterr().err
    assert "refined 4 of 6 entries on 2 images" in err
    assert "1 (image_id not in the annotation file)" in err and "1 (category_id is not 1 (person))" in err
    assert "COCO OKS AP before" in err
    for src, got in zip(inputs, written):
        assert got["image_id"] == src["image_id"] and got.get("note") == src["note"]
        assert got["scores"] == src["scores"]  # input scores kept
        a, b = np.asarray(src["keypoints"]).reshape(17, 3), np.asarray(got["keypoints"]).reshape(17, 3)
        assert np.array_equal(a[:, 2], b[:, 2])
        if src["image_id"] == 999 or src["category_id"] != 1:
            assert got == src and "posefix_confidence" not in got
            continue
        assert len(got["posefix_confidence"]) == 17
        assert np.array_equal(b[3:5], a[3:5])  # ignored slots untouched
        assert not np.array_equal(b[5:, :2], a[5:, :2])  # refined
    moved = np.asarray(written[0]["keypoints"]).reshape(17, 3)[5:, :2]
    assert (np.round(moved, 3) != moved).any()  # full precision, not rounded


def test_oks_nms_option_removes_near_duplicates(scene, tmp_path, capsys):
    folder, ann, res, results = scene
    dup = dict(results[0])
    dup["scores"] = [s * 0.5 for s in dup["scores"]]  # lower score: the one suppressed
    res.write_text(json.dumps(results + [dup]))
    rc, out = _run(scene, tmp_path, "--oks-nms", "0.9")
    assert rc == 0
    written = json.loads(out.read_text())
    assert len(written) == len(results) and "removed by OKS-NMS: 1" in capsys.readouterr().err
    assert written[0]["scores"] == results[0]["scores"]


def test_oks_nms_hand_computed():
    kp = np.zeros((3, 17, 2))
    kp[1] = kp[0] + 0.5  # near-duplicate of 0
    kp[2] = kp[0] + 100  # far away
    keep = oks_nms(kp, np.array([0.9, 0.8, 0.7]), np.full(3, 1e4), COCO17.sigma_array, 0.9)
    assert keep.tolist() == [True, False, True]
    # OKS of 0 and 1: mean exp(-d^2 / (2 * area * (2 sigma)^2)), d^2 = 0.5 -> all > 0.99
    keep = oks_nms(kp, np.array([0.5, 0.8, 0.7]), np.full(3, 1e4), COCO17.sigma_array, 0.9)
    assert keep.tolist() == [False, True, True]


@pytest.mark.parametrize("case", ["missing image", "bad entry", "output is input"])
def test_errors_exit_2_without_output(scene, tmp_path, capsys, case):
    folder, ann, res, results = scene
    out = tmp_path / "out.json"
    if case == "missing image":
        os.remove(folder / "im1.png")
        expect = "im1.png: not found"
    elif case == "bad entry":
        results[2]["keypoints"] = results[2]["keypoints"][:50]
        res.write_text(json.dumps(results))
        expect = "entry [2] (image_id 100): `keypoints` has 50 values, expected 51"
    else:
        out = res
        expect = "-o"
    before = res.read_bytes()
    rc = main([str(folder), "--ann", str(ann), "--results", str(res), "--checkpoint", str(DEMO), "-o", str(out),
               "--device", "cpu", "--no-progress"])
    assert rc == 2 and expect in capsys.readouterr().err
    assert res.read_bytes() == before
    assert case == "output is input" or not out.exists()


def test_refine_video_on_a_frame_folder_gives_the_refine_coco_keypoints(shared_data, tmp_path):
    """The PoseTrack fixture frames as a frame folder (refine_video) and as still images (refine_coco), one refiner
    under the official test rules (whose crops are exact per person, whatever frames share a batch): the same
    keypoints (refine_video writes 0.01 px)."""
    from posefix_video.net.refiner import Refiner
    from posefix_video.video.refine_images import refine_coco
    from posefix_video.video.refine_video import refine_video

    ann = json.loads((shared_data / "posetrack18_mmpose/annotations/test_posetrack18_val.json").read_text())
    inputs = json.loads((shared_data / "official_posefix/inputs_PoseTrack.json").read_text())
    frames = tmp_path / "frames"
    frames.mkdir()
    frame_of = {}
    for k, im in enumerate(sorted(ann["images"], key=lambda im: im["id"])):
        os.symlink(shared_data / "posetrack18_mmpose" / im["file_name"], frames / f"{k:06d}.jpg")
        frame_of[im["id"]] = k
    tracks = [{**e, "image_id": frame_of[e["image_id"]]} for e in inputs]
    (tmp_path / "tracks.json").write_text(json.dumps(tracks))
    (tmp_path / "ann.json").write_text(json.dumps({"images": [{"id": k, "file_name": f"{k:06d}.jpg"}
                                                              for k in range(len(frame_of))]}))
    refiner = Refiner.from_checkpoint(DEMO, device="cpu", official_test=True)
    refine_coco(frames, tmp_path / "ann.json", tmp_path / "tracks.json", refiner, tmp_path / "coco.json")
    refine_video(frames, tmp_path / "tracks.json", None, tmp_path / "video.json", format="coco",
                 layout="posetrack18", refiner=refiner)
    coco = json.loads((tmp_path / "coco.json").read_text())
    video = json.loads((tmp_path / "video.json").read_text())["annotations"]
    by_frame = {}
    for a in sorted(video, key=lambda a: a["image_id"]):
        by_frame.setdefault(a["image_id"] % 10**4, []).append(np.asarray(a["keypoints"]).reshape(17, 3))
    compared = 0
    used = np.ones(17, dtype=bool)
    used[[3, 4]] = False  # PoseTrack ears: never refined
    for k in range(len(frame_of)):
        mine = [np.asarray(e["keypoints"]).reshape(17, 3) for e in coco if e["image_id"] == k]
        assert len(mine) == len(by_frame[k])
        for a, b in zip(mine, by_frame[k]):
            assert np.abs(a[used, :2] - b[used, :2]).max() <= 0.005 + 1e-9
            compared += 1
    assert compared == len(inputs)
