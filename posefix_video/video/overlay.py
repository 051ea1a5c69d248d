"""Drawing skeletons over frames for the `--render` video: the input pose thin and grey, the refined pose in
colour (one colour per track id, so identity switches are visible)."""

from __future__ import annotations

import colorsys

import numpy as np

from posefix_video.keypoints import KeypointLayout
from posefix_video.records import PersonRecord

INPUT_COLOUR = (160, 160, 160)


def track_colour(track_id: int | None) -> tuple[int, int, int]:
    """A saturated RGB colour that is stable for a track id (golden-ratio hue steps keep neighbours apart)."""
    if track_id is None:
        return (255, 255, 0)
    hue = (int(track_id) * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_pose(frame: np.ndarray, keypoints: np.ndarray, present: np.ndarray, layout: KeypointLayout,
              colour: tuple[int, int, int], thickness: int, radius: int) -> None:
    """Draws one skeleton in place on an (H, W, 3) uint8 RGB frame. keypoints: (17, 2) frame px; present: (17,)."""
    import cv2

    ok = np.asarray(present, dtype=bool) & np.isfinite(keypoints).all(-1)
    ok[list(layout.ignored)] = False
    # cv2 draws on integer pixels; shift=4 keeps 1/16 px precision so lines do not jitter by rounding.
    pts = np.round(np.nan_to_num(keypoints) * 16).astype(np.int64)
    for a, b in layout.edges:
        if ok[a] and ok[b]:
            cv2.line(frame, tuple(map(int, pts[a])), tuple(map(int, pts[b])), colour, thickness, cv2.LINE_AA, 4)
    if radius > 0:
        for j in np.flatnonzero(ok):
            cv2.circle(frame, tuple(map(int, pts[j])), radius * 16, colour, -1, cv2.LINE_AA, 4)


def draw_frame(frame: np.ndarray, inputs: list[PersonRecord], refined: list[PersonRecord],
               layout: KeypointLayout) -> np.ndarray:
    """A copy of `frame` with the input poses (grey, thin) under the refined poses (track colours).

    Line widths scale with the frame height so the drawing reads the same at 360p and 4K.
    """
    out = np.ascontiguousarray(frame).copy()
    scale = max(1, round(out.shape[0] / 540))
    for person in inputs:
        draw_pose(out, person.keypoints, person.present, layout, INPUT_COLOUR, scale, 0)
    for person in refined:
        draw_pose(out, person.keypoints, person.present, layout, track_colour(person.track_id), 2 * scale,
                  2 * scale)
    return out
