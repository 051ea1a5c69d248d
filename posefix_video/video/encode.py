"""Writing videos: H.264 through PyAV (plays in browsers) at an exact fractional frame rate, with an OpenCV `mp4v`
fallback when no H.264 encoder is available. The file appears atomically when `close()` succeeds."""

from __future__ import annotations

import contextlib
import logging
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


class VideoEncoder:
    """Encodes (H, W, 3) uint8 RGB frames of one size into `path`.

    Args:
        path: the output file (.mp4).
        fps: frame rate as an exact fraction (e.g. Fraction(30000, 1001)); floats are converted exactly enough.
        size: (H, W); odd sizes are padded by one pixel for yuv420p.
        codec: "h264" (PyAV libx264; falls back to mp4v if unavailable) or "mp4v".
        crf: libx264 quality (lower is better).

    Frames go to a temporary file beside `path`; `close()` renames it, `abort()` removes it.
    """

    def __init__(self, path: str | os.PathLike, fps: Fraction | float, size: tuple[int, int], codec: str = "h264",
                 crf: int = 20):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.fps = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001000)
        self.size = size
        self.pad = (size[0] % 2, size[1] % 2)
        self.codec = codec
        self.frames_written = 0
        self._container = self._stream = self._cv_writer = None
        if codec == "h264":
            try:
                self._open_pyav(crf)
            except Exception as err:  # no libx264 in this FFmpeg build, or it refuses the size
                log.warning("H.264 encoding unavailable (%s); writing mp4v instead (not playable in browsers)", err)
                self._close_pyav()
                self.codec = "mp4v"
        if self.codec == "mp4v":
            self._open_opencv()

    def _open_pyav(self, crf: int) -> None:
        import av

        self._container = av.open(os.fspath(self.tmp), mode="w", format="mp4")
        stream = self._container.add_stream("libx264", rate=self.fps)
        stream.height = self.size[0] + self.pad[0]
        stream.width = self.size[1] + self.pad[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        self._stream = stream

    def _close_pyav(self) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
        self._container = self._stream = None

    def _open_opencv(self) -> None:
        import cv2

        h, w = self.size
        self._cv_writer = cv2.VideoWriter(os.fspath(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(self.fps),
                                          (w, h))
        if not self._cv_writer.isOpened():
            raise OSError(f"cannot open {self.path} for writing with OpenCV mp4v")

    def write(self, frame: np.ndarray) -> None:
        """Appends one (H, W, 3) uint8 RGB frame."""
        if frame.shape[:2] != tuple(self.size):
            raise ValueError(f"frame size {frame.shape[:2]} differs from the encoder's {self.size}")
        if self._stream is not None:
            import av

            if any(self.pad):
                frame = np.pad(frame, ((0, self.pad[0]), (0, self.pad[1]), (0, 0)), mode="edge")
            packet_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            for packet in self._stream.encode(packet_frame):
                self._container.mux(packet)
        else:
            import cv2

            self._cv_writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frames_written += 1

    def close(self) -> None:
        """Flushes the encoder and moves the finished file to `path`."""
        if self._stream is not None:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._close_pyav()
        if self._cv_writer is not None:
            self._cv_writer.release()
            self._cv_writer = None
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Stops writing and removes the partial file."""
        self._close_pyav()
        if self._cv_writer is not None:
            self._cv_writer.release()
            self._cv_writer = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)
