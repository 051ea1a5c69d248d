"""Background decoding into a bounded queue, and grouping of consecutive frames into refiner-sized chunks.

Decoding runs in its own thread (FFmpeg, OpenCV and torch release the GIL), so it overlaps with the network. The
queue is bounded, so a slow consumer stalls the decoder instead of growing memory with the video's length.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from posefix_video.errors import PosefixError
from posefix_video.video.reader import FrameReader

log = logging.getLogger(__name__)

_END = object()


def check_chunking(batch_size: int, chunk_frames_max: int) -> None:
    """Refuses chunk sizes that cannot work (0, negative, not whole numbers), before any work."""
    for option, value in (("--batch-size", batch_size), ("--chunk-frames", chunk_frames_max)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PosefixError(f"{option} {value}: must be a whole number >= 1")


class FrameStream:
    """Iterates (index, frame) from a `FrameReader`, decoded ahead by a background thread.

    Args:
        reader: the sequential source.
        max_queue: frames decoded ahead at most (bounds the memory: max_queue x frame bytes).

    After the iteration ends, `count` is the number of frames decoded. An error in the decoder thread is re-raised
    in the consumer at the point the failed frame would have arrived. `close()` (or leaving a `with` block) stops
    the thread early.
    """

    def __init__(self, reader: FrameReader, max_queue: int = 8):
        self.reader = reader
        self.count = 0
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, max_queue))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="posefix-decode", daemon=True)
        self._started = False

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for frame in self.reader.frames():
                if not self._put(frame):
                    return
        except BaseException as err:  # handed to the consumer, which raises it in its own thread
            self._put(err)
            return
        finally:
            self.reader.close()
        self._put(_END)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        if self._started:
            raise RuntimeError("a FrameStream can be iterated once")
        self._started = True
        self._thread.start()
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield self.count, item
                self.count += 1
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        if self._started and self._thread.is_alive() and threading.current_thread() is not self._thread:
            # drain so a producer blocked in put() sees the stop flag
            while self._thread.is_alive():
                try:
                    self._queue.get(timeout=0.05)
                except queue.Empty:
                    pass

    def __enter__(self) -> FrameStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class FrameChunk:
    """Consecutive frames [start, stop) refined together.

    Attributes:
        start, stop: frame range, 0-based decode order.
        frames: the decoded frames, (H, W, 3) uint8 RGB each, `stop - start` of them.
        num_persons: persons in these frames according to the tracks.
        done: True when a previous run already refined these frames (resume): they are decoded again only to keep
            the stream in order, and not refined.
    """

    start: int
    stop: int
    frames: list[np.ndarray]
    num_persons: int
    done: bool = False


def chunk_frames(
    frames: Iterator[tuple[int, np.ndarray]],
    persons_in: Callable[[int], int],
    batch_size: int,
    max_frames: int,
    done_until: int = 0,
) -> Iterator[FrameChunk]:
    """Groups consecutive frames so that each chunk carries about `batch_size` persons.

    A chunk closes when it holds at least `batch_size` persons or `max_frames` frames, and at `done_until` (frames
    before it were refined by an earlier run and form chunks with `done=True`). Crops of many frames thus fill one
    network batch, and the frame cap bounds the memory when frames have few persons.

    Args:
        frames: (index, frame) pairs in order from 0, e.g. a `FrameStream`.
        persons_in: number of persons to refine in a frame.
        batch_size: persons per chunk to aim for (a chunk may exceed it by one frame's persons).
        max_frames: frames per chunk at most.
        done_until: frames [0, done_until) are already refined.
    """
    if batch_size < 1 or max_frames < 1:
        raise ValueError("batch_size and max_frames must be positive")
    chunk: FrameChunk | None = None
    for index, frame in frames:
        done = index < done_until
        if chunk is not None and chunk.done != done:
            yield chunk
            chunk = None
        if chunk is None:
            chunk = FrameChunk(start=index, stop=index, frames=[], num_persons=0, done=done)
        chunk.frames.append(frame)
        chunk.stop = index + 1
        chunk.num_persons += persons_in(index)
        if chunk.num_persons >= batch_size or len(chunk.frames) >= max_frames:
            yield chunk
            chunk = None
    if chunk is not None:
        yield chunk
