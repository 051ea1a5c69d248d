"""Ultralytics YOLO-pose label files (`yolo pose track|predict ... save_txt=True [save_conf=True]`).

Ultralytics writes one file per frame that has a person, into `<run>/labels/`: `<video stem>_<frame>.txt` for
a video (frame counted from 1: the loader increments its counter before returning a frame), `<image stem>.txt`
for an image source. A frame without a file has no person. One person per line, space-separated:

    cls cx cy w h x1 y1 v1 ... x17 y17 v17 [conf] [track_id]

box and keypoints normalised to the image width/height (so reading needs the frame size), `v` the keypoint
confidence, `conf` the box confidence (with `save_conf=True`), `track_id` an integer (when tracking). Models
without keypoint confidences write `x y` pairs only. Ultralytics sets x = y = 0 for keypoints with confidence
< 0.5, so a keypoint at (0, 0) is absent (its position is lost). A line with 57 values holds a track id when that
value is an integer on every 57-value line of the folder, else a confidence.

Detection models (`yolo detect track|predict ... save_txt=True`) write `cls cx cy w h [conf] [track_id]` (5-7
values): box-only persons (class 0 only; other classes are skipped and counted), to which the top-down
initializer gives a pose. A 6-value line ends with a track id or a confidence by the same rule as 57-value lines.
A folder may mix pose and detection lines.
"""

from __future__ import annotations

import logging
import os
import re
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
from posefix_video.keypoints import KeypointLayout, resolve_layout
from posefix_video.records import PersonRecord, PoseSequence

log = logging.getLogger(__name__)

NUM_KP = 17
# columns -> (values per keypoint, trailing columns): box (5) + 17 keypoints + optional conf and track id
LINE_SHAPES = {5 + NUM_KP * 3 + e: (3, e) for e in range(3)} | {5 + NUM_KP * 2 + e: (2, e) for e in range(3)}
DETECTION_COLUMNS = (5, 6, 7)  # cls, box, [conf], [track id]: a detection model's labels
_NAME = re.compile(r"^(?P<stem>.*)_(?P<frame>\d+)$")


def labels_source(path: str | os.PathLike) -> Path:
    """The file or folder whose files are read: `path`, or its `labels/` subfolder for a run folder (for a
    fingerprint of the tracks that covers the label files)."""
    path = Path(path)
    if path.is_dir() and not any(p.is_file() for p in path.glob("*.txt")) and (path / "labels").is_dir():
        return path / "labels"
    return path


def label_files(path: str | os.PathLike) -> list[Path]:
    """The `*.txt` label files of a labels folder, of a run folder holding `labels/`, or the file itself."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    files = sorted(p for p in path.glob("*.txt") if p.is_file())
    if not files and (path / "labels").is_dir():
        files = sorted(p for p in (path / "labels").glob("*.txt") if p.is_file())
    return files


def looks_like_labels(fields: list[str]) -> bool:
    """True for one whitespace-split line with an ultralytics pose column count, all numbers."""
    if len(fields) not in LINE_SHAPES:
        return False
    try:
        np.array(fields, dtype=np.float64)
    except ValueError:
        return False
    return True


def is_label_dir(path: str | os.PathLike) -> bool:
    """True when `path` is a folder whose first non-empty label file's first line looks like ultralytics pose or
    detection labels, or cannot be read (the reader then names the file and the problem)."""
    if not Path(path).is_dir():
        return False
    for f in label_files(path)[:20]:
        try:
            lines = f.read_text(encoding="utf-8").split("\n", 1)
        except (OSError, UnicodeDecodeError):
            return True
        fields = lines[0].split()
        if fields:
            return looks_like_labels(fields) or (len(fields) in DETECTION_COLUMNS and all(map(_is_float, fields)))
    return False


def frame_of(file: Path) -> tuple[str | None, int]:
    """(video stem or None for an image-style name, frame number) from a label file name."""
    m = _NAME.match(file.stem)
    if m:
        return m["stem"], int(m["frame"])
    if file.stem.isdigit():
        return None, int(file.stem)
    raise InputError(file, f"cannot read a frame number from the file name {file.name!r}: expected <video stem>_"
                     "<frame>.txt (ultralytics on a video) or <frame>.txt (on numbered images)")  # fmt: skip


def _parse_file(file: Path) -> list[tuple[str, int, np.ndarray]]:
    """[(where, columns, values)] of one label file's non-blank lines."""
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputError(file, f"not a text file (byte {err.start} is not UTF-8)") from None
    except OSError as err:
        raise InputError(file, f"cannot read the file ({err.strerror})") from None
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"line {n}"
        if len(fields) not in LINE_SHAPES and len(fields) not in DETECTION_COLUMNS:
            raise InputError(file, f"{len(fields)} columns; an ultralytics pose line for 17 COCO keypoints has 56 "
                             "(cls, cx, cy, w, h, then x, y, conf per keypoint), 57 (+ box conf or track id) or 58 "
                             "(+ both), or 39-41 without keypoint confidences; a detection line (boxes only) has "
                             "5-7 (cls, cx, cy, w, h, [conf], [track id]); 17 COCO keypoints are needed (other "
                             "keypoint counts are not supported)", where)  # fmt: skip
        try:
            values = np.array(fields, dtype=np.float64)
            bad = np.flatnonzero(~np.isfinite(values))
        except ValueError:
            bad = [i for i, f in enumerate(fields) if not _is_float(f)]
        if len(bad):
            i = int(bad[0])
            raise InputError(file, f"column {i + 1} is {fields[i][:30]!r}, expected a finite number", where)
        rows.append((where, len(fields), values))
    return rows


