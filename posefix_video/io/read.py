"""`read_tracks`: one entry point for every supported input, the format told by the file's content.

Detection (docs/formats.md): JSON object with `annolist` -> PoseTrack 2017; with `images` and `annotations` ->
PoseTrack 2018; JSON list of entries with `keypoints` -> AlphaPose when an entry has `idx` or `box`, else COCO
keypoint results; list of entries with `bbox` and no `keypoints` -> COCO detections (box-only persons, read by the
COCO reader); text with 53 comma fields (or a header) -> CSV; text with 6-10 comma fields per line -> MOTChallenge
(box-only persons).
mmpose dumps: a JSON object with `instance_info` (demo), a list of `{"frame_id", "instances"}` (inferencer on a
video) or of instances with `keypoint_scores` / [x, y] point lists (inferencer on an image). Ultralytics YOLO-pose
labels: a folder of `*.txt` files (or a run folder with `labels/`), or one such file, whose lines hold 39-41 or 56-58
space-separated numbers (pose), or 5-7 (detect/track labels: box-only persons).

Box-only persons (MOTChallenge, COCO detections, ultralytics detection labels) have `box` set and every joint
absent; refine_video gives them a pose with the top-down initializer (--initializer) before PoseFix.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from posefix_video.errors import InputError
from posefix_video.io.checks import parse_json, read_text
from posefix_video.io.coco_results import read_keypoint_results
from posefix_video.io.csv_tracks import NUM_COLUMNS, data_lines, is_number, read_csv_tracks
from posefix_video.io.mmpose_dump import is_mmpose_dump, read_mmpose_dump
from posefix_video.io.mot_txt import read_mot_txt
from posefix_video.io.posetrack17 import read_posetrack17
from posefix_video.io.posetrack18 import read_posetrack18
from posefix_video.io.ultralytics_txt import DETECTION_COLUMNS, is_label_dir, looks_like_labels, read_ultralytics_txt
from posefix_video.keypoints import KeypointLayout, get_layout
from posefix_video.records import PoseSequence

log = logging.getLogger(__name__)

FORMATS = ("auto", "posetrack18", "posetrack17", "coco", "alphapose", "csv", "mmpose", "ultralytics", "mot")
_POSE_FORMATS = ("PoseTrack 2018 or 2017 JSON, COCO keypoint results JSON, AlphaPose JSON, mmpose prediction JSON, "
                 "ultralytics YOLO-pose labels (a folder of .txt files), or the posefix CSV; boxes only: "
                 "MOTChallenge text, COCO detections JSON, ultralytics detect/track labels")


def detect_format(path: str | os.PathLike, text: str) -> tuple[str, Any]:
    """(format name, parsed JSON or None) of a file's text; refuses unknown content."""
    head = text.lstrip()[:1]
    if head in ("{", "["):
        data = parse_json(path, text)
        return _json_format(path, data), data
    lines = data_lines(text)
    fields = lines[0][1]
    spaced = len(fields) == 1 and len(lines[0][1][0].split()) > 1
    if spaced:
        fields = lines[0][1][0].split()  # whitespace-separated: ultralytics pose or detection labels
        if looks_like_labels(fields) or (len(fields) in DETECTION_COLUMNS and all(is_number(f) for f in fields)):
            return "ultralytics", None
    numeric = all(is_number(f) for f in fields)
    if not numeric and len(fields) == NUM_COLUMNS:
        return "csv", None
    if numeric and 6 <= len(fields) <= 10 and not spaced:
        return "mot", None  # frame, id, box, ...: MOTChallenge (comma-separated)
    if numeric and len(fields) > 10 or str(path).lower().endswith(".csv"):
        return "csv", None  # the CSV reader names the line with the wrong column count
    raise InputError(path, f"unknown format: not JSON, and the first line has {len(fields)} fields (the CSV format "
                     f"has {NUM_COLUMNS}); supported: {_POSE_FORMATS}")  # fmt: skip


def _json_format(path, data: Any) -> str:
    if is_mmpose_dump(data):
        return "mmpose"
    if isinstance(data, dict):
        if "annolist" in data:
            return "posetrack17"
        if "images" in data and "annotations" in data:
            return "posetrack18"
        keys = ", ".join(list(data)[:6])
        raise InputError(path, f"unknown JSON format: an object with keys {keys}; supported: {_POSE_FORMATS}")
    if not isinstance(data, list):
        raise InputError(path, f"unknown JSON format: a {type(data).__name__}; supported: {_POSE_FORMATS}")
    entries = [e for e in data if isinstance(e, dict)]
    if not entries:
        if not data:
            return "coco"  # an empty results list: no persons
        raise InputError(path, f"unknown JSON format: a list of {type(data[0]).__name__}; supported: {_POSE_FORMATS}")
    if any("keypoints" in e for e in entries):
        return "alphapose" if any("idx" in e or "box" in e for e in entries) else "coco"
    if any("bbox" in e for e in entries):
        return "coco"  # COCO detection results: box-only persons (the reader names a malformed entry)
    raise InputError(path, f"unknown JSON format: list entries with keys {', '.join(list(entries[0])[:6])}; "
                     f"supported: {_POSE_FORMATS}")  # fmt: skip



