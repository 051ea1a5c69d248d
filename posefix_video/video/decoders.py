"""Video decoders behind one small interface: strictly sequential RGB frames from frame 0, never a seek.

Random access is a correctness risk, measured on our fixtures (shared docs video_and_formats.md §4.4): decord
`vr[i]` returns the wrong frame for 30 of 40 shuffled reads of an H.264-in-AVI stream, and OpenCV's
`CAP_PROP_POS_FRAMES` seek for 12 of 20 on a VFR MP4. Sequential decoding is bit-identical in all three libraries,
so every backend here only ever decodes forward, and the frame count is what decoding produced (headers lie).

Orientation: every backend returns the *displayed* orientation (what a player shows). decord and OpenCV apply the
container's display matrix themselves; PyAV only reports `frame.rotation`, so this module rotates its frames.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from posefix_video.errors import InputError
from posefix_video.video.frames import FrameFolderReader
from posefix_video.video.reader import FrameReader, VideoInfo

log = logging.getLogger(__name__)

DECODERS = ("decord", "pyav", "opencv")


def probe_video(path: str | os.PathLike) -> tuple[Fraction | None, tuple[int, int], int, int | None]:
    """Frame rate, coded (H, W), display rotation and header frame count of a video file, via PyAV.

    The first frame is decoded because PyAV exposes the display rotation only on frames; that also rejects
    files that open but hold no decodable picture.

    Raises:
        InputError: missing, unreadable, not a video, or no decodable frame.
    """
    import av

    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(path, "no such video file or frame folder")
    try:
        container = av.open(path)
    except Exception as err:  # PyAV raises many FFmpeg error types; all mean "not a readable video"
        raise InputError(path, f"cannot open as a video ({err}); is the file complete and a video?") from None
    try:
        if not container.streams.video:
            raise InputError(path, "the file has no video stream")
        stream = container.streams.video[0]
        fps = stream.average_rate or stream.guessed_rate
        header = stream.frames or None
        try:
            first = next(container.decode(stream), None)
        except Exception as err:
            raise InputError(path, f"frame 0 cannot be decoded ({err})") from None
        if first is None:
            raise InputError(path, "the video has no decodable frame")
        rotation = int(round(getattr(first, "rotation", 0) or 0)) % 360
        coded = (first.height, first.width)
    finally:
        container.close()
    return (Fraction(fps) if fps else None), coded, rotation, header


def _displayed(coded: tuple[int, int], rotation: int) -> tuple[int, int]:
    return (coded[1], coded[0]) if rotation in (90, 270) else coded


class PyAVReader(FrameReader):
    """PyAV (`thread_type="AUTO"`, the fastest H.264 decoder measured on 2 cores); applies `frame.rotation`."""

    def __init__(self, path: str | os.PathLike, info: VideoInfo):
        self.path = os.fspath(path)
        self.info = info
        self._container = None

    def frames(self) -> Iterator[np.ndarray]:
        import av

        self._container = container = av.open(self.path)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        index = 0
        try:
            for frame in container.decode(stream):
                rgb = frame.to_ndarray(format="rgb24")
                turns = (int(round(frame.rotation or 0)) % 360) // 90
                if turns:
                    rgb = np.ascontiguousarray(np.rot90(rgb, k=turns))
                yield rgb
                index += 1
        except av.error.FFmpegError as err:
            raise InputError(self.path, f"decoding failed after {index} frames ({err})", f"frame {index}") from None
        finally:
            self.close()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


class DecordReader(FrameReader):
    """decord `VideoReader.next()`: sequential only (its random access returns wrong frames on B-frame AVI).

    decord reads ahead without bound, and nothing in its API bounds it (decord 0.6.0 source, `NextFrameImpl`): a
    `next()` that finds its decoding thread's queue empty pushes packets in a busy loop until that thread outputs
    something, and every packet becomes an RGB frame queued until asked for. The first `next()` after opening always
    finds the queue empty, so the read-ahead is set at once by thread scheduling: 20 to 870 frames of a 1,500-frame
    320x240 clip (all 150 of a 150-frame one), later growing further whenever the consumer catches up, and never
    shrinking before the end of the file (only a seek clears it, and seeks are what we must not do). `num_threads=1`,
    `get_batch` of consecutive indices and in-order `vr[i]` run the same loop (measured the same; docs/benchmarks.md).
    Hence 1.18x the peak memory of a 10x shorter clip (pyav 1.03x, opencv 1.01x; about 430 frames, +1.2 GB, at
    720p): use the PyAV or OpenCV backend for long videos or where memory is tight.
    """

    def __init__(self, path: str | os.PathLike, info: VideoInfo):
        self.path = os.fspath(path)
        self.info = info
        self._reader = None

    def frames(self) -> Iterator[np.ndarray]:
        import decord

        try:
            self._reader = reader = decord.VideoReader(self.path, ctx=decord.cpu(0), num_threads=0)
        except Exception as err:
            raise InputError(self.path, f"decord cannot open the video ({err})") from None
        index = 0
        try:
            while True:
                try:
                    frame = reader.next()
                except StopIteration:
                    break
                except Exception as err:
                    problem = f"decoding failed after {index} frames ({err})"
                    raise InputError(self.path, problem, f"frame {index}") from None
                yield np.ascontiguousarray(frame.asnumpy())
                index += 1
        finally:
            self.close()

    def close(self) -> None:
        self._reader = None


class OpenCVReader(FrameReader):
    """OpenCV `VideoCapture.read()` (orientation applied by default), BGR converted to RGB."""

    def __init__(self, path: str | os.PathLike, info: VideoInfo):
        self.path = os.fspath(path)
        self.info = info
        self._cap = None

    def frames(self) -> Iterator[np.ndarray]:
        import cv2

        self._cap = cap = cv2.VideoCapture(self.path)
        if not cap.isOpened():
            raise InputError(self.path, "OpenCV cannot open the video")
        try:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            self.close()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


_READERS = {"decord": DecordReader, "pyav": PyAVReader, "opencv": OpenCVReader}


def open_frames(path: str | os.PathLike, decoder: str = "pyav", fps: Fraction | float | None = None) -> FrameReader:
    """Opens a video file or a folder of numbered frames for sequential reading.

    Args:
        path: a video file, or a folder of numbered images (PoseTrack keeps frames as 000000.jpg, ...).
        decoder: backend for video files: "decord", "pyav" or "opencv" (ignored for folders).
        fps: frame rate of a frame folder (default 25); ignored for video files, whose rate comes from the
            container.

    Raises:
        InputError: missing path, unreadable video, empty folder.
        ValueError: unknown decoder name (a programming error; the CLI restricts the choices).
    """
    if decoder not in _READERS:
        raise ValueError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
    if Path(path).is_dir():
        return FrameFolderReader(path, fps=fps)
    rate, coded, rotation, header = probe_video(path)
    info = VideoInfo(
        path=os.fspath(path),
        backend=decoder,
        fps=rate,
        size=_displayed(coded, rotation),
        coded_size=coded,
        rotation=rotation,
        header_frames=header,
    )
    if rotation:
        log.info("%s: display matrix rotates by %d degrees; frames are returned as displayed (%dx%d)",
                 path, rotation, info.size[1], info.size[0])
    return _READERS[decoder](path, info)


def truncation_warning(reader: FrameReader, decoded: int, warnings: list[str]) -> int | None:
    """The container's promised frame count when fewer frames decoded (a truncated video; noted in `warnings` and
    logged), else None. Frame folders promise nothing beyond their files."""
    promised = reader.info.header_frames if reader.info.backend != "folder" else None
    if not promised or decoded >= promised:
        return None
    note = (f"{reader.info.path}: {decoded} frames decoded, the container promised {promised}: the video is "
            f"truncated (or its header is wrong); the output lists the {decoded} decoded frames")
    log.warning("%s", note)
    warnings.append(note)
    return promised
