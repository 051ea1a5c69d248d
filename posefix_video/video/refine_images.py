"""Refine COCO keypoint results on still images (the paper's main use): `python -m pipelines.refine_coco`.

    summary = refine_coco("val2017/", "person_keypoints_val2017.json", "results.json", "posefix-coco-r152-384x288",
                          "refined.json")

Inputs: a COCO keypoint-results list (any method's output: `image_id`, `category_id`, `keypoints` 17 x (x, y, v),
`score`; PoseTrack-layout results carry per-joint `scores` lists), an annotation file whose `images` list maps
each image id to a `file_name` under the image folder, and a checkpoint whose keypoint layout is the results'.

Output: a results list with exactly one entry per input entry, in input order. Each entry is the input entry with
its keypoints refined (x, y at full precision; the third value, the input score, kept) and `posefix_confidence`
(17 floats). Entries that cannot be refined (image id not in the annotation file, category other than person, no
usable joint) are copied unchanged and counted. Entries with a `bbox` and no `keypoints` (person detections,
`--detections`) get a pose from a top-down initializer on the same decoded images first (`initializer`), then are
refined like the others; `refiner=None` (--no-refine) writes the initializer's poses (x, y, maxval) as they are.
`oks_nms` (the official test uses 0.9) removes near-duplicates
per image after refinement, counted as such; it is the only option that drops entries.

Images are decoded by OpenCV (BGR, EXIF orientation ignored, as the official code) and handed to the refiner as
RGB; a model whose contract says BGR gets BGR again (net/contract.py), so the authors' models see cv2's pixels.
Persons of many images share one network batch (images grouped by size).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from posefix_video.atomic import write_json_atomic
from posefix_video.errors import InputError, PosefixError
from posefix_video.eval.coco import coco_eval
from posefix_video.io.checks import load_json, number_array
from posefix_video.keypoints import KeypointLayout
from posefix_video.net.crop import crop_boxes
from posefix_video.net.official import official_boxes
from posefix_video.net.refiner import CONFIDENCE_KEY, Refiner
from posefix_video.video.initial_poses import INITIALIZED_NOT_REFINED, NO_BOX, NO_POSE, NOT_REFINED

logger = logging.getLogger(__name__)

CHUNK_IMAGES = 32  # images decoded and refined together (bounds memory)


@dataclass
class CocoRefineSummary:
    """What refine_coco did."""

    entries: int = 0
    refined: int = 0
    passed: Counter = field(default_factory=Counter)
    suppressed: int = 0
    images: int = 0
    ap_before: dict[str, float] | None = None
    ap_after: dict[str, float] | None = None
    out: str = ""

    def __str__(self) -> str:
        lines = [f"refined {self.refined} of {self.entries} entries on {self.images} images -> {self.out}"]
        for reason, n in sorted(self.passed.items()):
            lines.append(f"  passed through unchanged: {n} ({reason})")
        if self.suppressed:
            lines.append(f"  removed by OKS-NMS: {self.suppressed}")
        if self.ap_before is not None and self.ap_after is not None:
            lines.append(f"COCO OKS AP before {100 * self.ap_before['AP']:.1f}, after {100 * self.ap_after['AP']:.1f}"
                         f" (AP50 {100 * self.ap_before['AP50']:.1f} -> {100 * self.ap_after['AP50']:.1f}, "
                         f"AP75 {100 * self.ap_before['AP75']:.1f} -> {100 * self.ap_after['AP75']:.1f})")
        return "\n".join(lines)


@dataclass
class _Inputs:
    entries: list[dict]
    keypoints: np.ndarray  # (P, 17, 2)
    third: np.ndarray  # (P, 17) the triplets' third values (the input scores)
    present: np.ndarray  # (P, 17) not (0, 0, 0)
    joint_scores: np.ndarray  # (P, 17) per-joint scores for OKS-NMS: `scores` list, else `score`, else third
    image_ids: list[Any]
    boxes: np.ndarray | None = None  # (P, 4) [x, y, w, h] of entries without keypoints (detections), else NaN


def read_image_index(ann_path: str | os.PathLike) -> tuple[dict, dict[Any, str]]:
    """(annotation dict, image id -> file_name) of a COCO-style annotation file."""
    ann = load_json(ann_path)
    if not isinstance(ann, dict) or not isinstance(ann.get("images"), list):
        raise InputError(ann_path, "not a COCO-style annotation file (needs an `images` list with id and file_name)")
    index = {}
    for k, im in enumerate(ann["images"]):
        if not isinstance(im, dict) or "id" not in im or not isinstance(im.get("file_name"), str):
            raise InputError(ann_path, "image entry without `id` and `file_name`", f"images[{k}]")
        index[im["id"]] = im["file_name"]
    return ann, index


def read_results(path: str | os.PathLike) -> _Inputs:
    """Parses a COCO keypoint-results list (17 joints), checking every entry (InputError names the entry)."""
    data = load_json(path)
    if not isinstance(data, list):
        raise InputError(path, "expected a JSON list of COCO keypoint results")
    P = len(data)
    kp, third = np.zeros((P, 17, 2)), np.zeros((P, 17))
    joint_scores, ids = np.zeros((P, 17)), []
    boxes = np.full((P, 4), np.nan)
    for i, e in enumerate(data):
        where = f"entry [{i}]"
        if not isinstance(e, dict) or "image_id" not in e or ("keypoints" not in e and "bbox" not in e):
            raise InputError(path, "a result needs `image_id` and `keypoints` (a detection: `bbox`)", where)
        where = f"entry [{i}] (image_id {e['image_id']!r})"
        if "keypoints" not in e:  # a person detection (--detections): a box, no pose, for the initializer
            boxes[i] = number_array(path, where, e["bbox"], 4, "bbox")
            ids.append(e["image_id"])
            continue
        trip = number_array(path, where, e["keypoints"], 51, "keypoints").reshape(17, 3)
        kp[i], third[i] = trip[:, :2], trip[:, 2]
        if e.get("scores") is not None:
            joint_scores[i] = number_array(path, where, e["scores"], 17, "scores")
        elif e.get("score") is not None:
            joint_scores[i] = number_array(path, where, [e["score"]], 1, "score")[0]
        else:
            joint_scores[i] = trip[:, 2]
        ids.append(e["image_id"])
    present = ~((kp == 0).all(-1) & (third == 0))
    return _Inputs(entries=data, keypoints=kp, third=third, present=present, joint_scores=joint_scores,
                   image_ids=ids, boxes=boxes)


def read_image(folder: Path, file_name: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image as the official code reads it (cv2.imread, EXIF orientation ignored)."""
    path = folder / file_name
    img = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        reason = "not found" if not path.exists() else "not a readable image"
        raise InputError(path, f"{reason} (image of the annotation file's `images` list; is the image folder "
                         "right?)")
    return np.ascontiguousarray(img[..., ::-1])  # BGR -> RGB: a permutation, undone for BGR contracts


