"""poseval-compatibility checks of a PoseTrack 2018 file, optionally against its ground-truth file.

Checks what poseval's loader asserts or trips on (posetrack_eval.md §2, §2.1): one `person` category with 15 or
17 keypoint names covering poseval's 15 joints; `file_name`s poseval can parse, one video per file; every
annotation linked to an image, with an integer `track_id` < 10000 unique in its frame, 3 x names keypoint
numbers, 17 `scores` in predictions, `bbox_head` in ground truth; with a GT file: the same frames in the same
order. Every problem is reported with its location; nothing stops at the first.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from posefix_video.io.checks import MAX_COORDINATE, load_json
from posefix_video.keypoints import POSETRACK18

MAX_TRACK_ID = 10000
POSEVAL_NAMES = tuple(n for n in POSETRACK18.names if n not in ("left_ear", "right_ear"))  # poseval's 15 joints
SEQ_TYPES = ("mpii", "bonn", "mpiinew")


@dataclass(frozen=True)
class Problem:
    """One problem: where (e.g. "annotations[3] (image_id 1, track_id 2)") and what."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


def validate_posetrack18(
    path: str | os.PathLike, gt_path: str | os.PathLike | None = None, kind: str = "auto"
) -> list[Problem]:
    """All poseval-compatibility problems of a PoseTrack 2018 file (empty list: clean).

    Args:
        path: the file to check.
        gt_path: its ground-truth file; when given the file is checked as a prediction paired with it.
        kind: "gt", "pred" or "auto" (pred when `gt_path` is given; else gt when every annotation has
            `scores: []`, pred otherwise).

    Raises:
        InputError: a file cannot be read or is not JSON.
    """
    data = load_json(path)
    gt = load_json(gt_path) if gt_path is not None else None
    if kind == "auto":
        kind = "pred" if gt is not None else _guess_kind(data)
    problems = check_posetrack18(data, kind)
    if gt is not None and not any(p.where == "" for p in problems):
        problems += compare_frames(data, gt)
    return problems


def _guess_kind(data: Any) -> str:
    anns = data.get("annotations") if isinstance(data, dict) else None
    if isinstance(anns, list) and anns and all(isinstance(a, dict) and a.get("scores") == [] for a in anns):
        return "gt"
    return "pred"


def check_posetrack18(data: Any, kind: str = "pred") -> list[Problem]:
    """Problems of parsed PoseTrack 2018 content; `kind` "gt" or "pred" (see `validate_posetrack18`)."""
    if isinstance(data, dict) and "annolist" in data:
        return [Problem("", "a PoseTrack 2017 (annolist) file; this validator checks PoseTrack 2018 files")]
    if not isinstance(data, dict):
        found = type(data).__name__
        return [Problem("", f"expected a JSON object with images, annotations, categories; found a {found}")]
    problems = [Problem("", f"missing top-level `{k}`") for k in ("images", "annotations", "categories")
                if not isinstance(data.get(k), list)]  # fmt: skip
    if problems:
        return problems
    num_names = _check_categories(data["categories"], problems)
    image_ids = _check_images(data["images"], problems)
    _check_annotations(data["annotations"], image_ids, num_names, kind, problems)
    return problems


def _check_categories(cats: list, problems: list[Problem]) -> int:
    if len(cats) != 1:
        problems.append(Problem("categories", f"{len(cats)} entries, poseval requires exactly 1 (person)"))
    if not cats or not isinstance(cats[0], dict):
        return 17
    cat = cats[0]
    if cat.get("name") != "person":
        problems.append(Problem("categories[0]", f"name is {cat.get('name')!r}, poseval requires 'person'"))
    names = cat.get("keypoints")
    if not isinstance(names, list) or len(names) not in (15, 17):
        count = len(names) if isinstance(names, list) else 0
        problems.append(Problem("categories[0].keypoints", f"{count} names, poseval requires 15 or 17"))
        return count or 17
    missing = [n for n in POSEVAL_NAMES if n not in names]
    if missing:
        coco = " (these are COCO names: slots 1-2 must be head_bottom/head_top)" if "left_eye" in names else ""
        problems.append(Problem("categories[0].keypoints", f"lacks {', '.join(missing)}{coco}; poseval asserts "
                                "every one of its 15 joint names is present"))  # fmt: skip
    unknown = [n for n in names if n not in POSETRACK18.names]
    if unknown and not missing:
        problems.append(Problem("categories[0].keypoints", f"unknown names {unknown} (poseval drops them)"))
    return len(names)


def _check_images(images: list, problems: list[Problem]) -> dict[Any, str]:
    """image id -> file_name of the valid entries; records problems of the others."""
    if not images:
        problems.append(Problem("images", "empty: poseval needs every frame of the video listed"))
    ids: dict[Any, str] = {}
    videos: dict[str, int] = {}
    for i, img in enumerate(images):
        where = f"images[{i}]"
        if not isinstance(img, dict):
            problems.append(Problem(where, "not a JSON object"))
            continue
        image_id = img.get("id")
        if not _is_int(image_id):
            problems.append(Problem(where, f"`id` is {image_id!r}, expected an integer"))
        elif image_id in ids:
            problems.append(Problem(where, f"image id {image_id} listed twice"))
        name = img.get("file_name")
        if not isinstance(name, str):
            problems.append(Problem(where, "no `file_name` string"))
            continue
        if _is_int(image_id) and image_id not in ids:
            ids[image_id] = name
        trouble = file_name_problem(name)
        if trouble:
            problems.append(Problem(f"{where} ({name})", trouble))
        videos.setdefault(os.path.basename(os.path.dirname(name)), i)
    if len(videos) > 1:
        problems.append(Problem("images", f"{len(videos)} video folders ({', '.join(list(videos)[:4])}); poseval "
                                "reads only the first video of a file"))  # fmt: skip
    return ids


