"""PoseTrack 2018 JSON (one video per file): reader and the poseval-compatible writer.

Frames are positions in the file's `images` list (poseval pairs prediction and GT frames by position). The
reader keeps `images` as it is; the writer copies it back, or synthesises PoseTrack-shaped entries when the
sequence has none.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from posefix_video.atomic import write_json_atomic
from posefix_video.errors import InputError, PosefixError
from posefix_video.io.checks import (
    check_sequence,
    integer_id,
    load_json,
    make_record,
    number_array,
)
from posefix_video.keypoints import CATEGORY_SKELETON, POSETRACK18, layout_from_names
from posefix_video.records import PersonRecord, PoseSequence

log = logging.getLogger(__name__)

MAX_TRACK_ID = 10000  # poseval asserts track_id < 10000
SEQ_TYPES = {"mpii": 1, "bonn": 2, "mpiinew": 3}  # T of the image id T*1e10 + video*1e4 + frame
DEFAULT_SEQ_NAME = "000000_mpiinew_test"
META_KEY = "posefix"  # top-level key of our notes in written files; poseval reads only images/annotations/categories
_SEQ_NAME = re.compile(r"^(\d+)_(mpii|bonn|mpiinew)(_|$)")
# Annotation keys the reader interprets; every other key goes to PersonRecord.extra untouched.
_OWN_KEYS = ("image_id", "track_id", "keypoints", "scores", "score")


def is_poseval_seq_name(name: str) -> bool:
    """True if poseval can parse `name` as a sequence folder (`NNNNNN_{mpii|bonn|mpiinew}...`)."""
    return _SEQ_NAME.match(name) is not None


def categories_block(names: tuple[str, ...] = POSETRACK18.names) -> list[dict[str, Any]]:
    """The one-entry `categories` list of PoseTrack18 files."""
    return [{"supercategory": "person", "id": 1, "name": "person", "keypoints": list(names),
             "skeleton": [list(e) for e in CATEGORY_SKELETON]}]  # fmt: skip


def read_posetrack18(path: str | os.PathLike, data: dict[str, Any] | None = None) -> PoseSequence:
    """Reads one PoseTrack 2018 video file (ground truth or predictions).

    Args:
        path: the JSON file.
        data: its already parsed content (saves a second parse when the caller detected the format).

    Returns:
        A PoseSequence: frame f = position of the annotation's image in `images`; `images`, image ids and file
        names kept; layout from `categories[0].keypoints`; `scores: []` -> scores None; v flags in `visibility`;
        `score` -> person_score; every other annotation field (bbox_head, bbox, id, ...) in `extra`.
    """
    if data is None:
        data = load_json(path)
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise InputError(path, "not a PoseTrack 2018 file (expected a JSON object with `images` and `annotations`)")
    layout = _read_layout(path, data.get("categories"))
    images = data["images"]
    annotations = data["annotations"]
    if not isinstance(images, list) or not isinstance(annotations, list):
        raise InputError(path, "`images` and `annotations` must be lists")

    frame_of: dict[Any, int] = {}
    file_names: list[str] = []
    image_ids: list[int] = []
    videos: list[str] = []
    for i, img in enumerate(images):
        where = f"images[{i}]"
        if not isinstance(img, dict) or "id" not in img:
            raise InputError(path, "image entry without `id`", where)
        image_id = integer_id(path, where, img["id"], "id")
        if image_id in frame_of:
            raise InputError(path, f"image id {image_id} is listed twice (first at images[{frame_of[image_id]}])",
                             where)  # fmt: skip
        frame_of[image_id] = i
        image_ids.append(image_id)
        name = img.get("file_name")
        if not isinstance(name, str):
            raise InputError(path, "image entry without a `file_name` string", where)
        file_names.append(name)
        video = os.path.basename(os.path.dirname(name))
        if video not in videos:
            videos.append(video)
    if len(videos) > 1:
        shown = ", ".join(videos[:4]) + (", ..." if len(videos) > 4 else "")
        raise InputError(path, f"holds {len(videos)} videos ({shown}); PoseTrack 2018 files hold "
                         "one video each (poseval reads only the first): split the file per video")  # fmt: skip

    seq = PoseSequence(
        name=Path(path).stem, layout=layout, num_frames=len(images), images=images, image_ids=image_ids,
        file_names=file_names, source_format="posetrack18",
        meta={"categories": data.get("categories"), "top_level": _other_top_level(data)},
    )  # fmt: skip
    where_of: dict[int, str] = {}
    count = 3 * layout.num_joints
    for j, ann in enumerate(annotations):
        if not isinstance(ann, dict):
            raise InputError(path, "annotation is not a JSON object", f"annotations[{j}]")
        where = f"annotations[{j}] (image_id {ann.get('image_id')}, track_id {ann.get('track_id')})"
        if "image_id" not in ann:
            raise InputError(path, "annotation without `image_id`", where)
        if ann["image_id"] not in frame_of or isinstance(ann["image_id"], bool):
            raise InputError(path, f"image_id {ann['image_id']!r} is not the id of any entry of `images`", where)
        if "track_id" not in ann:
            raise InputError(path, "annotation without `track_id` (poseval requires one, in predictions too)", where)
        track_id = integer_id(path, where, ann["track_id"])
        if "keypoints" not in ann:
            raise InputError(path, "annotation without `keypoints`", where)
        values = number_array(path, where, ann["keypoints"], count, "keypoints")
        scores = None
        if ann.get("scores") not in (None, []):
            scores = number_array(path, where, ann["scores"], layout.num_joints, "scores")
        person_score = None
        if "score" in ann and ann["score"] is not None:
            person_score = float(number_array(path, where, [ann["score"]], 1, "score")[0])
        box = None
        if isinstance(ann.get("bbox"), list) and len(ann["bbox"]) == 4:
            box = number_array(path, where, ann["bbox"], 4, "bbox")
        extra = {k: v for k, v in ann.items() if k not in _OWN_KEYS}
        record = make_record(frame_of[ann["image_id"]], track_id, values, scores, box=box,
                             person_score=person_score, extra=extra)  # fmt: skip
        seq.add(record)
        where_of[id(record)] = where
    check_sequence(path, seq, where_of)
    return seq


def _read_layout(path: str | os.PathLike, categories: Any):
    if not isinstance(categories, list) or len(categories) != 1 or not isinstance(categories[0], dict):
        raise InputError(path, "`categories` must be a list with exactly one entry (the person category)")
    names = categories[0].get("keypoints")
    if not isinstance(names, list) or len(names) != 17:
        count = len(names) if isinstance(names, list) else "no"
        raise InputError(path, f"`categories[0].keypoints` has {count} names; 17 are required "
                         f"(PoseTrack18: {', '.join(POSETRACK18.names)})")  # fmt: skip
    layout = layout_from_names(names)
    if layout is None:
        unknown = [n for n in names if n not in POSETRACK18.names]
        raise InputError(path, "`categories[0].keypoints` names are neither the PoseTrack18 nor the COCO-17 list "
                         f"in order (unexpected: {unknown or names})")  # fmt: skip
    return layout


def _other_top_level(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in ("images", "annotations", "categories", META_KEY)}


# ----------------------------------------------------------------------------------------------------- writer


def coco_to_posetrack18(seq: PoseSequence) -> PoseSequence:
    """An explicit COCO-17 -> PoseTrack18 conversion: body joints and nose kept, eyes and ears dropped.

    COCO's eye slots 1-2 are PoseTrack18's head_bottom/head_top; copying eyes there would be wrong, so slots 1-4
    become absent (poseval then scores no head_bottom/head_top for these persons).
    """
    if seq.layout.name == POSETRACK18.name:
        return seq
    out = PoseSequence(name=seq.name, layout=POSETRACK18, num_frames=seq.num_frames, images=seq.images,
                       image_ids=seq.image_ids, file_names=seq.file_names, source_format=seq.source_format,
                       meta=dict(seq.meta, categories=None))  # fmt: skip
    drop = [1, 2, 3, 4]
    for p in seq.persons():
        q = p.replace()
        q.present[drop] = False
        q.keypoints[drop] = 0.0
        if q.scores is not None:
            q.scores[drop] = 0.0
        if q.visibility is not None:
            q.visibility[drop] = 0.0
        out.add(q)
    return out


def synthesize_images(name: str, num_frames: int, image_size: tuple[int, int] | None = None) -> list[dict]:
    """PoseTrack-shaped image entries for a clip: `images/<name>/NNNNNN.jpg`, id T*1e10 + video*1e4 + frame."""
    m = _SEQ_NAME.match(name)
    if m is None:
        raise ValueError(f"sequence name {name!r} is not poseval-parsable (NNNNNN_mpii|bonn|mpiinew...)")
    base = SEQ_TYPES[m.group(2)] * 10**10 + int(m.group(1)) * 10**4
    if num_frames > 10**4:
        log.warning("%s: %d frames; PoseTrack image ids hold 4 frame digits, ids past frame 9999 run into the "
                    "next video number (still unique within this file)", name, num_frames)  # fmt: skip
    images = []
    for f in range(num_frames):
        img = {"id": base + f, "file_name": f"images/{name}/{f:06d}.jpg", "frame_id": base + f,
               "vid_id": m.group(1), "nframes": num_frames, "is_labeled": True}  # fmt: skip
        if image_size is not None:
            img["width"], img["height"] = int(image_size[0]), int(image_size[1])
        images.append(img)
    return images


def assign_track_ids(seq: PoseSequence) -> tuple[dict[int, list[int]], dict[int, int], int]:
    """Output track ids: integers unique per frame and < 10000.

    Input ids are kept when they already are all in [0, 10000); otherwise every input id is renumbered 0, 1, ...
    in order of first appearance (one mapping for the whole video, so tracks stay tracks). Persons without an id
    get fresh ids above all others, one per person.

    Returns:
        frame -> output id per person (input order), the input -> output mapping of renumbered ids (empty when
        nothing was renumbered), and the number of fresh ids given.

    Raises:
        ValueError: two persons of one frame share an input id (readers refuse such input, so this is a bug).
    """
    ids = [p.track_id for p in seq.persons() if p.track_id is not None]
    keep = all(0 <= t < MAX_TRACK_ID for t in ids)
    mapping: dict[int, int] = {}
    if not keep:
        for t in ids:
            mapping.setdefault(t, len(mapping))
    next_id = (max(ids) + 1 if ids else 0) if keep else len(mapping)
    out: dict[int, list[int]] = {}
    fresh = 0
    for frame in sorted(seq.frames):
        row = []
        for p in seq.frames[frame]:
            if p.track_id is None:
                row.append(next_id)
                next_id += 1
                fresh += 1
            else:
                row.append(p.track_id if keep else mapping[p.track_id])
        if len(set(row)) != len(row):
            raise ValueError(f"frame {frame}: duplicate track ids {row}")
        out[frame] = row
    if next_id > MAX_TRACK_ID:
        raise PosefixError(f"{seq.name}: {next_id} distinct track ids needed, poseval allows ids < {MAX_TRACK_ID}")
    return out, mapping, fresh


def _keypoint_values(p: PersonRecord) -> list[float]:
    """17 x, y, v triplets; absent joints (0, 0, 0). v: the input's third value, else 1."""
    trip = np.zeros((17, 3), dtype=np.float64)
    trip[:, :2] = p.keypoints
    trip[:, 2] = p.visibility if p.visibility is not None else 1.0
    trip[~p.present] = 0.0
    return trip.ravel().tolist()


