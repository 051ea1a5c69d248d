"""COCO keypoint evaluation (OKS AP) through pycocotools' COCOeval, for COCO files and for PoseTrack files.

    stats = evaluate_coco("person_keypoints_val2017.json", "results.json")    # {"AP": ..., "AP50": ..., ...}
    stats = evaluate_posetrack_coco(gt_paths, pred_paths)                      # PoseTrack18 files, OKS AP

PoseTrack files are converted to COCO form with the PoseTrack18 OKS sigmas (`keypoints.POSETRACK18`). The two ear
slots are never labeled and have sigma 0, which would divide by zero inside OKS, so they are dropped: OKS runs on
the 15 labeled joints. Only frames with GT persons are evaluated (predictions on unlabeled frames do not count,
as in poseval). Ignore regions are not applied (COCOeval has no notion of them). Values are fractions in [0, 1]
as COCOeval reports them (-1 where COCOeval has nothing to average).
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from posefix_video.errors import InputError
from posefix_video.io.checks import load_json
from posefix_video.keypoints import COCO17, POSETRACK18

STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")



def _check_results(results: object, n_kpts: int, path: str | os.PathLike | None) -> list[dict]:
    if not isinstance(results, list):
        raise InputError(path, "COCO results must be a JSON list of {image_id, category_id, keypoints, score}")
    for k, r in enumerate(results):
        rec = f"results[{k}]"
        if not isinstance(r, dict) or not {"image_id", "keypoints", "score"} <= set(r):
            raise InputError(path, "a result needs image_id, keypoints and score", rec)
        if not isinstance(r["keypoints"], list) or len(r["keypoints"]) != 3 * n_kpts:
            raise InputError(path, f"keypoints must hold {3 * n_kpts} numbers", f"{rec} (image_id {r['image_id']})")
    return results


def coco_eval(gt: dict, results: list[dict], sigmas: np.ndarray, img_ids: list | None = None,
              results_path: str | os.PathLike | None = None) -> dict[str, float]:
    """Runs COCOeval (iouType "keypoints") on in-memory GT and results.

    Args:
        gt: a COCO keypoint GT dict (images, annotations, categories).
        results: COCO keypoint results; those on images outside `img_ids` are dropped.
        sigmas: (K,) OKS sigmas matching the keypoint count.
        img_ids: images to evaluate (default: all GT images).
        results_path: named in error messages.

    Returns:
        {"AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"} -> float.
    """
    _check_results(results, len(sigmas), results_path)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        ids = set(coco_gt.getImgIds() if img_ids is None else img_ids)
        unknown = [r["image_id"] for r in results if r["image_id"] not in coco_gt.imgs]
        if unknown:
            raise InputError(results_path, f"result for image_id {unknown[0]}, which the GT does not have")
        kept = [dict(r, category_id=r.get("category_id", 1)) for r in results if r["image_id"] in ids]
        if not kept:
            return {name: 0.0 for name in STAT_NAMES}
        coco_dt = coco_gt.loadRes(kept)
        ev = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        ev.params.imgIds = sorted(ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: float(v) for name, v in zip(STAT_NAMES, ev.stats)}


def evaluate_coco(gt_json: str | os.PathLike, results_json: str | os.PathLike) -> dict[str, float]:
    """OKS AP of a COCO keypoint results file against a COCO keypoint GT file (COCO's 17 sigmas)."""
    gt = load_json(gt_json)
    if not isinstance(gt, dict) or "annotations" not in gt or "images" not in gt:
        raise InputError(gt_json, "not a COCO GT file (needs images and annotations)")
    return coco_eval(gt, load_json(results_json), COCO17.sigma_array, results_path=results_json)


# PoseTrack18 slots kept for OKS: all but the never-labeled ears.
POSETRACK_OKS_SLOTS = np.flatnonzero(POSETRACK18.sigma_array > 0)


def _box_area(ann: dict, kp: np.ndarray) -> float:
    if isinstance(ann.get("bbox"), list) and len(ann["bbox"]) == 4:
        return float(ann["bbox"][2] * ann["bbox"][3])
    vis = kp[:, 2] > 0
    if not vis.any():
        return 0.0
    ext = kp[vis, :2].max(axis=0) - kp[vis, :2].min(axis=0)
    return float(ext[0] * ext[1])


def posetrack_to_coco(gt_paths: list, pred_paths: list) -> tuple[dict, list[dict], list]:
    """PoseTrack 2018 GT and prediction files -> (COCO GT dict, COCO results, labeled image ids), 15 keypoints.

    A prediction's COCO score is its `score` field if present, else the mean of its present joints' scores.
    """
    images, anns, results, labeled = [], [], [], set()
    slots = POSETRACK_OKS_SLOTS
    for gt_path, pred_path in zip(gt_paths, pred_paths):
        gt = load_json(gt_path)
        if not isinstance(gt, dict) or "images" not in gt:
            raise InputError(gt_path, "not a PoseTrack 2018 file (needs images and annotations)")
        images += [{"id": im["id"], "file_name": im.get("file_name", "")} for im in gt["images"]]
        for k, a in enumerate(gt.get("annotations", [])):
            kp = np.asarray(a.get("keypoints", []), dtype=np.float64)
            if kp.size != 51:
                raise InputError(gt_path, "keypoints must hold 51 numbers", f"annotations[{k}]")
            kp = kp.reshape(17, 3)[slots]
            kp[:, 2] = np.where((kp[:, 0] == 0) & (kp[:, 1] == 0) & (kp[:, 2] == 0), 0, 2)
            labeled.add(a["image_id"])
            anns.append({"id": len(anns) + 1, "image_id": a["image_id"], "category_id": 1, "iscrowd": 0,
                         "keypoints": kp.reshape(-1).tolist(), "num_keypoints": int((kp[:, 2] > 0).sum()),
                         "area": _box_area(a, kp), "bbox": a.get("bbox", [0, 0, 0, 0])})
        pred = load_json(pred_path)
        if not isinstance(pred, dict) or "annotations" not in pred:
            raise InputError(pred_path, "not a PoseTrack 2018 prediction file (needs annotations)")
        for k, a in enumerate(pred["annotations"]):
            rec = f"annotations[{k}] (image_id {a.get('image_id')}, track_id {a.get('track_id')})"
            kp = np.asarray(a.get("keypoints", []), dtype=np.float64)
            if kp.size != 51:
                raise InputError(pred_path, "keypoints must hold 51 numbers", rec)
            kp = kp.reshape(17, 3)
            present = ~((kp[:, 0] == 0) & (kp[:, 1] == 0) & (kp[:, 2] == 0))
            sc = a.get("scores") or []
            if "score" in a:
                score = float(a["score"])
            elif len(sc) == 17 and present.any():
                score = float(np.mean(np.asarray(sc, dtype=np.float64)[present]))
            else:
                raise InputError(pred_path, "prediction without `score` or 17 joint `scores`", rec)
            results.append({"image_id": a["image_id"], "category_id": 1, "keypoints": kp[slots].reshape(-1).tolist(),
                            "score": score})
    gt_coco = {"images": images, "annotations": anns,
               "categories": [{"id": 1, "name": "person",
                               "keypoints": [POSETRACK18.names[s] for s in slots]}]}
    return gt_coco, results, sorted(labeled)


def evaluate_posetrack_coco(gt_paths: list, pred_paths: list) -> dict[str, float]:
    """COCO OKS AP of PoseTrack 2018 predictions (15 joints, PoseTrack18 sigmas), on frames with GT persons."""
    gt, results, labeled = posetrack_to_coco([Path(p) for p in gt_paths], [Path(p) for p in pred_paths])
    sigmas = POSETRACK18.sigma_array[POSETRACK_OKS_SLOTS]
    return coco_eval(gt, results, sigmas, img_ids=labeled, results_path=pred_paths[0] if pred_paths else None)