def file_name_problem(name: str) -> str | None:
    """Why poseval cannot parse `name` as `<...>/<NNNNNN_{mpii|bonn|mpiinew}...>/<frame>.<ext>`, or None."""
    seq = os.path.basename(os.path.dirname(name))
    tok = seq.split("_")
    if len(tok) < 2 or not tok[0].isdigit() or tok[1] not in SEQ_TYPES:
        return (f"folder {seq!r} is not poseval-parsable: poseval needs NNNNNN_{{mpii|bonn|mpiinew}}_..., e.g. "
                "000001_mpiinew_test")  # fmt: skip
    stem = os.path.basename(name).split(".")[0]
    if not stem.isdigit():
        return f"file name {os.path.basename(name)!r} is not a frame number (poseval reads int(stem))"
    if int(stem) >= 10**4:
        return f"frame number {int(stem)} >= 10000 does not fit poseval's 4-digit frame field"
    return None


def _check_annotations(anns: list, image_ids: dict, num_names: int, kind: str, problems: list[Problem]) -> None:
    seen: dict[tuple[Any, Any], int] = {}
    for j, ann in enumerate(anns):
        if not isinstance(ann, dict):
            problems.append(Problem(f"annotations[{j}]", "not a JSON object"))
            continue
        where = f"annotations[{j}] (image_id {ann.get('image_id')}, track_id {ann.get('track_id')})"
        image_id = ann.get("image_id")
        if image_id not in image_ids or isinstance(image_id, bool):
            problems.append(Problem(where, f"image_id {image_id!r} links to no entry of `images`"))
        if "track_id" not in ann:
            problems.append(Problem(where, "no `track_id` (poseval raises KeyError)"))
        else:
            tid = ann["track_id"]
            if not _is_int(tid):
                problems.append(Problem(where, f"track_id {tid!r} is not an integer"))
            else:
                if tid >= MAX_TRACK_ID:
                    problems.append(Problem(where, f"track_id {tid} >= {MAX_TRACK_ID} (poseval asserts < 10000)"))
                key = (image_id, tid)
                if key in seen:
                    first = f"annotations[{seen[key]}]"
                    problems.append(Problem(where, f"track_id {tid} already used in this frame by {first} "
                                            "(poseval: non-unique tracklet IDs)"))  # fmt: skip
                else:
                    seen[key] = j
        _check_numbers(ann.get("keypoints"), 3 * num_names, "keypoints", where, problems)
        _check_coordinates(ann.get("keypoints"), where, problems)
        scores = ann.get("scores")
        if kind == "pred":
            if not scores:
                problems.append(Problem(where, f"no `scores` ({num_names} joint scores are required for AP in "
                                        "predictions)"))  # fmt: skip
            else:
                _check_numbers(scores, num_names, "scores", where, problems)
        else:
            if scores not in (None, []):
                _check_numbers(scores, num_names, "scores", where, problems)
            head = ann.get("bbox_head")
            if not (isinstance(head, list) and len(head) == 4 and all(_is_number(v) for v in head)):
                problems.append(Problem(where, "ground truth needs `bbox_head` [x, y, w, h] (poseval's head size)"))


def _check_numbers(values: Any, count: int, what: str, where: str, problems: list[Problem]) -> None:
    if not isinstance(values, list):
        problems.append(Problem(where, f"`{what}` missing or not a list"))
        return
    if len(values) != count:
        problems.append(Problem(where, f"`{what}` has {len(values)} values, expected {count}"))
    bad = [i for i, v in enumerate(values) if not _is_number(v)]
    if bad:
        problems.append(Problem(where, f"`{what}`[{bad[0]}] is {values[bad[0]]!r}, expected a finite number"
                                + (f" ({len(bad)} such values)" if len(bad) > 1 else "")))  # fmt: skip


def _check_coordinates(values: Any, where: str, problems: list[Problem]) -> None:
    """A keypoint x or y beyond +-MAX_COORDINATE px is a broken value (the readers refuse it too)."""
    if not isinstance(values, list):
        return
    bad = [i for i, v in enumerate(values) if i % 3 != 2 and _is_number(v) and abs(v) > MAX_COORDINATE]
    if bad:
        j = bad[0] // 3
        problems.append(Problem(where, f"keypoint {j} is at {values[3 * j:3 * j + 2]}, more than "
                                f"{MAX_COORDINATE:g} px from any frame: not a real coordinate"
                                + (f" ({len(bad)} such values)" if len(bad) > 1 else "")))  # fmt: skip


def compare_frames(pred: dict, gt: Any) -> list[Problem]:
    """Problems pairing a prediction with its GT: poseval pairs frames by position, so the lists must match."""
    if not isinstance(gt, dict) or not isinstance(gt.get("images"), list):
        return [Problem("gt", "the ground-truth file has no `images` list")]
    p_names = [img.get("file_name") if isinstance(img, dict) else None for img in pred["images"]]
    g_names = [img.get("file_name") if isinstance(img, dict) else None for img in gt["images"]]
    problems = []
    if len(p_names) != len(g_names):
        problems.append(Problem("images", f"{len(p_names)} frames, the ground truth has {len(g_names)} (poseval "
                                "raises: # prediction frames <> # GT frames)"))  # fmt: skip
    for i, (p, g) in enumerate(zip(p_names, g_names)):
        if p != g:
            problems.append(Problem(f"images[{i}]", f"file_name {p!r}, the ground truth has {g!r} at this position"))
    return problems


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
