"""COCO OKS evaluation through pycocotools, on the real COCO and PoseTrack samples."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posefix_video.errors import InputError
from posefix_video.eval.coco import POSETRACK_OKS_SLOTS, evaluate_coco, evaluate_posetrack_coco, posetrack_to_coco


def _results(gt: dict, shift: float = 0.0) -> list[dict]:
    out = []
    for a in gt["annotations"]:
        if a["num_keypoints"] == 0:
            continue
        kp = np.array(a["keypoints"], float).reshape(17, 3)
        kp[:, 0] += shift
        out.append({"image_id": a["image_id"], "category_id": 1, "keypoints": kp.reshape(-1).tolist(), "score": 0.9})
    return out


def test_coco_gt_as_results_is_perfect_and_shift_lowers_ap(shared_data, tmp_path):
    gt_path = shared_data / "coco_mmpose" / "test_coco.json"
    gt = json.loads(gt_path.read_text())
    res = tmp_path / "res.json"
    res.write_text(json.dumps(_results(gt)))
    stats = evaluate_coco(gt_path, res)
    assert list(stats)[:3] == ["AP", "AP50", "AP75"]
    assert stats["AP"] == pytest.approx(1.0) and stats["AR"] == pytest.approx(1.0)
    res.write_text(json.dumps(_results(gt, shift=8.0)))
    shifted = evaluate_coco(gt_path, res)
    assert 0 < shifted["AP"] < 1 and shifted["AP50"] >= shifted["AP75"]


def test_coco_results_errors_name_the_record(shared_data, tmp_path):
    gt_path = shared_data / "coco_mmpose" / "test_coco.json"
    res = tmp_path / "res.json"
    res.write_text(json.dumps([{"image_id": 785, "keypoints": [1, 2, 3], "score": 1.0}]))
    with pytest.raises(InputError, match=r"results\[0\].*51 numbers"):
        evaluate_coco(gt_path, res)


def test_posetrack_files_drop_the_ears(shared_data, tmp_path):
    gts = sorted((shared_data / "posetrack18_mmpose" / "annotations" / "val").glob("*.json"))
    preds = []
    for g in gts:
        data = json.loads(g.read_text())
        for a in data["annotations"]:
            a["scores"] = [0.8] * 17
        p = tmp_path / g.name
        p.write_text(json.dumps(data))
        preds.append(p)
    coco_gt, results, labeled = posetrack_to_coco(gts, preds)
    assert len(POSETRACK_OKS_SLOTS) == 15 and 3 not in POSETRACK_OKS_SLOTS and 4 not in POSETRACK_OKS_SLOTS
    assert len(coco_gt["annotations"]) == 14 and len(results) == 14 and len(labeled) == 3
    assert all(len(r["keypoints"]) == 45 for r in results)
    stats = evaluate_posetrack_coco(gts, preds)
    assert stats["AP"] == pytest.approx(1.0)
    # Move every prediction by 20 px: OKS falls, so does AP.
    for p in preds:
        data = json.loads(p.read_text())
        for a in data["annotations"]:
            a["keypoints"] = [v + 20 if k % 3 == 0 and v else v for k, v in enumerate(a["keypoints"])]
        p.write_text(json.dumps(data))
    assert evaluate_posetrack_coco(gts, preds)["AP"] < 0.9
