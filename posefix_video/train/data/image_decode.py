"""Training-image decoding: RGB uint8, optionally at 1/2 or 1/4 size, into one reused buffer per process.

JPEG decode is the largest cost of a training sample (docs/training_data.md). libjpeg-turbo through simplejpeg
decodes straight to RGB into a buffer that is allocated once, which saves the channel swap and the page faults of a
fresh ~1 MB array per image; DCT-domain reduction (libjpeg's scale_denom 2 or 4, the same as OpenCV's
IMREAD_REDUCED_COLOR_2/4) decodes large persons at a fraction of the cost. Images that are not baseline/progressive
JPEG that libjpeg can turn into RGB (PNG, CMYK JPEG, ...) go through OpenCV instead. EXIF orientation is ignored
on both paths: annotation coordinates refer to the stored pixel grid.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import simplejpeg

from posefix_video.errors import InputError

_JPEG_MAGIC = b"\xff\xd8"
_CV2_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4}


class ImageDecoder:
    """Decodes image files to (H, W, 3) RGB uint8.

    The returned array of a JPEG is a view of this decoder's buffer, valid until the next `decode` call: use it
    (warp it) before decoding the next image. One decoder per process (DataLoader workers each get their copy).
    The decode is libjpeg's exact (islow) IDCT with smooth chroma upsampling, pixel-identical to cv2.imread: the
    "fast" IDCT would save only 5-10 % here and costs ~1 grey level on average, up to ~20 at edges.
    """

    def __init__(self) -> None:
        self._buffer = np.empty(0, dtype=np.uint8)

    def __getstate__(self) -> dict:
        return {}  # the buffer is per process: workers start with an empty one, not a pickled copy

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    def decode(self, path: str, factor: int = 1, *, record: str | None = None) -> tuple[np.ndarray, int]:
        """Returns (image, factor used): `factor` 2 or 4 decodes at 1/factor size (JPEG only; others give 1).

        Raises InputError naming the file (and `record`, e.g. the annotation) when it is missing or not decodable.
        """
        if factor not in _CV2_REDUCED:
            raise ValueError(f"decode factor {factor} (1, 2 or 4)")
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise InputError(path, f"image missing or not readable ({exc.strerror or exc})", record) from None
        jpeg_error = ""
        if data[:2] == _JPEG_MAGIC:
            try:
                return self._decode_jpeg(data, factor), factor
            except ValueError as exc:  # CMYK, lossless, corrupt: OpenCV may still read it, else report libjpeg's words
                jpeg_error = f": {exc}"
            f = factor
        else:
            f = 1
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), _CV2_REDUCED[f] | cv2.IMREAD_IGNORE_ORIENTATION)
        if img is None:
            raise InputError(path, f"image missing or not readable (not a decodable image{jpeg_error})", record)
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB), f

    def _decode_jpeg(self, data: bytes, factor: int) -> np.ndarray:
        h, w = simplejpeg.decode_jpeg_header(data)[:2]
        # libjpeg's output size at scale 1/f is ceil(size / f); asking for at least that picks exactly 1/f
        oh, ow = math.ceil(h / factor), math.ceil(w / factor)
        if self._buffer.size < oh * ow * 3:
            self._buffer = np.empty(h * w * 3, dtype=np.uint8)
        return simplejpeg.decode_jpeg(data, "RGB", min_height=oh, min_width=ow, buffer=self._buffer)
