"""mmpose prediction dumps (mmpose 1.x): the inferencer's `pred_out_dir` JSON and the demo's `--save-predictions`.

Shapes (docs/formats.md), each instance as mmpose's `split_instances` writes it:

- inferencer, video input: `[{"frame_id": k, "instances": [instance, ...]}, ...]`, one entry per decoded frame,
  `frame_id` counted from 0;
- inferencer, image input: `[instance, ...]` (one image: frame 0);
- `demo/topdown_demo_with_mmdet.py --save-predictions`: `{"meta_info": {...}, "instance_info": [...]}` where
  `instance_info` is the video list above with `frame_id` counted from 1, or an image's instance list.

instance: `{"keypoints": [[x, y] x K], "keypoint_scores": [s x K], "bbox": [[x1, y1, x2, y2]], "bbox_score": s}`
plus an optional `track_id` (mmpose writes none; a tracker added on top may). Keypoints are frame pixels;
`keypoint_scores` become the per-joint scores (and the visibility values, as for COCO results). Only K = 17
(COCO order) is accepted. Frame numbers go through the frame-base rules of `checks.resolve_frame_base`, fed with
every listed `frame_id` (empty frames included: both writers list every frame, so auto sees 0 or 1 first).
"""

from __future__ import annotations

import json
import os
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from posefix_video.errors import InputError
from posefix_video.io.checks import (
    check_frame_range,
    check_sequence,
    integer_id,
    make_record,
    number_array,
    resolve_frame_base,
)
from posefix_video.keypoints import COCO17, KeypointLayout, get_layout, resolve_layout
from posefix_video.records import PoseSequence

_OWN = ("keypoints", "keypoint_scores", "bbox", "bbox_score", "track_id")
_KNOWN_K = {133: "COCO-WholeBody", 26: "Halpe-26", 21: "hand-21", 68: "face-68", 16: "MPII-16", 14: "AIC/CrowdPose",
            18: "OpenPose-18"}  # fmt: skip


def is_mmpose_instance(entry: Any) -> bool:
    """True for one mmpose instance dict: `keypoint_scores`, or `keypoints` as a list of [x, y] points."""
    if not isinstance(entry, dict):
        return False
    kps = entry.get("keypoints")
    return "keypoint_scores" in entry or (isinstance(kps, list) and bool(kps) and isinstance(kps[0], list))


def is_mmpose_dump(data: Any) -> bool:
    """True when parsed JSON has one of the mmpose dump shapes (see the module docstring)."""
    if isinstance(data, dict):
        return "instance_info" in data
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        return False
    return "instances" in data[0] or is_mmpose_instance(data[0])


def _frames(path, data: Any) -> tuple[list[tuple[str, Any, Any]], dict[str, Any]]:
    """[(where, frame_id or None, instances)], meta_info of a dump in any of the shapes."""
    meta: dict[str, Any] = {}
    top = "the file"
    if isinstance(data, dict):
        if "instance_info" not in data:
            raise InputError(path, f"an object without `instance_info` (keys {', '.join(list(data)[:6])}); an mmpose "
                             "demo dump has `meta_info` and `instance_info`")  # fmt: skip
        meta = data.get("meta_info") if isinstance(data.get("meta_info"), dict) else {}
        data, top = data["instance_info"], "instance_info"
    if not isinstance(data, list):
        raise InputError(path, f"`{top}` must be a list, found {type(data).__name__}")
    if data and isinstance(data[0], dict) and "instances" not in data[0] and "frame_id" not in data[0]:
        return [("image", None, data)], meta  # an image's instance list: frame 0
    out = []
    for i, entry in enumerate(data):
        where = f"{top}[{i}]"
        if not isinstance(entry, dict):
            raise InputError(path, f"frame entry is {type(entry).__name__}, expected an object with `frame_id` and "
                             "`instances`", where)  # fmt: skip
        if "frame_id" not in entry or "instances" not in entry:
            raise InputError(path, "frame entry without `frame_id` and `instances`", where)
        fid = integer_id(path, where, entry["frame_id"], "frame_id")
        out.append((f"{where} (frame_id {fid})", fid, entry["instances"]))
    return out, meta


def _points(path, where: str, value: Any, what: str) -> np.ndarray:
    """`keypoints` as a (K, 2) float64 array of finite numbers; names the first bad point."""
    if not isinstance(value, list):
        raise InputError(path, f"`{what}` must be a list of [x, y] points, found {type(value).__name__}", where)
    try:
        arr = np.array(value, dtype=np.float64)
        # true/false would become 1.0/0.0: booleans are not coordinates
        ok = arr.ndim == 2 and np.isfinite(arr).all() and not any(type(v) is bool for p in value for v in p)
    except (ValueError, TypeError):
        ok = False
    if ok:
        return arr
    for j, p in enumerate(value):
        if not isinstance(p, list) or len(p) != len(value[0]) or not p:
            raise InputError(path, f"`{what}`[{j}] is {json.dumps(p)[:40]}, expected an [x, y] point", where)
        for v in p:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise InputError(path, f"`{what}`[{j}] is {json.dumps(p)[:60]}, expected finite numbers", where)
    raise InputError(path, f"`{what}` is {json.dumps(value)[:40]}, expected a list of [x, y] points", where)  # []


