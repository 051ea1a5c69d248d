"""MOTChallenge text (box-only trackers: ByteTrack, BoT-SORT, OC-SORT, DeepSORT, ... and MOT detections/GT).

One person per line, comma-separated (docs/formats.md):

    frame, id, bb_left, bb_top, bb_width, bb_height, conf[, x, y, z]      tracker results / det.txt (6-10 fields)
    frame, id, bb_left, bb_top, bb_width, bb_height, consider, class, visibility     MOT16/17/20 ground truth

Frames are 1-based in MOTChallenge (frame_base "auto": 1 unless a frame 0 is seen). `id` -1 means "no id"
(detections). Boxes are used as written (the 1-pixel offset of MOT's 1-based pixel coordinates is well inside the
x1.25 crop padding). In the 9-field ground-truth layout only person classes are kept (1 pedestrian, 2 person on
vehicle, 7 static person); other classes (cars, occluders, ...) are skipped and counted in `seq.meta`.
Records have the box and no keypoints (`present` all False): the top-down initializer gives them a pose.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

import numpy as np

from posefix_video.errors import InputError
from posefix_video.io.checks import (
    box_only_record,
    check_box,
    check_frame_range,
    check_sequence,
    resolve_frame_base,
)
from posefix_video.io.csv_tracks import _number  # one number parser for the comma-separated formats
from posefix_video.keypoints import KeypointLayout, resolve_layout
from posefix_video.records import PoseSequence

log = logging.getLogger(__name__)

MOT_FIELDS = range(6, 11)  # frame, id, box (4) and up to 4 more
GT_FIELDS = 9
PERSON_CLASSES = {1: "pedestrian", 2: "person on vehicle", 7: "static person"}
_COLUMNS = ("frame", "id", "bb_left", "bb_top", "bb_width", "bb_height")


def read_mot_txt(
    path: str | os.PathLike,
    text: str,
    frame_base: int | str = "auto",
    layout: str | KeypointLayout | None = None,
    num_frames: int | None = None,
) -> PoseSequence:
    """Reads MOTChallenge text into box-only records (see the module docstring).

    Args:
        path: the file (messages, sequence name).
        text: its content.
        frame_base: 0, 1 or "auto" (MOTChallenge numbers frames from 1; a frame 0 makes it 0-based).
        layout: the layout the poses will get (the networks decide; default coco17).
        num_frames: the video's frame count, when known (range check).
    """
    layout = resolve_layout(layout)
    rows = []
    skipped: Counter = Counter()
    for n, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        where = f"line {n}"
        fields = [f.strip() for f in s.split(",")]
        if len(fields) not in MOT_FIELDS:
            raise InputError(path, f"{len(fields)} fields; a MOTChallenge line has 6-10: frame, id, bb_left, "
                             "bb_top, bb_width, bb_height, then conf (results, det.txt) or consider, class, "
                             "visibility (ground truth)", where)  # fmt: skip
        names = _COLUMNS + (("consider", "class", "visibility") if len(fields) == GT_FIELDS else
                            ("conf", "x", "y", "z"))
        values = [_number(path, where, f, c, integer=c in ("frame", "id", "class")) for f, c in zip(fields, names)]
        if len(fields) == GT_FIELDS and int(values[7]) not in PERSON_CLASSES:
            skipped[int(values[7])] += 1
            continue
        rows.append((where, values))
    if skipped:
        log.info("%s: skipped %d boxes of non-person classes %s", os.fspath(path), sum(skipped.values()),
                 dict(skipped))
    numbers = [int(v[0]) for _, v in rows]
    if frame_base == "auto" and numbers and min(numbers) >= 1:
        base = 1
        log.info("%s: frame numbers %d..%d read as 1-based (MOTChallenge numbers frames from 1)", os.fspath(path),
                 min(numbers), max(numbers))
    else:
        base = resolve_frame_base(path, numbers, frame_base, num_frames)
    seq = PoseSequence(name=Path(os.fspath(path)).stem, layout=layout, num_frames=num_frames, source_format="mot",
                       meta={"frame_base": base, "skipped_classes": dict(skipped)})
    where_of: dict[int, str] = {}
    for where, values in rows:
        frame = int(values[0]) - base
        check_frame_range(path, where, frame, num_frames, base)
        box = check_box(path, where, np.array(values[2:6]))
        tid = None if values[1] < 0 else int(values[1])
        gt = len(values) == GT_FIELDS
        score = None if gt or len(values) < 7 else float(values[6])
        extra = {"consider": int(values[6]), "class": int(values[7]), "visibility": values[8]} if gt else {}
        record = box_only_record(frame, tid, box, score, extra)
        seq.add(record)
        where_of[id(record)] = where
    check_sequence(path, seq, where_of)
    return seq
