"""Folders of numbered frames (PoseTrack keeps videos as 000000.jpg, 000001.jpg, ...).

Frame i is the i-th file in increasing numeric order of the file stem: the names fix the order, the position
fixes the index. A folder numbered from 1 therefore still gives frame 0 first; the tracks' frame base is decided
by the tracks reader (`--frame-base`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from posefix_video.errors import InputError
from posefix_video.video.reader import FrameReader, VideoInfo

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
DEFAULT_FOLDER_FPS = Fraction(25)


def list_frame_files(folder: str | os.PathLike) -> list[Path]:
    """The numbered image files of `folder`, in frame order.

    Raises:
        InputError: the folder has no image whose name is a number.
    """
    folder = Path(folder)
    numbered = []
    skipped = 0
    for entry in folder.iterdir():
        if entry.suffix.lower() not in IMAGE_SUFFIXES or not entry.is_file():
            continue
        if entry.stem.isdigit():
            numbered.append((int(entry.stem), entry))
        else:
            skipped += 1
    if not numbered:
        raise InputError(folder, "the folder holds no numbered frames (expected files such as 000000.jpg)")
    numbered.sort()
    if skipped:
        log.warning("%s: ignored %d image files whose names are not frame numbers", folder, skipped)
    numbers = [n for n, _ in numbered]
    if numbers[-1] - numbers[0] + 1 != len(numbers):
        log.warning("%s: frame numbers %d..%d have gaps (%d files); frames are indexed by position",
                    folder, numbers[0], numbers[-1], len(numbers))
    return [p for _, p in numbered]


def _read_rgb(path: Path) -> np.ndarray:
    import cv2

    # imdecode from bytes: cv2.imread silently returns None for non-ASCII paths on some platforms.
    data = np.fromfile(path, dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise InputError(path, "cannot decode the image (corrupt or not an image)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class FrameFolderReader(FrameReader):
    """Sequential reader of a numbered-frame folder; every frame must have the first frame's size."""

    def __init__(self, folder: str | os.PathLike, fps: Fraction | float | None = None):
        self.folder = Path(folder)
        self.files = list_frame_files(self.folder)
        first = _read_rgb(self.files[0])
        size = first.shape[:2]
        self.info = VideoInfo(
            path=os.fspath(folder),
            backend="folder",
            fps=Fraction(fps).limit_denominator(1001000) if fps else DEFAULT_FOLDER_FPS,
            size=size,
            coded_size=size,
            rotation=0,
            header_frames=len(self.files),
        )

    def frames(self) -> Iterator[np.ndarray]:
        for index, path in enumerate(self.files):
            rgb = _read_rgb(path)
            if rgb.shape[:2] != self.info.size:
                raise InputError(path, f"frame size {rgb.shape[1]}x{rgb.shape[0]} differs from the first frame's "
                                 f"{self.info.size[1]}x{self.info.size[0]}", f"frame {index}")
            yield rgb
