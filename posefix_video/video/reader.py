"""The frame-source interface every decoder and the frame-folder reader implement (no decoder imports here,
so decoders.py and frames.py both build on it without importing each other)."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a frame source before decoding it.

    Attributes:
        path: the video file or frame folder.
        backend: "decord", "pyav", "opencv" or "folder".
        fps: frame rate as an exact fraction (the container's average rate; a frame folder's given rate).
        size: (H, W) of the frames as returned (displayed orientation).
        coded_size: (H, W) as stored in the stream, before the display rotation.
        rotation: degrees counter-clockwise the display matrix turns the coded frames (0, 90, 180, 270).
        header_frames: the frame count the container claims (a hint only; decoding decides), or None.
    """

    path: str
    backend: str
    fps: Fraction | None
    size: tuple[int, int]
    coded_size: tuple[int, int]
    rotation: int
    header_frames: int | None


class FrameReader(abc.ABC):
    """A sequential frame source. Iterate `frames()` once: (H, W, 3) uint8 RGB C-contiguous arrays in decode
    order, starting at frame 0. Raises `InputError` for undecodable input, naming the frame."""

    info: VideoInfo

    @abc.abstractmethod
    def frames(self) -> Iterator[np.ndarray]:
        """Yields the frames in decode order (each backend implements this)."""

    def close(self) -> None:
        """Releases the decoder (idempotent); backends with nothing to release keep this default."""
        return None