def _is_float(text: str) -> bool:
    try:
        return bool(np.isfinite(float(text)))
    except ValueError:
        return False


def read_ultralytics_txt(
    path: str | os.PathLike,
    image_size: tuple[int, int] | None,
    frame_base: int | str = "auto",
    layout: str | KeypointLayout | None = None,
    num_frames: int | None = None,
    frame_names: list[str] | None = None,
) -> PoseSequence:
    """Reads ultralytics pose label files (a labels folder, a run folder with `labels/`, or one file).

    Args:
        path: the folder (or one label file).
        image_size: (width, height) of the frames in pixels; required (the files hold normalised coordinates).
        frame_base: 0, 1 or "auto". Auto: video-style names (`<stem>_<k>.txt`) are 1-based as ultralytics writes
            them (0-based if a frame 0 is seen); image-style names (`<k>.txt`) follow `checks.resolve_frame_base`.
        layout: "coco17" (default) or "posetrack18".
        num_frames: the video's frame count, when known (range check; frame base of image-style names).
        frame_names: the image stems of a frame folder in frame order (`000000`, ...). Image-style label files
            carry their image's number, so with `frame_base="auto"` each file goes to the frame of the image with its
            name, exactly (no frame base guess, gaps in the image numbers included); a label naming no image is
            refused.

    Returns:
        Records with keypoints (17, 2) in frame pixels, `scores` = `visibility` = keypoint confidence (None for
        x, y-only models), `box` [x, y, w, h] in pixels, `person_score` the box confidence, `track_id`.
    """
    if image_size is None:
        raise InputError(path, "ultralytics labels hold coordinates normalised to the image size: pass "
                         "image_size=(width, height) (refine_video passes the decoded video's size)")  # fmt: skip
    try:
        width, height = (float(v) for v in image_size)
    except (TypeError, ValueError):
        width = height = float("nan")
    if not (width > 0 and height > 0 and np.isfinite([width, height]).all()):
        raise InputError(path, f"image_size must be two positive numbers (width, height), got {image_size!r}")
    layout = resolve_layout(layout)
    files = label_files(path)
    if not files:
        raise InputError(path, "no ultralytics label files (*.txt) here, nor in a `labels/` subfolder")
    stems: dict[str | None, list[str]] = {}
    rows = []  # (file, where, frame number, columns, values)
    for f in files:
        stem, number = frame_of(f)
        stems.setdefault(stem, []).append(f.name)
        rows.extend((f, where, number, cols, values) for where, cols, values in _parse_file(f))
    if len(stems) > 1:
        names = ", ".join(f"{s or '<numbered images>'} ({v[0]}, ...)" for s, v in list(stems.items())[:4])
        raise InputError(path, f"label files of {len(stems)} sources: {names}; put one video's files in a folder of "
                         "their own")  # fmt: skip
    video_style = next(iter(stems)) is not None
    # A 57-value (pose) or 6-value (detection) line ends with a box confidence or a track id; one decision for the
    # whole folder, for each kind of line.
    single_is_id = {}
    for kind, cols in (("pose", [c for c, (_, e) in LINE_SHAPES.items() if e == 1]), ("detection", [6])):
        ends = np.array([r[4][-1] for r in rows if r[3] in cols])
        single_is_id[kind] = bool(ends.size) and bool(np.all(ends == np.round(ends)))
        if ends.size:
            log.info("%s: %d-value lines end with a %s", os.fspath(path), cols[0],
                     "track id" if single_is_id[kind] else "confidence")
    # detection models label every class: persons (class 0) only
    others = Counter(int(r[4][0]) for r in rows if r[3] in DETECTION_COLUMNS and r[4][0] != 0)
    if others:
        rows = [r for r in rows if not (r[3] in DETECTION_COLUMNS and r[4][0] != 0)]
        log.info("%s: skipped %d boxes of classes other than 0 (person): %s", os.fspath(path),
                 sum(others.values()), dict(others))
    numbers = [r[2] for r in rows]
    by_name = None
    if frame_base == "auto" and not video_style and frame_names is not None:
        # the label's stem is its image's stem: pair by name instead of guessing a base from the numbers
        index = {int(name): i for i, name in enumerate(frame_names) if name.isdigit()}
        by_name = {}
        for f, (_, number) in zip(files, map(frame_of, files)):
            if number not in index:
                raise InputError(f, f"no image numbered {number} in the frame folder ({len(frame_names)} frames"
                                 f"{', ' + frame_names[0] + ' .. ' + frame_names[-1] if frame_names else ''}); "
                                 "labels of another image folder?")  # fmt: skip
            by_name[f] = index[number]
        log.info("%s: label files paired with the frame images by name", os.fspath(path))
        base = 0
    elif frame_base == "auto" and video_style and numbers and min(numbers) > 0:
        base = 1
        log.warning("%s: frame numbers %d..%d read as 1-based (ultralytics numbers video frames from 1); pass "
                    "frame_base=0 or 1 (--frame-base) if that is wrong", os.fspath(path), min(numbers),
                    max(numbers))  # fmt: skip
    else:
        base = resolve_frame_base(path, numbers, frame_base, num_frames)
    name = next(iter(stems)) if video_style else Path(path).stem
    seq = PoseSequence(name=name, layout=layout, num_frames=num_frames, source_format="ultralytics",
                       meta={"frame_base": base, "image_size": (width, height)})  # fmt: skip
    if others:
        seq.meta["skipped_classes"] = dict(others)
    scale = np.array([width, height])
    where_of: dict[int, str] = {}
    for f, line, number, cols, values in rows:
        where = f"{f.name}: {line}"
        frame = number - base if by_name is None else by_name[f]
        check_frame_range(f, line, frame, num_frames, base)
        cx, cy, bw, bh = values[1:5]
        box = np.array([(cx - bw / 2) * width, (cy - bh / 2) * height, bw * width, bh * height])
        if cols in DETECTION_COLUMNS:  # cls cx cy w h [conf] [track id]: a box-only person
            tail = values[5:]
            conf = float(tail[0]) if cols == 7 or (cols == 6 and not single_is_id["detection"]) else None
            tid = None
            if cols == 7 or (cols == 6 and single_is_id["detection"]):
                if tail[-1] != round(tail[-1]):
                    raise InputError(f, f"track id (last column) is {tail[-1]:g}, expected an integer", line)
                tid = int(tail[-1])
            record = box_only_record(frame, tid, check_box(f, line, box), conf)
            seq.add(record)
            where_of[id(record)] = where
            continue
        per_kp, trailing = LINE_SHAPES[cols]
        kp = values[5 : 5 + NUM_KP * per_kp].reshape(NUM_KP, per_kp)
        tail = values[5 + NUM_KP * per_kp :]
        conf = tid = None
        if trailing == 2 or (trailing == 1 and not single_is_id["pose"]):
            conf = float(tail[0])
        if trailing == 2 or (trailing == 1 and single_is_id["pose"]):
            if tail[-1] != round(tail[-1]):
                raise InputError(f, f"track id (last column) is {tail[-1]:g}, expected an integer", line)
            tid = int(tail[-1])
        present = ~((kp[:, 0] == 0) & (kp[:, 1] == 0))  # ultralytics zeroes x, y of low-confidence keypoints
        xy = np.where(present[:, None], kp[:, :2] * scale, 0.0)
        v = np.where(present, kp[:, 2], 0.0) if per_kp == 3 else None
        record = PersonRecord(frame=frame, track_id=tid, keypoints=xy, scores=v, present=present,
                              visibility=None if v is None else v.copy(), box=box, person_score=conf,
                              extra={"class": int(values[0])} if values[0] != 0 else {})  # fmt: skip
        seq.add(record)
        where_of[id(record)] = where
    check_sequence(path, seq, where_of)
    return seq