def crop_areas(refiner: Refiner, keypoints: np.ndarray, present: np.ndarray) -> np.ndarray:
    """(P,) crop-box areas under the refiner's rules (the official OKS-NMS area); NaN where there is no box."""
    if refiner.official_test:
        b = official_boxes(np.where(present[..., None], keypoints, 0.0), refiner.layout, refiner.input_size)
        return np.where(b["ok"], b["scale"].prod(-1), np.nan)
    boxes = crop_boxes(keypoints, present, refiner.layout, refiner.input_size)
    return np.where(boxes.ok, boxes.size.prod(-1), np.nan)


def oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, sigmas: np.ndarray,
            threshold: float) -> np.ndarray:
    """Greedy OKS non-maximum suppression of one image's persons (the official test's rule): by decreasing
    score, keep a person and drop every later one whose OKS with it exceeds `threshold`.

    Args:
        keypoints: (N, K, 2) the joints compared (ignored slots already removed).
        scores: (N,) instance scores. areas: (N,) the scale of OKS (crop-box areas). sigmas: (K,) OKS sigmas.

    Returns:
        (N,) bool, kept.
    """
    n = len(keypoints)
    keep = np.zeros(n, dtype=bool)
    order = list(np.argsort(-scores, kind="stable"))
    var = (2 * sigmas) ** 2
    while order:
        i, rest = order[0], np.array(order[1:], dtype=int)
        keep[i] = True
        if not len(rest):
            break
        d2 = ((keypoints[rest] - keypoints[i]) ** 2).sum(-1)  # (R, K)
        e = d2 / var / ((areas[i] + areas[rest])[:, None] / 2 + np.spacing(1)) / 2
        oks = np.exp(-e).mean(-1)
        order = list(rest[oks <= threshold])
    return keep


