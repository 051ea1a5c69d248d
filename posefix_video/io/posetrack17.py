"""PoseTrack 2017 annolist JSON (PoseFlow and older trackers write it): reader into PoseTrack18 slots.

Frames are positions in `annolist`. Every value is a one-element list. Point ids are poseval's joint ids 0..14,
mapped to the 17 PoseTrack18 slots (posetrack_eval.md §2.1); the ear slots stay absent.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from posefix_video.errors import InputError
from posefix_video.io.checks import check_sequence, integer_id, number_array
from posefix_video.keypoints import POSETRACK18
from posefix_video.records import PersonRecord, PoseSequence

# poseval joint id -> PoseTrack18 slot (r_ankle, r_knee, r_hip, l_hip, l_knee, l_ankle, r_wrist, r_elbow,
# r_shoulder, l_shoulder, l_elbow, l_wrist, neck=head_bottom, nose, head_top).
POSEVAL_ID_TO_SLOT = (16, 14, 12, 11, 13, 15, 10, 8, 6, 5, 7, 9, 1, 0, 2)


def _first(value: Any) -> Any:
    """PT17 wraps every value in a one-element list."""
    return value[0] if isinstance(value, list) and len(value) >= 1 else value


def read_posetrack17(path: str | os.PathLike, data: dict[str, Any]) -> PoseSequence:
    """Reads a PoseTrack 2017 `annolist` file into a posetrack18-layout PoseSequence.

    Persons without `annopoints` are skipped (poseval drops them too). The head rectangle x1/y1/x2/y2 goes to
    `extra["bbox_head"]` as [x, y, w, h]; point `score`s become joint scores (absent joints 0), or None when the
    file has no point scores; visibility is None (present joints are written back with v=1).
    """
    annolist = data.get("annolist") if isinstance(data, dict) else None
    if not isinstance(annolist, list):
        raise InputError(path, "`annolist` must be a list of frames")
    seq = PoseSequence(name=Path(path).stem, layout=POSETRACK18, num_frames=len(annolist),
                       source_format="posetrack17", file_names=[])  # fmt: skip
    where_of: dict[int, str] = {}
    for f, frame in enumerate(annolist):
        if not isinstance(frame, dict):
            raise InputError(path, "frame entry is not a JSON object", f"annolist[{f}]")
        image = _first(frame.get("image"))
        name = image.get("name") if isinstance(image, dict) else None
        seq.file_names.append(name if isinstance(name, str) else "")
        rects = frame.get("annorect", [])
        if not isinstance(rects, list):
            raise InputError(path, "`annorect` must be a list", f"annolist[{f}]")
        for r, rect in enumerate(rects):
            where = f"annolist[{f}].annorect[{r}]"
            if not isinstance(rect, dict):
                raise InputError(path, "person entry is not a JSON object", where)
            points = _first(rect.get("annopoints"))
            if not isinstance(points, dict) or "point" not in points:
                continue
            if "track_id" not in rect:
                raise InputError(path, "person without `track_id`", where)
            track_id = integer_id(path, where, _first(rect["track_id"]))
            where = f"{where} (frame {f}, track_id {track_id})"
            record = _person(path, where, f, track_id, rect, points["point"])
            seq.add(record)
            where_of[id(record)] = where
    if seq.file_names and seq.file_names[0]:
        seq.name = PurePosixPath(seq.file_names[0]).parent.name or seq.name
    check_sequence(path, seq, where_of)
    return seq


def _person(path, where: str, frame: int, track_id: int, rect: dict, points: Any) -> PersonRecord:
    if not isinstance(points, list):
        raise InputError(path, "`annopoints[0].point` must be a list", where)
    keypoints = np.zeros((17, 2))
    present = np.zeros(17, bool)
    scores = np.zeros(17)
    has_scores = False
    for k, point in enumerate(points):
        at = f"{where} point[{k}]"
        if not isinstance(point, dict) or not {"id", "x", "y"} <= point.keys():
            raise InputError(path, "point needs `id`, `x` and `y`", at)
        pid = integer_id(path, at, _first(point["id"]), "id")
        if not 0 <= pid < len(POSEVAL_ID_TO_SLOT):
            raise InputError(path, f"point id {pid} is not a PoseTrack 2017 joint id (0..14)", at)
        slot = POSEVAL_ID_TO_SLOT[pid]
        if present[slot]:
            raise InputError(path, f"point id {pid} is given twice", at)
        xy = number_array(path, at, [_first(point["x"]), _first(point["y"])], 2, "x/y")
        keypoints[slot], present[slot] = xy, True
        if "score" in point:
            scores[slot] = number_array(path, at, [_first(point["score"])], 1, "score")[0]
            has_scores = True
    extra: dict[str, Any] = {}
    if all(k in rect for k in ("x1", "y1", "x2", "y2")):
        x1, y1, x2, y2 = number_array(path, where, [_first(rect[k]) for k in ("x1", "y1", "x2", "y2")], 4, "head box")
        extra["bbox_head"] = [x1, y1, x2 - x1, y2 - y1]
    score = rect.get("score")
    person_score = None if score is None else float(number_array(path, where, [_first(score)], 1, "score")[0])
    return PersonRecord(frame=frame, track_id=track_id, keypoints=keypoints, scores=scores if has_scores else None,
                        present=present, person_score=person_score, extra=extra)  # fmt: skip
