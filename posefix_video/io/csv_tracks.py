"""Plain CSV tracks: `frame,track_id,` then x,y,score for 17 joints (53 columns; header line optional).

Spec (docs/formats.md): comma-separated; blank lines and lines starting with `#` skipped; a first line whose first
field is not a number is a header. `track_id` empty or -1 means "no id". A joint whose x, y and score are all 0 is
absent. Frame numbers follow the frame base rules (`checks.resolve_frame_base`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from posefix_video.atomic import atomic_open
from posefix_video.errors import InputError
from posefix_video.io.checks import (
    check_frame_range,
    check_sequence,
    make_record,
    resolve_frame_base,
)
from posefix_video.keypoints import COCO17, KeypointLayout, resolve_layout
from posefix_video.records import PoseSequence

NUM_COLUMNS = 2 + 17 * 3
CSV_HEADER = ["frame", "track_id"] + [f"{n}_{c}" for n in COCO17.names for c in ("x", "y", "score")]


def _number(path, where: str, text: str, column: str, integer: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(path, f"column `{column}` is {text.strip()[:30]!r}, expected a number", where) from None
    if not np.isfinite(value):
        raise InputError(path, f"column `{column}` is {text.strip()}, expected a finite number", where)
    if integer and not value.is_integer():
        raise InputError(path, f"column `{column}` is {text.strip()}, expected an integer", where)
    return value


def data_lines(text: str) -> list[tuple[int, list[str]]]:
    """(1-based line number, fields) of the non-blank, non-comment lines."""
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if s and not s.startswith("#"):
            out.append((n, [f.strip() for f in s.split(",")]))
    return out


def read_csv_tracks(
    path: str | os.PathLike,
    text: str,
    frame_base: int | str = "auto",
    layout: str | KeypointLayout | None = None,
    num_frames: int | None = None,
) -> PoseSequence:
    """Reads the plain CSV format (see the module docstring) into a PoseSequence (layout coco17 by default)."""
    layout = resolve_layout(layout)
    lines = data_lines(text)
    if lines and not is_number(lines[0][1][0]):
        lines = lines[1:]  # header
    if not lines:
        raise InputError(path, "the CSV file has no data lines")
    rows = []
    for n, fields in lines:
        where = f"line {n}"
        if len(fields) != NUM_COLUMNS:
            raise InputError(path, f"{len(fields)} columns, expected {NUM_COLUMNS} (frame, track_id, then x, y, "
                             "score for 17 joints)", where)  # fmt: skip
        frame = int(_number(path, where, fields[0], "frame", integer=True))
        tid = None
        if fields[1] != "":
            tid = int(_number(path, where, fields[1], "track_id", integer=True))
            tid = None if tid == -1 else tid
        try:  # one numpy conversion per line; the per-field pass below only runs to name a bad field
            values = np.array(fields[2:], dtype=np.float64)
            ok = bool(np.isfinite(values).all())
        except ValueError:
            ok = False
        if not ok:
            values = np.array([_number(path, where, f, CSV_HEADER[2 + i]) for i, f in enumerate(fields[2:])])
        rows.append((where, frame, tid, values))
    base = resolve_frame_base(path, (r[1] for r in rows), frame_base, num_frames)
    seq = PoseSequence(name=Path(path).stem, layout=layout, num_frames=num_frames, source_format="csv",
                       meta={"frame_base": base})  # fmt: skip
    where_of: dict[int, str] = {}
    for where, frame, tid, values in rows:
        check_frame_range(path, where, frame - base, num_frames, base)
        record = make_record(frame - base, tid, values, None, use_v_as_scores=True)
        seq.add(record)
        where_of[id(record)] = where
    check_sequence(path, seq, where_of)
    return seq


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def write_csv_tracks(seq: PoseSequence, path: str | os.PathLike, frame_base: int = 0) -> None:
    """Writes the CSV format with a header (atomically); score column = joint score, else the third value, else 1."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(",".join(CSV_HEADER) + "\n")
        for p in seq.persons():
            third = p.scores if p.scores is not None else p.visibility if p.visibility is not None else np.ones(17)
            trip = np.concatenate([p.keypoints, third[:, None]], axis=1)
            trip[~p.present] = 0.0
            tid = "" if p.track_id is None else str(p.track_id)
            f.write(f"{p.frame + frame_base},{tid}," + ",".join(repr(float(v)) for v in trip.ravel()) + "\n")
