"""COCO keypoint results and AlphaPose results (JSON lists of per-person entries): readers and the COCO writer.

Both carry 17 x, y, c triplets per person, where c is a per-joint confidence (used as the score), and an
`image_id` that names the frame: an int (frame number, or a PoseTrack-style id T*1e10 + video*1e4 + frame) or a
file name whose stem is the frame number ("12.jpg", "images/x/000012.jpg"). Frame numbers go through the frame
base rules of `checks.resolve_frame_base`; PoseTrack-style ids are 0-based by construction.

COCO detection results (`image_id`, `category_id`, `bbox` [x, y, w, h], `score`, no `keypoints`) are read by the
same reader as box-only persons (every joint absent, `box` set) for the top-down initializer; a list may mix
entries with and without keypoints. Entries whose `category_id` is not 1 (person) are skipped and counted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from posefix_video.atomic import write_json_atomic
from posefix_video.errors import InputError
from posefix_video.io.checks import (
    box_only_record,
    check_box,
    check_frame_range,
    check_sequence,
    integer_id,
    make_record,
    number_array,
    resolve_frame_base,
)
from posefix_video.keypoints import KeypointLayout, resolve_layout
from posefix_video.records import PersonRecord, PoseSequence

log = logging.getLogger(__name__)

POSETRACK_ID_MIN = 10**10  # ids T*1e10 + video*1e4 + frame with T >= 1
_ALPHAPOSE_K = {26: "Halpe-26", 136: "Halpe-136 / COCO-WholeBody", 133: "COCO-WholeBody", 68: "face-68",
                21: "hand-21", 16: "MPII-16", 18: "OpenPose-18"}  # fmt: skip
_COCO_OWN = ("image_id", "keypoints", "score", "track_id")
_ALPHAPOSE_OWN = ("image_id", "keypoints", "score", "idx", "box")


def frame_number(path: str | os.PathLike, where: str, image_id: Any) -> tuple[int, bool]:
    """(frame number, is_posetrack_id) for an `image_id`: int, PoseTrack-style int, or file name string."""
    if isinstance(image_id, str):
        stem = PurePosixPath(image_id.replace("\\", "/")).name.split(".")[0]
        if not stem.isdigit():
            raise InputError(path, f"image_id {image_id!r} does not name a frame (expected an int or a file name "
                             "like '12.jpg' whose stem is the frame number)", where)  # fmt: skip
        return int(stem), False
    value = integer_id(path, where, image_id, "image_id")
    if value >= POSETRACK_ID_MIN:
        return value % 10**4, True
    return value, False


def alphapose_track_id(path: str | os.PathLike, where: str, idx: Any) -> int | None:
    """AlphaPose `idx` -> an int: nested lists flattened, the first number int(round(float(.)))."""
    flat = idx
    while isinstance(flat, list):
        if not flat:
            return None
        flat = flat[0]
    if flat is None:
        return None
    try:
        value = float(flat)
    except (TypeError, ValueError):
        raise InputError(path, f"`idx` is {idx!r}, expected a number or (nested) list of numbers", where) from None
    if not np.isfinite(value):
        raise InputError(path, f"`idx` is {idx!r}, expected a finite number", where)
    return int(round(value))


def read_keypoint_results(
    path: str | os.PathLike,
    data: list[Any],
    flavor: str = "coco",
    frame_base: int | str = "auto",
    layout: str | KeypointLayout | None = None,
    num_frames: int | None = None,
) -> PoseSequence:
    """Reads a COCO keypoint-results or AlphaPose list into a PoseSequence.

    Args:
        path: the file (for messages and the sequence name).
        data: the parsed JSON list.
        flavor: "coco" (track id from an optional `track_id` key) or "alphapose" (track id from `idx`, box from
            `box`).
        frame_base: 0, 1 or "auto" for frame numbers (see `checks.resolve_frame_base`).
        layout: "coco17" (default) or "posetrack18", the layout of the 17 triplets.
        num_frames: the video's frame count, when known (frame base and range checks).
    """
    layout = resolve_layout(layout)
    if not isinstance(data, list):
        raise InputError(path, "expected a JSON list of person entries")
    parsed = []
    skipped = 0  # entries of other categories (COCO detections of every class)
    for i, entry in enumerate(data):
        where = f"entry [{i}]"
        if not isinstance(entry, dict):
            raise InputError(path, "entry is not a JSON object", where)
        where = f"entry [{i}] (image_id {entry.get('image_id')!r})"
        if "image_id" not in entry:
            raise InputError(path, "entry without `image_id`", where)
        category = entry.get("category_id", 1)
        if category != 1:  # COCO detections of every class: persons only
            skipped += 1
            continue
        if "keypoints" not in entry:
            if flavor != "coco" or "bbox" not in entry:
                raise InputError(path, "entry without `keypoints` (or, for a box-only detection, `bbox`)", where)
            # a COCO detection (image_id, category_id, bbox, score): a box-only person
            box = check_box(path, where, number_array(path, where, entry["bbox"], 4, "bbox"))
            number, pt_id = frame_number(path, where, entry["image_id"])
            raw = entry.get("track_id")
            track_id = None if raw is None else integer_id(path, where, raw)
            score = entry.get("score")
            score = None if score is None else float(number_array(path, where, [score], 1, "score")[0])
            extra = {k: v for k, v in entry.items() if k not in _COCO_OWN and k != "bbox"}
            extra["image_id"] = entry["image_id"]
            parsed.append((where, number, pt_id, track_id, None, score, box, extra))
            continue
        kps = entry["keypoints"]
        if flavor == "alphapose" and isinstance(kps, list) and len(kps) != 51 and len(kps) % 3 == 0:
            k = len(kps) // 3
            raise InputError(path, f"AlphaPose output with {k} keypoints ({_ALPHAPOSE_K.get(k, 'unknown layout')}); "
                             "only 17-keypoint (COCO) output is supported: run AlphaPose with a COCO-17 model",
                             where)  # fmt: skip
        values = number_array(path, where, kps, 51, "keypoints")
        number, pt_id = frame_number(path, where, entry["image_id"])
        if flavor == "alphapose":
            track_id = alphapose_track_id(path, where, entry.get("idx"))
        else:
            raw = entry.get("track_id")
            track_id = None if raw is None else integer_id(path, where, raw)
        score = entry.get("score")
        score = None if score is None else float(number_array(path, where, [score], 1, "score")[0])
        box_raw = entry.get("box" if flavor == "alphapose" else "bbox")
        box = None if box_raw is None else number_array(path, where, box_raw, 4, "box" if flavor == "alphapose"
                                                       else "bbox")  # fmt: skip
        own = _ALPHAPOSE_OWN if flavor == "alphapose" else _COCO_OWN
        extra = {k: v for k, v in entry.items() if k not in own and k != "bbox"}
        extra["image_id"] = entry["image_id"]  # kept so write_coco_results can give the ids back
        parsed.append((where, number, pt_id, track_id, values, score, box, extra))

    plain = [n for _, n, pt, *_ in parsed if not pt]
    if plain and len(plain) != len(parsed):
        raise InputError(path, "mixes PoseTrack-style image ids (>= 1e10) with plain frame numbers")
    base = resolve_frame_base(path, plain, frame_base, num_frames) if plain else 0
    seq = PoseSequence(name=PurePosixPath(os.fspath(path)).stem, layout=layout, num_frames=num_frames,
                       source_format="alphapose" if flavor == "alphapose" else "coco")  # fmt: skip
    where_of: dict[int, str] = {}
    for where, number, pt_id, track_id, values, score, box, extra in parsed:
        frame = number if pt_id else number - base
        check_frame_range(path, where, frame, num_frames, 0 if pt_id else base)
        if values is None:
            record = box_only_record(frame, track_id, box, score, extra)
        else:
            record = make_record(frame, track_id, values, None, use_v_as_scores=True, box=box, person_score=score,
                                 extra=extra)  # fmt: skip
        seq.add(record)
        where_of[id(record)] = where
    check_sequence(path, seq, where_of)
    seq.meta["frame_base"] = base
    if skipped:
        seq.meta["skipped_categories"] = skipped
        log.info("%s: skipped %d entries whose category_id is not 1 (person)", os.fspath(path), skipped)
    return seq


def write_coco_results(
    seq_or_records: PoseSequence | Iterable[PersonRecord],
    path: str | os.PathLike,
    image_ids: Sequence[int] | Mapping[int, Any] | None = None,
    indent: int | None = None,
) -> list[dict[str, Any]]:
    """Writes persons as a COCO keypoint-results list (atomically).

    Each entry: `image_id`, `category_id` 1, `keypoints` (17 x, y, c; c = the joint score, else the input's
    third value, else 1; absent joints 0, 0, 0), `score` (person score, else the mean joint score of present
    joints, else 1), plus `track_id` and `bbox` when known.

    Args:
        seq_or_records: a PoseSequence or PersonRecords.
        path: output file.
        image_ids: frame -> image id (a sequence indexed by frame, or a mapping). Default: the record's original
            `image_id` (kept by the COCO/AlphaPose readers), else the sequence's `image_ids`, else the frame.
    """
    seq = seq_or_records if isinstance(seq_or_records, PoseSequence) else None
    records = list(seq.persons() if seq is not None else seq_or_records)
    out = []
    for p in records:
        if image_ids is not None:
            image_id = image_ids[p.frame]
        elif "image_id" in p.extra:
            image_id = p.extra["image_id"]
        elif seq is not None and seq.image_ids is not None:
            image_id = seq.image_ids[p.frame]
        else:
            image_id = p.frame
        third = p.scores if p.scores is not None else p.visibility if p.visibility is not None else np.ones(17)
        trip = np.concatenate([p.keypoints, third[:, None]], axis=1)
        trip[~p.present] = 0.0
        if p.person_score is not None:
            score = float(p.person_score)
        elif p.scores is not None and p.present.any():
            score = float(p.scores[p.present].mean())
        else:
            score = 1.0
        entry: dict[str, Any] = {"image_id": image_id, "category_id": 1, "keypoints": trip.ravel().tolist(),
                                 "score": score}  # fmt: skip
        if p.track_id is not None:
            entry["track_id"] = int(p.track_id)
        if p.box is not None:
            entry["bbox"] = p.box.tolist()
        out.append(entry)
    write_json_atomic(path, out, indent=indent)
    return out