def read_tracks(
    path: str | os.PathLike,
    format: str = "auto",
    frame_base: int | str = "auto",
    layout: str | KeypointLayout | None = None,
    num_frames: int | None = None,
    image_size: tuple[int, int] | None = None,
    frame_names: list[str] | None = None,
) -> PoseSequence:
    """Reads any supported tracker/pose output into a PoseSequence, every record validated.

    Args:
        path: the input file, or for ultralytics labels a folder (`labels/` or the run folder holding it).
        format: "auto" (by content) or one of "posetrack18", "posetrack17", "coco" (keypoint results and/or
            detections), "alphapose", "csv", "mmpose", "ultralytics" (pose and/or detection labels), "mot".
        frame_base: 0, 1 or "auto" for formats that carry frame numbers (CSV, COCO results, AlphaPose, mmpose,
            ultralytics, MOTChallenge: auto reads MOT as 1-based unless a frame 0 is seen); auto decides and logs
            a warning saying what it chose and why. PoseTrack files ignore it
            (frames are positions in the file's image list).
        layout: layout of COCO-style formats (COCO results, AlphaPose, CSV, mmpose, ultralytics): "coco17"
            (default; mmpose demo dumps of a posetrack18 model: posetrack18) or "posetrack18". PoseTrack files
            carry their own layout; a different `layout` is refused.
        num_frames: the video's frame count, when known: used by the frame base rule and the range check.
        image_size: (width, height) of the frames in pixels; required by ultralytics labels (normalised
            coordinates), ignored by the other formats.
        frame_names: the image stems of a frame folder in frame order; ultralytics labels named after their
            images (`000012.txt`) are then paired with the frames by name (see `read_ultralytics_txt`).

    Raises:
        InputError: unreadable, malformed or unknown input; the message names the file, the record and
            the problem.
    """
    if format not in FORMATS:
        raise InputError(path, f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    if isinstance(layout, str):
        try:
            layout = get_layout(layout)
        except ValueError as err:
            raise InputError(path, str(err)) from None
    if format in ("auto", "ultralytics") and os.path.isdir(path):
        if format == "auto" and not is_label_dir(path):
            raise InputError(path, "is a directory without ultralytics pose label files (*.txt here or in "
                             f"`labels/`); give a file: {_POSE_FORMATS}")  # fmt: skip
        format, text = "ultralytics", ""
    else:
        text = read_text(path)
    if format == "auto":
        format, data = detect_format(path, text)
        log.info("%s: detected format %s", os.fspath(path), format)
    else:
        data = parse_json(path, text) if format not in ("csv", "ultralytics", "mot") else None
    if format == "ultralytics":
        seq = read_ultralytics_txt(path, image_size, frame_base=frame_base, layout=layout, num_frames=num_frames,
                                   frame_names=frame_names)  # fmt: skip
    elif format == "mmpose":
        seq = read_mmpose_dump(path, data, frame_base=frame_base, layout=layout, num_frames=num_frames)
    elif format == "csv":
        seq = read_csv_tracks(path, text, frame_base=frame_base, layout=layout, num_frames=num_frames)
    elif format == "mot":
        seq = read_mot_txt(path, text, frame_base=frame_base, layout=layout, num_frames=num_frames)
    elif format in ("coco", "alphapose"):
        seq = read_keypoint_results(path, data, flavor=format, frame_base=frame_base, layout=layout,
                                    num_frames=num_frames)  # fmt: skip
    else:
        seq = read_posetrack18(path, data) if format == "posetrack18" else read_posetrack17(path, data)
        if layout is not None and layout.name != seq.layout.name:
            raise InputError(path, f"the file's keypoints are in the {seq.layout.name} layout, not {layout.name}")
        if num_frames is not None and num_frames != seq.num_frames:
            log.warning("%s: the file lists %d frames, the video has %d; frames are paired by position",
                        os.fspath(path), seq.num_frames, num_frames)  # fmt: skip
    log.info("%s: %d persons on %d frames (%s)", os.fspath(path), seq.num_persons, len(seq.frames), format)
    return seq

