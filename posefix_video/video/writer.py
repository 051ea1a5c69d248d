"""The writer side of a refine_video run: the thread that journals each finished chunk and draws the overlay,
the cursor over an earlier run's journal (resume), and the final assembly of the output sequence from the
journal."""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from posefix_video.records import PersonRecord, PoseSequence
from posefix_video.video.journal import Journal, read_journal
from posefix_video.video.stream import FrameChunk

log = logging.getLogger(__name__)


class ChunkWriter(threading.Thread):
    """Consumes finished chunks in order: journal append (fsync) and overlay frames, off the refiner's thread."""

    def __init__(self, journal: Journal, render: Any, layout: Any, inputs: PoseSequence,
                 on_chunk: Callable[[int], None] | None):
        super().__init__(name="posefix-writer", daemon=True)
        self.journal, self.render, self.layout, self.inputs = journal, render, layout, inputs
        self.on_chunk = on_chunk
        self.queue: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.chunks = 0

    def run(self) -> None:
        try:
            while True:
                item = self.queue.get()
                if item is None:
                    return
                self._handle(*item)
        except BaseException as err:  # re-raised by the main thread
            self.error = err
            while self.queue.get() is not None:  # unblock the producer until it sends the end marker
                pass

    def _handle(self, chunk: FrameChunk, records: list[PersonRecord], passed: Counter | None, done: bool) -> None:
        if not done:
            self.journal.append(chunk.start, chunk.stop, records, passed)
            self.chunks += 1
            if self.on_chunk is not None:
                self.on_chunk(self.chunks)
        if self.render is not None:
            by_frame: dict[int, list[PersonRecord]] = {}
            for r in records:
                by_frame.setdefault(r.frame, []).append(r)
            from posefix_video.video.overlay import draw_frame

            for k, frame in enumerate(chunk.frames):
                f = chunk.start + k
                self.render.write(draw_frame(frame, self.inputs.persons_in(f), by_frame.get(f, []), self.layout))


def previous_chunks(path: Path, run_id: str) -> Any:
    """Journaled results of an earlier run, taken by frame range (`take(start, stop)`) in order, so a resumed run
    may cut its chunks differently; read lazily, only for rendering the frames already refined."""
    pending: list[PersonRecord] = []
    covered = 0
    source = read_journal(path, run_id)

    class _Cursor:
        def take(self, start: int, stop: int) -> list[PersonRecord]:
            nonlocal covered, pending
            while covered < stop:
                chunk = next(source)
                pending.extend(chunk.records)
                covered = chunk.stop
            out = [r for r in pending if start <= r.frame < stop]
            pending = [r for r in pending if r.frame >= stop]
            return out

    return _Cursor()


def _with_scores(record: PersonRecord) -> PersonRecord:
    """Inputs without per-joint scores (PoseTrack GT has `scores: []`) get the refiner's heatmap confidence, or 1
    for present joints of persons passed through: poseval needs 17 scores per person to rank joints for AP."""
    if record.scores is not None:
        return record
    conf = record.extra.get("posefix_confidence")
    scores = np.asarray(conf, dtype=np.float64) if conf is not None else record.present.astype(np.float64)
    record.scores = np.where(record.present, scores, 0.0)
    return record


def assemble_output(seq: PoseSequence, jpath: Path, run_id: str, decoded: int) -> PoseSequence:
    """The output sequence from the journal (input metadata kept, every decoded frame listed)."""
    result = PoseSequence(name=seq.name, layout=seq.layout, num_frames=decoded, images=seq.images,
                          image_ids=seq.image_ids, file_names=seq.file_names, source_format=seq.source_format,
                          meta=seq.meta)
    covered = 0
    for chunk in read_journal(jpath, run_id):
        for record in chunk.records:
            result.add(_with_scores(record))
        covered = chunk.stop
    if covered != decoded:
        raise RuntimeError(f"{jpath}: journal covers {covered} frames, {decoded} decoded")
    return result


KEYPOINT_DECIMALS = 2  # refined coordinates are written to 0.01 px, far below any annotation's precision


def round_refined(result: PoseSequence, given: PoseSequence, decimals: int = KEYPOINT_DECIMALS) -> int:
    """Rounds, in place, the joints of `result` that differ from the pose given for that person (refined,
    smoothed, initialised) to `decimals` places; joints left as given keep their exact input value. A person is
    matched to its input by track id, untracked persons by their order in the frame; a person with no input
    (a gap fill) has every present joint rounded. Returns the number of joints rounded."""
    rounded = 0
    for frame, persons in result.frames.items():
        before = given.frames.get(frame, [])
        by_id = {p.track_id: p for p in before if p.track_id is not None}
        untracked = iter([p for p in before if p.track_id is None])
        for p in persons:
            src = by_id.get(p.track_id) if p.track_id is not None else next(untracked, None)
            if src is None or src.keypoints.shape != p.keypoints.shape:
                changed = p.present.copy()
            else:
                changed = p.present & (p.keypoints != src.keypoints).any(-1)
            if changed.any():
                p.keypoints = np.where(changed[:, None], np.round(p.keypoints, decimals), p.keypoints)
                rounded += int(changed.sum())
    return rounded
