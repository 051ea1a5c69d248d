"""Loading PoseTrack 2017/2018 files the way poseval does, into per-frame arrays.

poseval's own reading semantics differ from our tracker readers (`posefix_video.io`) and every difference moves
its numbers, so the evaluator reads files itself:

- 2018 files: the keypoint layout comes from the *names* in `categories[0].keypoints` (ears and unknown names are
  dropped); only the first video of a file is used (videos are told apart by the folder of `file_name`);
  a joint is absent iff `(x, y, v) == (0, 0, 0)`; joint scores are `scores[slot]`.
- 2017 files (`annolist`): point ids are poseval ids; every listed point is present.
- Frames are paired by list position; only frames whose GT has >= 1 person entry count; points strictly inside a
  GT ignore polygon (shapely `contains`) are removed from GT and predictions, then persons left without points.

Everything poseval refuses (or crashes on) is refused here with an `InputError` naming the file, frame and track.

Joint order everywhere in `posefix_video.eval` is poseval's internal id 0..14 (`POSEVAL_JOINTS`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely

from posefix_video.errors import InputError
from posefix_video.io.checks import load_json

# poseval's internal joint ids (= PoseTrack 2017 point ids) and the 2018 names that map to them.
POSEVAL_JOINTS = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "head_bottom", "nose", "head_top",
)  # fmt: skip
NUM_EVAL_JOINTS = 15
MAX_TRACK_ID = 10000
MIN_SCORE = -9999.0  # poseval's fallback score for a predicted joint without one
SEQUENCE_TYPES = ("mpii", "bonn", "mpiinew")


@dataclass
class Persons:
    """The persons of one frame, in file order.

    Attributes:
        track_ids: (N,) int64.
        xy: (N, 15, 2) float64 frame pixels, poseval joint order; 0 where absent.
        present: (N, 15) bool.
        scores: (N, 15) float64 joint scores (predictions; NaN where absent, -9999 fallback).
        head: (N, 4) float64 head box (x1, y1, x2, y2) as poseval builds it; NaN where the file has none.
    """

    track_ids: np.ndarray
    xy: np.ndarray
    present: np.ndarray
    scores: np.ndarray
    head: np.ndarray

    @staticmethod
    def empty() -> Persons:
        return Persons(np.zeros(0, np.int64), np.zeros((0, NUM_EVAL_JOINTS, 2)), np.zeros((0, NUM_EVAL_JOINTS), bool),
                       np.zeros((0, NUM_EVAL_JOINTS)), np.zeros((0, 4)))

    def __len__(self) -> int:
        return len(self.track_ids)

    def take(self, keep: np.ndarray) -> Persons:
        return Persons(self.track_ids[keep], self.xy[keep], self.present[keep], self.scores[keep], self.head[keep])

    @property
    def head_size(self) -> np.ndarray:
        """(N,) poseval's PCKh reference: 0.6 x the head box diagonal."""
        d = self.head[:, 2:] - self.head[:, :2]
        return 0.6 * np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])


@dataclass
class RawFrame:
    """One frame as read from a file, before pairing and cleanup.

    `n_entries` counts every person entry (poseval's `len(annorect)`); `persons` holds only those with a point
    list, which is what survives poseval's cleanup.
    """

    name: str
    n_entries: int
    persons: Persons
    ignore: list[tuple[list[float], list[float]]] = field(default_factory=list)


@dataclass
class EvalFrame:
    """A labeled frame after cleanup and ignore-region removal: GT and predictions side by side."""

    name: str
    gt: Persons
    pred: Persons


@dataclass
class EvalSequence:
    """One video: its labeled frames in file order."""

    name: str
    frames: list[EvalFrame]