def _box(path, where: str, value: Any) -> np.ndarray:
    """mmpose `bbox` ([[x1, y1, x2, y2]], or a flat [x1, y1, x2, y2]) -> [x, y, w, h]."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        value = value[0]  # split_instances wraps each box in a one-element tuple
    x1, y1, x2, y2 = number_array(path, where, value, 4, "bbox")
    return np.array([x1, y1, x2 - x1, y2 - y1])


def layout_of(meta: dict[str, Any], layout: str | KeypointLayout | None) -> KeypointLayout:
    """The layout: explicit `layout`, else the demo's `meta_info.dataset_name` (posetrack18), else coco17."""
    named = get_layout("posetrack18") if str(meta.get("dataset_name", "")).lower() == "posetrack18" else COCO17
    return resolve_layout(layout, default=named)


def read_mmpose_dump(
    path: str | os.PathLike,
    data: Any,
    frame_base: int | str = "auto",
    layout: str | KeypointLayout | None = None,
    num_frames: int | None = None,
) -> PoseSequence:
    """Reads a parsed mmpose dump (inferencer or demo, video or image) into a PoseSequence.

    Args:
        path: the file (for messages and the sequence name).
        data: the parsed JSON.
        frame_base: 0, 1 or "auto" for `frame_id` (see `checks.resolve_frame_base`); image dumps have frame 0.
        layout: "coco17" or "posetrack18"; default: posetrack18 when the demo's `meta_info.dataset_name` says
            so, else coco17.
        num_frames: the video's frame count, when known (frame base and range checks).

    Returns:
        Records with keypoints (17, 2) in frame pixels, `scores` = `visibility` = `keypoint_scores`,
        `box` [x, y, w, h] from `bbox`, `person_score` from `bbox_score`, `track_id` when the instance has one.
    """
    frames, meta = _frames(path, data)
    layout = layout_of(meta, layout)
    parsed = []
    for fwhere, fid, instances in frames:
        if not isinstance(instances, list):
            raise InputError(path, f"`instances` must be a list, found {type(instances).__name__}", fwhere)
        for j, inst in enumerate(instances):
            where = f"{fwhere}, instance [{j}]" if fid is not None else f"instance [{j}]"
            if not isinstance(inst, dict):
                raise InputError(path, "instance is not a JSON object", where)
            if "keypoints" not in inst or "keypoint_scores" not in inst:
                raise InputError(path, "instance without `keypoints` and `keypoint_scores`", where)
            kps = _points(path, where, inst["keypoints"], "keypoints")
            k, dim = kps.shape
            if dim != 2:
                raise InputError(path, f"keypoints have {dim} coordinates each; 2D [x, y] keypoints are needed "
                                 "(a 3D pose-lifter dump cannot be refined)", where)  # fmt: skip
            if k != 17:
                raise InputError(path, f"mmpose output with {k} keypoints ({_KNOWN_K.get(k, 'unknown layout')}); "
                                 "17 COCO keypoints are needed: run mmpose with a COCO-17 (or PoseTrack18) body "
                                 "model", where)  # fmt: skip
            scores = number_array(path, where, inst["keypoint_scores"], 17, "keypoint_scores")
            box = _box(path, where, inst["bbox"]) if inst.get("bbox") is not None else None
            person_score = inst.get("bbox_score")
            if person_score is not None:
                if isinstance(person_score, bool) or not isinstance(person_score, (int, float)) or not np.isfinite(
                        person_score):  # fmt: skip
                    raise InputError(path, f"`bbox_score` is {json.dumps(person_score)[:40]}, expected a finite "
                                     "number", where)  # fmt: skip
                person_score = float(person_score)
            tid = inst.get("track_id")
            tid = None if tid is None else integer_id(path, where, tid)
            tid = None if tid == -1 else tid
            extra = {key: v for key, v in inst.items() if key not in _OWN}
            parsed.append((where, fid, tid, np.concatenate([kps, scores[:, None]], axis=1), box, person_score,
                           extra))  # fmt: skip
    ids = [fid for _, fid, _ in frames if fid is not None]
    base = resolve_frame_base(path, ids, frame_base, num_frames) if ids else 0
    seq = PoseSequence(name=PurePosixPath(os.fspath(path)).stem, layout=layout, num_frames=num_frames,
                       source_format="mmpose", meta={"frame_base": base})  # fmt: skip
    where_of: dict[int, str] = {}
    for where, fid, tid, trip, box, person_score, extra in parsed:
        frame = 0 if fid is None else fid - base
        check_frame_range(path, where, frame, num_frames, 0 if fid is None else base)
        record = make_record(frame, tid, trip.ravel(), None, use_v_as_scores=True, box=box,
                             person_score=person_score, extra=extra)  # fmt: skip
        seq.add(record)
        where_of[id(record)] = where
    check_sequence(path, seq, where_of)
    return seq
