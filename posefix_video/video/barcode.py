"""The frame-index barcode of the synthetic decoder fixtures (shared/data/video/synthetic/README.md).

The top sixth of a frame holds 16 equal-width blocks; block k (from the left) is white when bit k of the frame
index is set, black otherwise. Blocks are grey, so RGB/BGR order does not matter. Tests and benchmarks burn it into
generated clips and read it back from decoded frames (or crops) to prove that no frame is off by one.
"""

from __future__ import annotations

import numpy as np

NUM_BITS = 16


def draw_barcode(frame: np.ndarray, index: int) -> np.ndarray:
    """Burns `index` into the top sixth of `frame` ((H, W, 3) uint8, modified in place and returned)."""
    if not 0 <= index < 1 << NUM_BITS:
        raise ValueError(f"barcode index must be in [0, {1 << NUM_BITS}), got {index}")
    h, w = frame.shape[:2]
    band = h // 6
    edges = np.linspace(0, w, NUM_BITS + 1).round().astype(int)
    for k in range(NUM_BITS):
        frame[:band, edges[k] : edges[k + 1]] = 255 if (index >> k) & 1 else 0
    return frame


def read_barcode(frame: np.ndarray) -> int:
    """Reads the index back from an (H, W, 3) or (H, W) frame whose top sixth is the barcode.

    Only the interior of each block is averaged (a quarter of the block width and of the band height is left out
    on each side), so compression ringing at block edges does not flip a bit.
    """
    grey = np.asarray(frame, dtype=np.float32)
    if grey.ndim == 3:
        grey = grey.mean(axis=-1)
    h, w = grey.shape
    band = h // 6
    bw = w / NUM_BITS
    y0, y1 = band // 4, band - band // 4
    value = 0
    for k in range(NUM_BITS):
        x0, x1 = int(k * bw + bw / 4), int((k + 1) * bw - bw / 4)
        if grey[y0:y1, x0:x1].mean() > 127:
            value |= 1 << k
    return value
