"""Per-track temporal filters applied after refinement (`--smooth`): One-Euro (causal, adaptive) and
Savitzky-Golay (offline, shape-preserving).

Tracks may start and end mid-clip, skip frames, and lose joints. Each filter therefore runs on *runs*: maximal
sequences of consecutive frames in which one track has one joint present; a gap (a missing frame or a missing
joint) ends a run and the filter restarts after it, so no value is ever interpolated across a gap and a joint is
never moved toward a position from another run. Records without a track id are left as they are (there is no
time series to filter). Time is measured in frames, so the parameters do not depend on the frame rate.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from posefix_video.records import PersonRecord, PoseSequence

SMOOTHERS = ("none", "oneeuro", "savgol")


@dataclass(frozen=True)
class OneEuroParams:
    """One-Euro filter (Casiez et al., CHI 2012), time in frames, positions in frame pixels.

    Attributes:
        min_cutoff: cut-off frequency at rest, cycles per frame; lower smooths more (and lags more).
        beta: cut-off increase per px/frame of speed; higher follows fast motion with less lag.
        d_cutoff: cut-off of the speed estimate, cycles per frame.
    """

    min_cutoff: float = 0.1
    beta: float = 0.02
    d_cutoff: float = 0.5


@dataclass(frozen=True)
class SavgolParams:
    """Savitzky-Golay filter: a polynomial of `order` fitted over `window` frames (odd). Runs shorter than the
    window use the longest odd window that fits (left unfiltered when that is not above `order`)."""

    window: int = 7
    order: int = 2


def _alpha(cutoff: np.ndarray | float) -> np.ndarray | float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau)  # dt = 1 frame


def one_euro(x: np.ndarray, valid: np.ndarray, params: OneEuroParams) -> np.ndarray:
    """Filters x (T, J, 2) along T; valid (T, J) bool. A joint's state restarts after any invalid step."""
    out = x.copy()
    prev = np.zeros(x.shape[1:])
    dprev = np.zeros(x.shape[1:])
    alive = np.zeros(x.shape[1], dtype=bool)
    a_d = _alpha(params.d_cutoff)
    for t in range(x.shape[0]):
        ok = valid[t]
        dx = np.where(alive[:, None], x[t] - prev, 0.0)
        dprev = np.where(alive[:, None], a_d * dx + (1 - a_d) * dprev, 0.0)
        speed = np.linalg.norm(dprev, axis=-1, keepdims=True)
        a = _alpha(params.min_cutoff + params.beta * speed)
        filtered = np.where(alive[:, None], a * x[t] + (1 - a) * prev, x[t])
        out[t] = np.where(ok[:, None], filtered, x[t])
        prev = np.where(ok[:, None], out[t], prev)
        alive = ok
    return out


def savgol(x: np.ndarray, valid: np.ndarray, params: SavgolParams) -> np.ndarray:
    """Filters x (T, J, 2) along T within each run of valid (T, J) frames."""
    from scipy.signal import savgol_filter

    out = x.copy()
    for j in range(x.shape[1]):
        v = np.concatenate([[False], valid[:, j], [False]]).astype(np.int8)
        starts = np.flatnonzero(np.diff(v) == 1)
        stops = np.flatnonzero(np.diff(v) == -1)
        for s, e in zip(starts, stops):
            n = e - s
            window = min(params.window, n if n % 2 else n - 1)
            if window <= params.order:
                continue
            out[s:e, j] = savgol_filter(x[s:e, j], window, params.order, axis=0, mode="interp")
    return out


def smooth_track(records: list[PersonRecord], method: str, params: OneEuroParams | SavgolParams | None = None
                 ) -> list[PersonRecord]:
    """Smoothed copies of one track's records (any order; at most one record per frame).

    A frame gap splits the series: the rows of frames f and f+k (k > 1) are separated by invalid rows.
    """
    if not records:
        return []
    records = sorted(records, key=lambda r: r.frame)
    frames = np.array([r.frame for r in records])
    first = frames[0]
    length = frames[-1] - first + 1
    x = np.zeros((length, records[0].keypoints.shape[0], 2))
    valid = np.zeros(x.shape[:2], dtype=bool)
    rows = frames - first
    x[rows] = np.stack([r.keypoints for r in records])
    valid[rows] = np.stack([r.present for r in records]) & np.isfinite(x[rows]).all(-1)
    if method == "oneeuro":
        y = one_euro(x, valid, params or OneEuroParams())
    elif method == "savgol":
        y = savgol(x, valid, params or SavgolParams())
    else:
        raise ValueError(f"unknown smoother {method!r}; choose one of {', '.join(SMOOTHERS)}")
    out = []
    for record, row in zip(records, rows):
        kp = np.where(valid[row][:, None], y[row], record.keypoints)
        out.append(record.replace(keypoints=kp))
    return out


def smooth_sequence(seq: PoseSequence, method: str, params: OneEuroParams | SavgolParams | None = None) -> int:
    """Smooths every track of `seq` in place (records keep their position within their frame).

    Returns the number of records smoothed. Tracks with two records in one frame (a tracker bug) are left as they
    are, since their time series is ambiguous.
    """
    if method == "none":
        return 0
    where: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for frame, persons in seq.frames.items():
        for k, person in enumerate(persons):
            if person.track_id is not None:
                where[person.track_id].append((frame, k))
    count = 0
    for slots in where.values():
        frames = [f for f, _ in slots]
        if len(set(frames)) != len(frames):
            continue
        slot_of = dict(slots)
        for record in smooth_track([seq.frames[f][k] for f, k in slots], method, params):
            seq.frames[record.frame][slot_of[record.frame]] = record
        count += len(slots)
    return count
