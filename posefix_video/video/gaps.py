"""Gap filling: persons a tracker lost for a few frames get an interpolated input pose, refined on the real frame.

    gaps = gap_records(seq, max_gap=8)            # interpolated inputs, marked extra["posefix_filled"] = True
    work = with_records(seq, gaps)                # refined like every other person
    result, kept, rejected = drop_weak_fills(refined, min_confidence=0.3)

A track that is present on frames a and b (b - a - 1 <= max_gap missing frames in between, none of them holding
the track) gets one record per missing frame: joints present at both ends are interpolated linearly (so is the
box, when both ends have one); scores are the smaller of the two ends. The refiner then turns that coarse pose
into one fitted to the frame, and only fills whose mean network confidence reaches `min_confidence` are written:
an occluded or vanished person gives diffuse heatmaps and low confidence.

Streaming: the fills come from the tracks alone (read whole before decoding, as every input is), so refining them
needs no frame beyond the chunk being refined: the look-ahead in frames is 0, within the bound of `max_gap`.
Track ids stay unique per frame (a fill only goes where its track is absent).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from posefix_video.net.refiner import CONFIDENCE_KEY
from posefix_video.records import PersonRecord, PoseSequence

FILLED_KEY = "posefix_filled"


def gap_records(seq: PoseSequence, max_gap: int) -> list[PersonRecord]:
    """Interpolated records for every gap of at most `max_gap` frames inside a track (see the module docstring).

    Tracks without an id, and ids that occur twice in one frame (ambiguous ends), are left alone.
    """
    if max_gap < 1:
        return []
    where: dict[int, dict[int, PersonRecord]] = defaultdict(dict)
    twice: set[int] = set()
    for p in seq.persons():
        if p.track_id is None:
            continue
        tid = int(p.track_id)
        if p.frame in where[tid]:
            twice.add(tid)
        where[tid][p.frame] = p
    out = []
    for tid, frames in where.items():
        if tid in twice:
            continue
        order = sorted(frames)
        for a, b in zip(order, order[1:]):
            if 1 <= b - a - 1 <= max_gap:
                out += [_interpolate(frames[a], frames[b], f) for f in range(a + 1, b)]
    out.sort(key=lambda r: (r.frame, r.track_id))
    return out


def _interpolate(pa: PersonRecord, pb: PersonRecord, frame: int) -> PersonRecord:
    """The record of `frame` between pa (earlier) and pb (later) of the same track."""
    t = (frame - pa.frame) / (pb.frame - pa.frame)
    both = pa.present & pb.present
    kp = np.where(both[:, None], (1 - t) * pa.keypoints + t * pb.keypoints, 0.0)
    scores = None
    if pa.scores is not None and pb.scores is not None:
        scores = np.where(both, np.minimum(pa.scores, pb.scores), 0.0)
    vis = None
    if pa.visibility is not None and pb.visibility is not None:
        vis = np.where(both, np.minimum(pa.visibility, pb.visibility), 0.0)
    box = None
    if pa.box is not None and pb.box is not None:
        box = (1 - t) * pa.box + t * pb.box
    ps = None
    if pa.person_score is not None and pb.person_score is not None:
        ps = float(min(pa.person_score, pb.person_score))
    extra = {k: v for k, v in pa.extra.items() if k in ("category_id",)}
    extra[FILLED_KEY] = True
    return PersonRecord(frame=frame, track_id=pa.track_id, keypoints=kp, scores=scores, present=both,
                        visibility=vis, box=box, person_score=ps, extra=extra)


def with_records(seq: PoseSequence, records: list[PersonRecord]) -> PoseSequence:
    """A copy of `seq` (same metadata, same record objects) with `records` added after each frame's own."""
    if not records:
        return seq
    out = PoseSequence(name=seq.name, layout=seq.layout, num_frames=seq.num_frames, images=seq.images,
                       image_ids=seq.image_ids, file_names=seq.file_names, source_format=seq.source_format,
                       meta=seq.meta)
    for p in seq.persons():
        out.add(p)
    for p in records:
        out.add(p)
    return out


def is_filled(record: PersonRecord) -> bool:
    """True for a gap fill (gap_records)."""
    return bool(record.extra.get(FILLED_KEY, False))


def fill_confidence(record: PersonRecord) -> float:
    """Mean network confidence over the fill's present joints (0 when the refiner passed it through)."""
    conf = record.extra.get(CONFIDENCE_KEY)
    if conf is None or not record.present.any():
        return 0.0
    return float(np.asarray(conf, dtype=np.float64)[record.present].mean())


def drop_weak_fills(seq: PoseSequence, min_confidence: float) -> tuple[PoseSequence, int, int]:
    """`seq` without the fills whose confidence is under `min_confidence`: (sequence, fills kept, fills dropped).

    Kept fills get their written scores from the refiner's confidence when they have none.
    """
    out = PoseSequence(name=seq.name, layout=seq.layout, num_frames=seq.num_frames, images=seq.images,
                       image_ids=seq.image_ids, file_names=seq.file_names, source_format=seq.source_format,
                       meta=seq.meta)
    kept = dropped = 0
    for p in seq.persons():
        if is_filled(p):
            if fill_confidence(p) < min_confidence:
                dropped += 1
                continue
            kept += 1
        out.add(p)
    return out, kept, dropped
