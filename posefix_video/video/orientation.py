"""Tracks and rotated videos: warnings when keypoints fit only the other orientation's frame, and the exact
90/180/270 maps between the coded frame a tracker may have seen and the displayed frame we refine on
(`--tracks-orientation coded`)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from posefix_video import geometry
from posefix_video.records import PersonRecord, PoseSequence

log = logging.getLogger(__name__)


def orientation_warnings(seq: PoseSequence, size_hw: tuple[int, int], tracks: Path,
                         tracks_orientation: str = "displayed",
                         coded_hw: tuple[int, int] | None = None) -> list[str]:
    """Warnings when the tracks file's image size (PT18 width/height) does not match the frames the tracks are
    said to be in: the displayed frames (`size_hw`), or the coded frames (`coded_hw`) with
    `tracks_orientation="coded"`; and, for a video turned a quarter, when the keypoints themselves fit the other
    orientation's frame but not the one chosen (the usual sign of coded tracks given as displayed)."""
    extent = _extent_warnings(seq, size_hw, tracks, tracks_orientation, coded_hw)
    for message in extent:
        log.warning(message)
    if not seq.images:
        return extent
    sizes = {(im.get("width"), im.get("height")) for im in seq.images if im.get("width") and im.get("height")}
    coded = tracks_orientation == "coded" and coded_hw is not None
    h, w = coded_hw if coded else size_hw
    out = []
    for width, height in sorted(sizes):
        if (width, height) == (w, h):
            continue
        if (width, height) == (h, w) and not coded:
            out.append(f"{tracks}: images are {width}x{height} but the video is displayed {w}x{h} (rotated); tracks "
                       "must be in the displayed orientation (what a player shows), as decoded here; if the tracker "
                       "ran on the coded (unrotated) frames, pass --tracks-orientation coded")
        elif (width, height) == (h, w):
            out.append(f"{tracks}: images are {width}x{height}, the displayed size, but --tracks-orientation coded "
                       f"says the tracks are in the coded {w}x{h} frames; leave the option out if the tracker saw "
                       "the displayed (rotated) frames")
        else:
            frames = "coded video frames" if coded else "video frames"
            out.append(f"{tracks}: images are {width}x{height} but the {frames} are {w}x{h}")
    for message in out:
        log.warning(message)
    return out + extent


# A joint is "outside" a frame beyond this fraction of the frame's larger side (trackers extrapolate a little)...
_OUTSIDE_MARGIN = 0.02
# ...and the tracks "do not fit" a frame when more than this fraction of their usable joints is outside it.
_OUTSIDE_SHARE = 0.05


def _share_outside(points: np.ndarray, hw: tuple[int, int]) -> float:
    """Fraction of (N, 2) frame-pixel points beyond `_OUTSIDE_MARGIN` outside an (H, W) frame."""
    h, w = hw
    m = _OUTSIDE_MARGIN * max(h, w)
    x, y = points[:, 0], points[:, 1]
    return float(((x < -m) | (x > w - 1 + m) | (y < -m) | (y > h - 1 + m)).mean())


def _extent_warnings(seq: PoseSequence, size_hw: tuple[int, int], tracks: Path, tracks_orientation: str,
                     coded_hw: tuple[int, int] | None) -> list[str]:
    """A warning when, on a video turned 90 or 270 degrees, the usable joints do not fit the frame of the chosen
    orientation but do fit the other one (180 degrees keeps the size: not detectable this way)."""
    if coded_hw is None or tuple(coded_hw) == tuple(size_hw) or seq.num_persons == 0:
        return []
    _, keypoints, usable = _stacked(seq)
    points = keypoints[usable]
    if not len(points):
        return []
    coded = tracks_orientation == "coded"
    chosen, other = (coded_hw, size_hw) if coded else (size_hw, coded_hw)
    bad, good = _share_outside(points, chosen), _share_outside(points, other)
    if bad <= _OUTSIDE_SHARE or good > _OUTSIDE_SHARE / 5:
        return []
    hint = ("leave --tracks-orientation coded out if the tracker saw the displayed (rotated) frames" if coded else
            "pass --tracks-orientation coded if the tracker ran on the coded (unrotated) frames")  # fmt: skip
    return [f"{tracks}: {bad:.0%} of the keypoints lie outside the {'coded' if coded else 'displayed'} "
            f"{chosen[1]}x{chosen[0]} frames but fit the {'displayed' if coded else 'coded'} {other[1]}x{other[0]} "
            f"frames; {hint}"]