def write_posetrack18(
    seq: PoseSequence,
    path: str | os.PathLike,
    seq_name: str | None = None,
    convert_coco: bool = False,
    image_size: tuple[int, int] | None = None,
    indent: int | None = None,
) -> dict[str, Any]:
    """Writes `seq` as a PoseTrack 2018 JSON file that poseval reads as it is (atomically).

    Args:
        seq: the sequence; its layout must be posetrack18 unless `convert_coco` is set.
        path: output file (name it like the GT video, `<video>.json`, for poseval).
        seq_name: folder name of synthesised image entries (only when `seq.images` is None); must be
            poseval-parsable (`NNNNNN_{mpii|bonn|mpiinew}...`). Default: `seq.name` if parsable, else
            "000000_mpiinew_test" (logged).
        convert_coco: write a coco17 sequence with `coco_to_posetrack18` (eyes and ears dropped) instead of
            refusing it.
        image_size: (width, height) for synthesised image entries, optional.
        indent: JSON indent (None: compact).

    Returns:
        The written JSON object.
    """
    if seq.layout.name != POSETRACK18.name:
        if not convert_coco:
            raise PosefixError(
                f"{os.fspath(path)}: sequence {seq.name!r} has the {seq.layout.name} layout; PoseTrack18 slots 1-2 "
                "are head_bottom/head_top, not COCO eyes. Convert explicitly (convert_coco=True / --convert-coco "
                "drops eyes and ears) or use a PoseTrack18 model/input")  # fmt: skip
        seq = coco_to_posetrack18(seq)
    images = _output_images(seq, path, seq_name, image_size)
    if seq.last_frame >= len(images):
        raise PosefixError(f"{os.fspath(path)}: persons on frame {seq.last_frame} but the video has only "
                           f"{len(images)} frames")  # fmt: skip
    out_ids, mapping, fresh = assign_track_ids(seq)
    annotations = []
    for frame in sorted(seq.frames):
        image_id = images[frame]["id"]
        for k, (p, tid) in enumerate(zip(seq.frames[frame], out_ids[frame])):
            ann = dict(p.extra)
            ann.setdefault("id", image_id * 100 + k)
            ann.setdefault("category_id", 1)
            ann["image_id"] = image_id
            ann["track_id"] = tid
            ann["keypoints"] = _keypoint_values(p)
            ann["scores"] = [] if p.scores is None else p.scores.tolist()
            if p.person_score is not None:
                ann["score"] = float(p.person_score)
            if p.box is not None and not _same_numbers(ann.get("bbox"), p.box):
                ann["bbox"] = p.box.tolist()
            annotations.append(ann)
    data: dict[str, Any] = dict(seq.meta.get("top_level") or {})
    cats = seq.meta.get("categories")
    good = isinstance(cats, list) and len(cats) == 1 and isinstance(cats[0], dict)
    good = good and tuple(cats[0].get("keypoints", ())) == POSETRACK18.names
    data.update(images=images, annotations=annotations, categories=cats if good else categories_block())
    notes = dict(seq.meta.get("notes") or {})  # a writer's own notes (refine_video: frames of a truncated video)
    if notes:
        data[META_KEY] = notes
    if mapping or fresh:
        data[META_KEY] = {
            **notes,
            "track_id_map": [[src, dst] for src, dst in mapping.items()],
            "fresh_track_ids": fresh,
            "note": "track_id_map: [input track id, written track id]; fresh_track_ids: persons without an input "
            "id, given new ids above the others",
        }
        log.info("%s: renumbered %d track ids, %d fresh ids", os.fspath(path), len(mapping), fresh)
    write_json_atomic(path, data, indent=indent)
    return data


def _same_numbers(value: Any, box: np.ndarray) -> bool:
    try:
        return np.array_equal(np.asarray(value, dtype=np.float64), box)
    except (TypeError, ValueError):
        return False


def _output_images(seq: PoseSequence, path, seq_name: str | None, image_size) -> list[dict[str, Any]]:
    if seq.images is not None:
        return seq.images
    if seq_name is not None and not is_poseval_seq_name(seq_name):
        raise PosefixError(f"{os.fspath(path)}: sequence name {seq_name!r} is not poseval-parsable; use "
                           f"NNNNNN_mpii|bonn|mpiinew_..., e.g. {DEFAULT_SEQ_NAME}")  # fmt: skip
    name = seq_name or seq.name
    if not is_poseval_seq_name(name):
        log.warning("%s: sequence name %r is not poseval-parsable; image entries use %r (pass --seq-name NAME, "
                    "or seq_name= in Python, e.g. 000001_mpiinew_test)",
                    os.fspath(path), name, DEFAULT_SEQ_NAME)  # fmt: skip
        name = DEFAULT_SEQ_NAME
    num_frames = seq.num_frames if seq.num_frames is not None else seq.last_frame + 1
    return synthesize_images(name, num_frames, image_size)


