"""Shared input checks of the readers: JSON loading, number lists, frame bases, per-frame track-id uniqueness.

Every failure raises `InputError` naming the file, the record and the problem, so a reader never ends in a
traceback or a half-read sequence.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from posefix_video.errors import InputError
from posefix_video.records import PersonRecord, PoseSequence

log = logging.getLogger(__name__)

FRAME_BASES = ("auto", 0, 1)

# No camera frame is 100 000 px wide (8K is 7680): a keypoint coordinate beyond +-MAX_COORDINATE px is a broken
# value (1e7, 1e300), not a joint outside the frame. Such a file is refused naming the joint (docs/formats.md).
MAX_COORDINATE = 1e5


def read_text(path: str | os.PathLike) -> str:
    """The file's text; refuses a missing, unreadable, binary or empty (whitespace only) file."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory, expected a file") from None
    except OSError as err:
        raise InputError(path, f"cannot read the file ({err.strerror})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(path, f"not a text file (byte {err.start} is not UTF-8)") from None
    if not text.strip():
        raise InputError(path, "the file is empty")
    return text


def parse_json(path: str | os.PathLike, text: str) -> Any:
    """Parses JSON text; a truncated or broken file gives the line and column where parsing stopped."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        hint = " (the file looks truncated)" if err.pos >= len(text.rstrip()) else ""
        raise InputError(path, f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}{hint}") from None


def load_json(path: str | os.PathLike) -> Any:
    return parse_json(path, read_text(path))


def number_array(path: str | os.PathLike, where: str, values: Any, count: int | None, what: str) -> np.ndarray:
    """`values` as a (count,) float64 array of finite JSON numbers.

    Args:
        path: the file (for messages).
        where: the record's location, e.g. "annotations[3] (image_id 1, track_id 2)".
        values: the decoded JSON value that should be a flat list of numbers.
        count: required length, or None for any length.
        what: the field's name for messages, e.g. "keypoints".
    """
    if not isinstance(values, list):
        raise InputError(path, f"`{what}` must be a list of numbers, found {type(values).__name__}", where)
    if count is not None and len(values) != count:
        detail = f" ({count // 3} joints x (x, y, v))" if what == "keypoints" and count % 3 == 0 else ""
        raise InputError(path, f"`{what}` has {len(values)} values, expected {count}{detail}", where)
    # One numpy conversion instead of a Python loop; strings, null and nested lists show up in the dtype/shape.
    arr = np.array(values)
    # JSON true/false are not numbers, but numpy turns them into 1.0/0.0 inside a list of numbers
    if arr.ndim != 1 or arr.dtype.kind not in "iuf" and not (arr.dtype.kind == "b" and arr.size == 0) or any(
            type(v) is bool for v in values):  # fmt: skip
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise InputError(path, f"`{what}`[{i}] is {json.dumps(v)[:40]}, expected a number", where)
    arr = arr.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        i = int(bad[0])
        raise InputError(path, f"`{what}`[{i}] is {values[i]}, expected a finite number", where)
    return arr


def integer_id(path: str | os.PathLike, where: str, value: Any, what: str = "track_id") -> int:
    """An integer id; integral floats (3.0) are accepted, everything else refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(path, f"`{what}` is {json.dumps(value)[:40]}, expected an integer", where)
    if isinstance(value, float) and not (np.isfinite(value) and value.is_integer()):
        raise InputError(path, f"`{what}` is {value}, expected an integer", where)
    return int(value)


def triplets_to_pose(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(51,) x, y, v values -> keypoints (17, 2), present (17,), third values (17,).

    A joint is absent iff its triplet is exactly (0, 0, 0), as poseval reads it; anything else is present.
    """
    trip = arr.reshape(-1, 3)
    present = ~(trip == 0).all(axis=1)
    keypoints = np.where(present[:, None], trip[:, :2], 0.0)
    return keypoints, present, trip[:, 2].copy()


def resolve_frame_base(
    path: str | os.PathLike, numbers: Iterable[int], frame_base: int | str, num_frames: int | None
) -> int:
    """Chooses the frame base of a file whose records carry frame numbers, and logs the choice and why.

    Rules of `frame_base="auto"`, in order: the smallest number is 0 -> 0-based; the largest equals `num_frames`
    -> 1-based; the smallest is 1 -> 1-based (most 1-based writers start at 1); otherwise 0-based (numbers taken
    as they are), flagged as a guess. An explicit 0 or 1 is used as given.
    """
    if frame_base not in FRAME_BASES:
        raise InputError(path, f"frame_base must be 'auto', 0 or 1, got {frame_base!r}")
    if frame_base != "auto":
        return int(frame_base)
    numbers = list(numbers)
    if not numbers:
        return 0
    lo, hi = min(numbers), max(numbers)
    name = os.fspath(path)
    # a frame 0 (not 1-based) or a frame numbered the frame count (not 0-based) leaves one reading: info, not warning
    certain = lo == 0 or (num_frames is not None and hi == num_frames)
    if lo == 0:
        base, why = 0, "the smallest frame number is 0"
    elif num_frames is not None and hi == num_frames:
        base, why = 1, f"the largest frame number equals the frame count {num_frames}"
    elif lo == 1:
        base, why = 1, "the smallest frame number is 1" + (
            " and the frame count is unknown" if num_frames is None else " (a guess: no frame 0 and no frame "
            f"{num_frames} seen)"
        )
    else:
        base, why = 0, f"a GUESS: frame numbers run {lo}..{hi}, neither starts at 0/1 nor ends at the frame count"
    log.log(
        logging.INFO if certain else logging.WARNING,
        "%s: frame numbers %d..%d read as %d-based (%s); pass frame_base=0 or 1 (--frame-base) if that is wrong",
        name, lo, hi, base, why,
    )  # fmt: skip
    return base


def check_frame_range(path: str | os.PathLike, where: str, frame: int, num_frames: int | None, base: int) -> None:
    """Refuses a frame index outside [0, num_frames) after the frame base was applied."""
    if frame < 0:
        hint = " (a frame 0 in a file read as 1-based)" if base == 1 and frame == -1 else ""
        raise InputError(path, f"frame {frame + base} gives frame index {frame} < 0{hint}", where)
    if num_frames is not None and frame >= num_frames:
        raise InputError(path, f"frame index {frame} is beyond the video's {num_frames} frames", where)


def check_sequence(path: str | os.PathLike, seq: PoseSequence, where: dict[int, str]) -> None:
    """The checks every reader runs on the records it read: plausible coordinates, unique track ids per frame."""
    check_coordinates(path, seq, where)
    check_unique_tracks(path, seq, where)


def check_coordinates(path: str | os.PathLike, seq: PoseSequence, where: dict[int, str]) -> None:
    """Refuses a present keypoint with a coordinate beyond +-MAX_COORDINATE px (vectorised over all records)."""
    records = [p for persons in seq.frames.values() for p in persons]
    if not records:
        return
    keypoints = np.stack([p.keypoints for p in records])  # (P, J, 2)
    present = np.stack([p.present for p in records])  # (P, J)
    bad = present & (np.abs(keypoints) > MAX_COORDINATE).any(axis=-1)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        p = records[i]
        x, y = p.keypoints[j]
        raise InputError(path, f"keypoint {j} ({seq.layout.names[j]}) is at ({x:g}, {y:g}), more than "
                         f"{MAX_COORDINATE:g} px from the frame: not a real coordinate ({int(bad.sum())} joint(s) "
                         "like this in the file); fix or remove them (docs/formats.md)", where.get(id(p)))


def check_unique_tracks(path: str | os.PathLike, seq: PoseSequence, where: dict[int, str]) -> None:
    """Refuses two persons with the same track id in one frame. `where[id(record)]` locates a record."""
    for frame, persons in seq.frames.items():
        seen: dict[int, PersonRecord] = {}
        for p in persons:
            if p.track_id is None:
                continue
            if p.track_id in seen:
                raise InputError(
                    path,
                    f"track_id {p.track_id} appears twice in frame {frame} (first at {where[id(seen[p.track_id])]})",
                    where[id(p)],
                )
            seen[p.track_id] = p


def make_record(
    frame: int,
    track_id: int | None,
    values: np.ndarray,
    scores: np.ndarray | None,
    use_v_as_scores: bool = False,
    **fields: Any,
) -> PersonRecord:
    """A PersonRecord from 51 x, y, v values. With `use_v_as_scores`, v is also the per-joint score."""
    keypoints, present, third = triplets_to_pose(values)
    if use_v_as_scores:
        scores = third.copy()
    return PersonRecord(frame=frame, track_id=track_id, keypoints=keypoints, scores=scores, present=present,
                        visibility=third, **fields)  # fmt: skip


def check_box(path: str | os.PathLike, where: str, box: np.ndarray) -> np.ndarray:
    """A person box [x, y, w, h] (finite numbers, already checked): w, h >= 0 and within +-MAX_COORDINATE px. A
    zero-size box is kept (the initializer passes it through without a pose)."""
    box = np.asarray(box, dtype=np.float64).reshape(4)
    if box[2] < 0 or box[3] < 0:
        raise InputError(path, f"box [x, y, w, h] = {[float(f'{v:g}') for v in box]} has a negative size", where)
    if (np.abs(box) > MAX_COORDINATE).any():
        raise InputError(path, f"box [x, y, w, h] = {[float(f'{v:g}') for v in box]} reaches more than "
                         f"{MAX_COORDINATE:g} px from the frame: not a real box", where)
    return box


def box_only_record(frame: int, track_id: int | None, box: np.ndarray, score: float | None,
                    extra: dict[str, Any] | None = None) -> PersonRecord:
    """A person with a box [x, y, w, h] and no keypoints (every joint absent): a box-only tracker's detection, to
    which the top-down initializer gives a pose."""
    return PersonRecord(frame=frame, track_id=track_id, keypoints=np.zeros((17, 2)), scores=None,
                        present=np.zeros(17, dtype=bool), box=box, person_score=score, extra=extra or {})