def _stacked(seq: PoseSequence) -> tuple[list[PersonRecord], np.ndarray, np.ndarray]:
    """All records in `persons()` order, their keypoints (P, 17, 2) and the joints a refiner may move (P, 17)."""
    records = list(seq.persons())
    keypoints = np.stack([r.keypoints for r in records])
    movable = geometry.usable_joints(keypoints, np.stack([r.present for r in records]))
    return records, keypoints, movable


def _with_records(seq: PoseSequence, records: list[PersonRecord]) -> PoseSequence:
    out = PoseSequence(name=seq.name, layout=seq.layout, num_frames=seq.num_frames, images=seq.images,
                       image_ids=seq.image_ids, file_names=seq.file_names, source_format=seq.source_format,
                       meta=seq.meta)
    for r in records:
        out.add(r)
    return out


def tracks_to_displayed(seq: PoseSequence, rotation: int, coded_hw: tuple[int, int]) -> PoseSequence:
    """A copy of `seq` (tracks in coded-frame pixels) with keypoints and boxes in displayed-frame pixels.

    Only joints a refiner may move are mapped (present, finite, not the (0, 0) placeholder: see
    `geometry.usable_joints`), so placeholders stay placeholders in the displayed frame.

    Args:
        seq: tracks in the coded frame ((H, W) = `coded_hw`) of the video.
        rotation: `VideoInfo.rotation`, degrees counter-clockwise from coded to displayed.
    """
    records, keypoints, movable = _stacked(seq)
    shown = np.where(movable[..., None], geometry.rotate_points(keypoints, rotation, coded_hw), keypoints)
    with_box = [i for i, r in enumerate(records) if r.box is not None]
    boxes = geometry.rotate_boxes(np.stack([records[i].box for i in with_box]), rotation, coded_hw) \
        if with_box else np.zeros((0, 4))
    out = [r.replace(keypoints=shown[i]) for i, r in enumerate(records)]
    for k, i in enumerate(with_box):
        out[i].box = boxes[k]
    return _with_records(seq, out)


def results_to_coded(result: PoseSequence, coded_inputs: PoseSequence, displayed_inputs: PoseSequence,
                     rotation: int, coded_hw: tuple[int, int]) -> PoseSequence:
    """Refined records in displayed pixels -> the same records in the coded frame the tracks were given in.

    Joints the refiner left as they were (and every box) take the input's coded values bit for bit; moved joints
    are mapped back with the inverse rotation.

    Args:
        result: refined records, aligned with `coded_inputs.persons()` (same frames, same order).
        coded_inputs: the tracks as read; displayed_inputs: `tracks_to_displayed(coded_inputs, ...)`.
    """
    shown_hw = geometry.rotated_size(coded_hw, rotation)
    records, refined, _ = _stacked(result)
    inputs, coded_kp, movable = _stacked(coded_inputs)
    shown_kp = np.stack([r.keypoints for r in displayed_inputs.persons()])
    if [(r.frame, r.track_id) for r in records] != [(r.frame, r.track_id) for r in inputs]:
        # boxes and unmoved joints are taken from the input by position: a reordering would swap persons
        raise RuntimeError("refined records are not aligned with the input records")
    moved = movable & (refined != shown_kp).any(-1)
    back = geometry.rotate_points(refined, (360 - rotation) % 360, shown_hw)
    coded = np.where(moved[..., None], back, coded_kp)
    out = [r.replace(keypoints=coded[i], box=inputs[i].box) for i, r in enumerate(records)]
    return _with_records(result, out)