def keypoint_ap(ann: dict, results: list[dict], layout: KeypointLayout) -> dict[str, float] | None:
    """COCO OKS AP of `results` against the annotation file's keypoint annotations (None when it has none).

    The layout's ignored slots (PoseTrack's ears, sigma 0) are dropped from both sides."""
    anns = [a for a in ann.get("annotations", []) if isinstance(a, dict) and len(a.get("keypoints") or []) == 51]
    if not any(np.any(np.asarray(a["keypoints"], dtype=float)[2::3] > 0) for a in anns):
        return None
    slots = np.flatnonzero(layout.used_mask)
    gt_anns = []
    for k, a in enumerate(anns):
        kp = np.asarray(a["keypoints"], dtype=np.float64).reshape(17, 3)[slots]
        box = a.get("bbox") or [0, 0, 0, 0]
        gt_anns.append({"id": k + 1, "image_id": a["image_id"], "category_id": 1, "iscrowd": int(a.get("iscrowd", 0)),
                        "keypoints": kp.ravel().tolist(), "num_keypoints": int((kp[:, 2] > 0).sum()),
                        "area": float(a.get("area", box[2] * box[3])), "bbox": box})
    gt = {"images": [{"id": im["id"]} for im in ann["images"]], "annotations": gt_anns,
          "categories": [{"id": 1, "name": "person", "keypoints": [layout.names[s] for s in slots]}]}
    ids = {im["id"] for im in ann["images"]}
    res = []
    for r in results:
        if r["image_id"] not in ids or r.get("category_id", 1) != 1 or "keypoints" not in r:
            continue
        kp = np.asarray(r["keypoints"], dtype=np.float64).reshape(17, 3)[slots]
        score = r.get("score")
        if score is None:  # PoseTrack style: the mean joint score, ignored slots left out
            score = float(np.mean(np.asarray(r["scores"], dtype=float)[slots] if r.get("scores") else kp[:, 2]))
        res.append({"image_id": r["image_id"], "category_id": 1, "keypoints": kp.ravel().tolist(), "score": score})
    return coco_eval(gt, res, layout.sigma_array[slots])


def refine_coco(
    images: str | os.PathLike,
    ann: str | os.PathLike,
    results: str | os.PathLike,
    refiner: Refiner | None,
    out: str | os.PathLike,
    *,
    oks_nms_threshold: float | None = None,
    progress: bool = False,
    chunk_images: int = CHUNK_IMAGES,
    evaluate: bool = True,
    initializer: Any = None,
) -> CocoRefineSummary:
    """Refines a COCO keypoint-results file and writes the refined list (atomically). See the module docstring.

    Args:
        images: folder the annotation file's `file_name`s are relative to.
        ann: COCO-style annotation file (its `images` resolve image ids; keypoint annotations enable the AP).
        results: the keypoint results to refine, in the refiner's layout.
        refiner: the Refiner (its rules: default or official_test); None stops after the initializer
            (--no-refine).
        out: output JSON.
        oks_nms_threshold: per-image OKS-NMS after refinement (None: off).
        progress: tqdm bar on stderr.
        chunk_images: images decoded and refined together.
        evaluate: print AP before/after when the annotation file has keypoint annotations.
        initializer: a TopDownEstimator (video/initial_poses.py): entries with a `bbox` and no `keypoints`
            (person detections, `--detections`) get its pose (keypoints x, y, maxval) on the same decoded images,
            then the refiner refines them; AP "before" is then the initializer's. Without it such entries are
            copied unchanged, counted.
    """
    from tqdm import tqdm

    if oks_nms_threshold is not None and not 0 < oks_nms_threshold <= 1:
        raise PosefixError(f"--oks-nms {oks_nms_threshold}: must be in (0, 1]")
    ann_data, index = read_image_index(ann)
    inp = read_results(results)
    P = len(inp.entries)
    summary = CocoRefineSummary(entries=P, out=os.fspath(out))
    category_ok = np.array([e.get("category_id", 1) == 1 for e in inp.entries], dtype=bool)
    known = np.array([i in index for i in inp.image_ids], dtype=bool)
    for ok_mask, reason in ((~known, "image_id not in the annotation file"),
                            (known & ~category_ok, "category_id is not 1 (person)")):
        if ok_mask.any():
            summary.passed[reason] += int(ok_mask.sum())
    todo = np.flatnonzero(known & category_ok)
    order: dict[Any, list[int]] = {}
    for i in todo:
        order.setdefault(inp.image_ids[i], []).append(int(i))
    image_list = list(order)
    summary.images = len(image_list)

    out_kp = inp.keypoints.copy()
    conf = np.zeros((P, 17), dtype=np.float32)
    refined = np.zeros(P, dtype=bool)
    posed = np.zeros(P, dtype=bool)  # poses from the initializer
    folder = Path(images)
    bar = tqdm(total=len(image_list), unit="image", disable=not progress, dynamic_ncols=True)
    with ThreadPoolExecutor(max_workers=4) as pool:
        for s in range(0, len(image_list), chunk_images):
            ids = image_list[s:s + chunk_images]
            decoded = list(pool.map(lambda i: read_image(folder, index[i]), ids))
            by_size: dict[tuple, list[int]] = {}
            for k, img in enumerate(decoded):
                by_size.setdefault(img.shape, []).append(k)
            for group in by_size.values():  # one refine call per image size: persons of many images batched
                frames = np.stack([decoded[k] for k in group])
                persons = [p for f, k in enumerate(group) for p in order[ids[k]]]
                frame_index = np.array([f for f, k in enumerate(group) for _ in order[ids[k]]], dtype=np.int64)
                posed[persons] = initial_poses(initializer, frames, frame_index, np.asarray(persons), inp,
                                               summary.passed)  # box-only entries: the initializer's pose
                out_kp[persons] = inp.keypoints[persons]
                go = inp.present[persons].any(-1)  # entries with a pose (box-only ones without it are counted)
                if refiner is None:
                    summary.passed[INITIALIZED_NOT_REFINED] += int(posed[persons].sum())
                    summary.passed[NOT_REFINED] += int((go & ~posed[persons]).sum())
                    continue
                persons, frame_index = list(np.asarray(persons)[go]), frame_index[go]
                if not persons:
                    continue
                res = refiner.refine_arrays(frames, frame_index, inp.keypoints[persons], inp.present[persons],
                                            joint_scores=inp.third[persons])
                out_kp[persons], conf[persons], refined[persons] = res.keypoints, res.confidence, res.refined
                for ok, reason in zip(res.refined, res.reason):
                    if not ok:
                        summary.passed[reason] += 1
            bar.update(len(ids))
    bar.close()
    summary.refined = int(refined.sum())

    summary.passed = +summary.passed
    kept = np.ones(P, dtype=bool)
    if oks_nms_threshold is not None and refiner is not None:
        kept = _apply_nms(refiner, inp, out_kp, refined, oks_nms_threshold)
        summary.suppressed = int((~kept).sum())
    written, initial = [], []
    for i, e in enumerate(inp.entries):
        if posed[i]:  # the initializer's entry: its keypoints, maxvals as the third values
            e = {**e, "keypoints": np.concatenate([inp.keypoints[i], inp.third[i][:, None]], 1).ravel().tolist()}
        initial.append(e)
        if not kept[i]:
            continue
        if not refined[i]:
            written.append(e)
            continue
        trip = np.concatenate([out_kp[i], inp.third[i][:, None]], axis=1)
        written.append({**e, "keypoints": trip.ravel().tolist(), CONFIDENCE_KEY: conf[i].astype(float).tolist()})
    write_json_atomic(out, written)
    if evaluate:
        layout = (refiner if refiner is not None else initializer).layout
        summary.ap_before = keypoint_ap(ann_data, initial, layout)
        summary.ap_after = keypoint_ap(ann_data, written, layout) if summary.ap_before and refiner else None
    return summary