def _number(value: object, path: Path, record: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(path, f"{what} must be a finite number, got {value!r}", record)
    return float(value)


def _numbers(values: list, path: Path, record: str, what: str) -> np.ndarray:
    """A list of finite numbers as float64, checked in one numpy call (hot path: every keypoint of every person)."""
    try:
        arr = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.ndim != 1 or not np.isfinite(arr).all():
        bad = next((v for v in values if isinstance(v, bool) or not isinstance(v, (int, float))
                    or not math.isfinite(v)), values)
        raise InputError(path, f"{what} must be finite numbers, got {bad!r}", record)
    return arr


def _track_id(value: object, path: Path, record: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise InputError(path, f"track_id must be an integer, got {value!r}", record)
    if value >= MAX_TRACK_ID:
        raise InputError(path, f"track_id {value} is not < {MAX_TRACK_ID} (poseval refuses larger ids)", record)
    return int(value)


def _check_unique_tracks(frames: list[RawFrame], entries: list[list[int]], path: Path) -> None:
    for frame, ids in zip(frames, entries):
        if len(set(ids)) != len(ids):
            dup = sorted({t for t in ids if ids.count(t) > 1})
            raise InputError(path, f"track_id {dup[0]} occurs more than once (poseval requires unique ids per frame)",
                             f"frame {frame.name}")


def _slot_table(data: dict, path: Path) -> list[int | None]:
    cats = data.get("categories")
    if not isinstance(cats, list) or len(cats) != 1 or not isinstance(cats[0], dict):
        raise InputError(path, "`categories` must be a list of exactly one category (poseval asserts this)")
    cat = cats[0]
    if cat.get("name") != "person":
        raise InputError(path, f"the category name must be 'person', got {cat.get('name')!r}", "categories[0]")
    names = cat.get("keypoints")
    if not isinstance(names, list) or len(names) not in (15, 17):
        raise InputError(path, "`keypoints` must list 15 or 17 joint names", "categories[0]")
    table = [POSEVAL_JOINTS.index(n) if n in POSEVAL_JOINTS else None for n in names]
    missing = [n for i, n in enumerate(POSEVAL_JOINTS) if i not in table]
    if missing:
        raise InputError(path, f"keypoint names lack {', '.join(missing)} (PoseTrack names are needed: slots 1 and 2 "
                         "are head_bottom and head_top, not eyes)", "categories[0]")
    used = [t for t in table if t is not None]
    if len(used) != len(set(used)):
        raise InputError(path, "a keypoint name occurs twice", "categories[0]")
    return table


def _first_video(images: list, path: Path) -> list[dict]:
    """The images of the file's first video (poseval evaluates only that one), in list order."""
    video_key = None
    out = []
    seen = set()
    for k, image in enumerate(images):
        rec = f"images[{k}]"
        if not isinstance(image, dict) or "id" not in image or not isinstance(image.get("file_name"), str):
            raise InputError(path, "an image needs `id` and `file_name`", rec)
        fname = image["file_name"]
        folder = os.path.basename(os.path.dirname(fname))
        tok = folder.split("_")
        if len(tok) < 2 or tok[1] not in SEQUENCE_TYPES or not tok[0].isdigit():
            raise InputError(path, f"file_name {fname!r}: the folder must be <digits>_<mpii|bonn|mpiinew>_..., as "
                             "poseval parses it", rec)
        stem = os.path.basename(fname).split(".")[0]
        if not stem.isdigit() or int(stem) >= 10000:
            raise InputError(path, f"file_name {fname!r}: the frame number must be an integer below 10000", rec)
        if image["id"] in seen:
            raise InputError(path, f"image id {image['id']} occurs twice", rec)
        seen.add(image["id"])
        if video_key is None:
            video_key = tok[0]
        if tok[0] == video_key:
            out.append(image)
    return out


def _ignore_2018(image: dict) -> list[tuple[list[float], list[float]]]:
    if "ignore_regions_x" in image and "ignore_regions_y" in image:
        return [(list(xs), list(ys)) for xs, ys in zip(image["ignore_regions_x"], image["ignore_regions_y"])]
    return []


def read_posetrack18(data: dict, path: Path, is_gt: bool, missing_scores: str) -> list[RawFrame]:
    """Reads the first video of a PoseTrack 2018 file into frames, as poseval's converter does."""
    table = _slot_table(data, path)
    n_names = len(table)
    images = data.get("images")
    annotations = data.get("annotations", [])
    if not isinstance(images, list) or not isinstance(annotations, list):
        raise InputError(path, "`images` and `annotations` must be lists")
    by_image: dict[object, list[tuple[int, dict]]] = {}
    for k, ann in enumerate(annotations):
        if not isinstance(ann, dict) or "image_id" not in ann:
            raise InputError(path, "an annotation needs `image_id`", f"annotations[{k}]")
        by_image.setdefault(ann["image_id"], []).append((k, ann))
    slots = np.array([s for s, t in enumerate(table) if t is not None])
    ids = np.array([t for t in table if t is not None])
    frames, entries = [], []
    for image in _first_video(images, path):
        anns = by_image.get(image["id"], [])
        n = len(anns)
        xy = np.zeros((n, NUM_EVAL_JOINTS, 2))
        present = np.zeros((n, NUM_EVAL_JOINTS), bool)
        scores = np.full((n, NUM_EVAL_JOINTS), np.nan)
        head = np.full((n, 4), np.nan)
        tracks = np.zeros(n, np.int64)
        for r, (k, ann) in enumerate(anns):
            rec = f"annotations[{k}] (frame {image['file_name']}, track_id {ann.get('track_id')})"
            if "track_id" not in ann:
                raise InputError(path, "`track_id` is missing (poseval requires it, also in predictions)", rec)
            tracks[r] = _track_id(ann["track_id"], path, rec)
            kp = ann.get("keypoints")
            if not isinstance(kp, list) or len(kp) != 3 * n_names:
                raise InputError(path, f"`keypoints` must hold {3 * n_names} numbers (3 per name in categories)", rec)
            kp = _numbers(kp, path, rec, "keypoint values").reshape(n_names, 3)[slots]
            pres = ~((kp[:, 0] == 0) & (kp[:, 1] == 0) & (kp[:, 2] == 0))
            xy[r, ids] = kp[:, :2]
            present[r, ids] = pres
            bbox_head = ann.get("bbox_head")
            if bbox_head is not None:
                if not isinstance(bbox_head, list) or len(bbox_head) != 4:
                    raise InputError(path, "`bbox_head` must be [x, y, w, h]", rec)
                x, y, w, h = (_number(v, path, rec, "a bbox_head value") for v in bbox_head)
                head[r] = (x, y, x + w, y + h)
            elif is_gt:
                raise InputError(path, "GT person without `bbox_head` (poseval needs it for the head size)", rec)
            sc = ann.get("scores")
            if not is_gt:
                if sc:  # poseval: a missing key or an empty list means "no scores"
                    if not isinstance(sc, list) or len(sc) != n_names:
                        raise InputError(path, f"`scores` must hold one number per keypoint name ({n_names})", rec)
                    sc = _numbers(sc, path, rec, "scores")[slots]
                    scores[r, ids] = sc
                elif missing_scores == "fallback":
                    scores[r, ids] = MIN_SCORE
                else:
                    raise InputError(path, "prediction without joint `scores` (AP needs them; poseval would rank "
                                     "such joints with score -9999)", rec)
                scores[r][~present[r]] = np.nan
        frames.append(RawFrame(image["file_name"], n, Persons(tracks, xy, present, scores, head),
                               _ignore_2018(image)))
        entries.append(tracks.tolist())
    if not is_gt:
        _check_unique_tracks(frames, entries, path)
    return frames


def _scalar(values: object, path: Path, record: str, what: str) -> object:
    if not isinstance(values, list) or not values:
        raise InputError(path, f"`{what}` must be a one-element list", record)
    return values[0]


def read_posetrack17(data: dict, path: Path, is_gt: bool, missing_scores: str) -> list[RawFrame]:
    """Reads a PoseTrack 2017 `annolist` file, which poseval uses as it is."""
    annolist = data["annolist"]
    if not isinstance(annolist, list):
        raise InputError(path, "`annolist` must be a list")
    frames, entries = [], []
    for f_idx, frame in enumerate(annolist):
        try:
            name = str(frame["image"][0]["name"])
        except (KeyError, IndexError, TypeError):
            name = f"annolist[{f_idx}]"
        rects = frame.get("annorect", [])
        if not isinstance(rects, list):
            raise InputError(path, "`annorect` must be a list", f"frame {name}")
        kept, ids = [], []
        for r_idx, rect in enumerate(rects):
            rec = f"frame {name}, annorect[{r_idx}]"
            if not isinstance(rect, dict) or "track_id" not in rect:
                raise InputError(path, "`track_id` is missing (poseval requires it)", rec)
            tid = _track_id(_scalar(rect["track_id"], path, rec, "track_id"), path, rec + f" (track_id "
                            f"{rect['track_id']})")
            ids.append(tid)
            ap = rect.get("annopoints")
            if isinstance(ap, list) and ap and isinstance(ap[0], dict) and ap[0] and "point" in ap[0]:
                kept.append((rec, tid, rect, ap[0]["point"]))
        n = len(kept)
        xy = np.zeros((n, NUM_EVAL_JOINTS, 2))
        present = np.zeros((n, NUM_EVAL_JOINTS), bool)
        scores = np.full((n, NUM_EVAL_JOINTS), np.nan)
        head = np.full((n, 4), np.nan)
        for r, (rec, tid, rect, points) in enumerate(kept):
            rec = f"{rec} (track_id {tid})"
            if all(k in rect for k in ("x1", "y1", "x2", "y2")):
                head[r] = [_number(_scalar(rect[k], path, rec, k), path, rec, k) for k in ("x1", "y1", "x2", "y2")]
            elif is_gt:
                raise InputError(path, "GT person without head box x1/y1/x2/y2 (poseval needs it)", rec)
            for point in points or []:
                pid = point.get("id")
                if pid is None:
                    continue  # poseval skips points without id
                pid = _scalar(pid, path, rec, "id")
                if pid not in range(NUM_EVAL_JOINTS) or present[r, pid]:
                    continue  # poseval looks ids up 0..14 and takes the first point of an id
                present[r, pid] = True
                xy[r, pid] = [_number(_scalar(point.get(k), path, rec, k), path, rec, k) for k in ("x", "y")]
                if not is_gt:
                    if "score" in point:
                        scores[r, pid] = _number(_scalar(point["score"], path, rec, "score"), path, rec, "score")
                    elif missing_scores == "fallback":
                        scores[r, pid] = MIN_SCORE
                    else:
                        raise InputError(path, "predicted point without `score`", rec)
        ignore = []
        for region in frame.get("ignore_regions", []) or []:
            pts = region.get("point", [])
            ignore.append(([p["x"][0] for p in pts], [p["y"][0] for p in pts]))
        frames.append(RawFrame(name, len(rects), Persons(np.array([k[1] for k in kept], np.int64).reshape(n), xy,
                                                         present, scores, head), ignore))
        entries.append(ids)
    if not is_gt:
        _check_unique_tracks(frames, entries, path)
    return frames


def read_frames(path: str | os.PathLike, is_gt: bool, missing_scores: str = "error") -> list[RawFrame]:
    """Reads one PoseTrack 2017 or 2018 file (detected per file, like poseval) into frames in file order.

    Args:
        path: the JSON file.
        is_gt: GT files need head boxes and no scores; prediction files need unique track ids per frame.
        missing_scores: "error" refuses predictions without joint scores; "fallback" gives them poseval's -9999.
    """
    path = Path(path)
    data = load_json(path)
    if not isinstance(data, dict):
        raise InputError(path, "expected a JSON object (PoseTrack 2018 `images`/`annotations` or 2017 `annolist`)")
    if "annolist" in data:
        return read_posetrack17(data, path, is_gt, missing_scores)
    if "images" not in data:
        raise InputError(path, "neither a PoseTrack 2018 file (`images`) nor a 2017 file (`annolist`)")
    return read_posetrack18(data, path, is_gt, missing_scores)


def _remove_ignored(persons: Persons, polygons: list, path: Path, frame: str) -> Persons:
    """Drops points strictly inside any polygon, then persons left with no point (poseval's removeIgnoredPoints)."""
    if len(persons) == 0:
        return persons
    inside = np.zeros(persons.present.shape, bool)
    for poly in polygons:
        inside |= shapely.contains_xy(poly, persons.xy[..., 0], persons.xy[..., 1])
    present = persons.present & ~inside
    out = Persons(persons.track_ids, persons.xy, present, np.where(present, persons.scores, np.nan), persons.head)
    return out.take(present.any(axis=1))


def _polygons(regions: list, path: Path, frame: str) -> list:
    polys = []
    for k, (xs, ys) in enumerate(regions):
        pts = [(float(x), float(y)) for x, y in zip(xs, ys)]
        if 0 < len(pts) < 3:
            raise InputError(path, f"ignore region {k} has {len(pts)} vertices; a polygon needs at least 3",
                             f"frame {frame}")
        poly = shapely.Polygon(pts)
        shapely.prepare(poly)
        polys.append(poly)
    return polys


def load_sequence(gt_path: str | os.PathLike, pred_path: str | os.PathLike,
                  missing_scores: str = "error") -> EvalSequence:
    """Pairs a GT file with its prediction file and applies poseval's cleanup.

    Returns the labeled frames (GT frame with >= 1 person entry) after points inside GT ignore regions were
    removed from both sides, and persons left without points were dropped.
    """
    gt_path, pred_path = Path(gt_path), Path(pred_path)
    if not pred_path.is_file():
        raise InputError(pred_path, f"prediction file not found (every GT file needs one; GT: {gt_path})")
    gt = read_frames(gt_path, is_gt=True)
    pred = read_frames(pred_path, is_gt=False, missing_scores=missing_scores)
    if len(gt) != len(pred):
        raise InputError(pred_path, f"{len(pred)} prediction frames but {len(gt)} GT frames in {gt_path} (frames "
                         "are paired by position in `images`, so the lists must match)")
    frames = []
    for g, p in zip(gt, pred):
        if g.n_entries == 0:
            continue
        gp, pp = g.persons, p.persons
        if g.ignore:
            polys = _polygons(g.ignore, gt_path, g.name)
            if polys:
                pp = _remove_ignored(pp, polys, pred_path, p.name)
                gp = _remove_ignored(gp, polys, gt_path, g.name)
        frames.append(EvalFrame(g.name, gp, pp))
    return EvalSequence(gt_path.stem, frames)