def initial_poses(initializer: Any, frames: np.ndarray, frame_index: np.ndarray, persons: np.ndarray, inp: _Inputs,
                  passed: Counter) -> np.ndarray:
    """Poses of the box-only entries among `persons` (their frames: `frame_index`) from the initializer, written
    into `inp` (keypoints, maxvals as the third values and joint scores, present); returns (n,) bool, posed.
    Box-only entries without an initializer, or with a zero-size box, are counted in `passed`."""
    box_only = ~inp.present[persons].any(-1) & np.isfinite(inp.boxes[persons]).all(-1)
    if initializer is None:
        passed[NO_POSE] += int(box_only.sum())
        return np.zeros(len(persons), dtype=bool)
    ok = box_only & (inp.boxes[persons][:, 2] > 0) & (inp.boxes[persons][:, 3] > 0)
    passed[NO_BOX] += int((box_only & ~ok).sum())
    if ok.any():
        idx = persons[ok]
        keypoints, maxvals = initializer.estimate_arrays(frames, frame_index[ok], inp.boxes[idx])
        inp.keypoints[idx], inp.third[idx], inp.joint_scores[idx] = keypoints, maxvals, maxvals
        inp.present[idx] = True
    return ok


def _apply_nms(refiner: Refiner, inp: _Inputs, keypoints: np.ndarray, refined: np.ndarray,
               threshold: float) -> np.ndarray:
    """(P,) kept after per-image OKS-NMS over the refined persons (others are kept)."""
    layout = refiner.layout
    used = layout.used_mask
    areas = crop_areas(refiner, inp.keypoints, inp.present)
    scores = inp.joint_scores[:, used].mean(-1)
    kept = np.ones(len(keypoints), dtype=bool)
    groups: dict[Any, list[int]] = {}
    for i in np.flatnonzero(refined & np.isfinite(areas)):
        groups.setdefault(inp.image_ids[i], []).append(int(i))
    for members in groups.values():
        m = np.array(members)
        kept[m] = oks_nms(keypoints[m][:, used], scores[m], areas[m], layout.sigma_array[used], threshold)
    return kept
