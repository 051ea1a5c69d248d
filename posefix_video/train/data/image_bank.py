"""Decode-once image bank: every training image decoded once into one uint8 file, read back by memory mapping.

JPEG decode is 70-85 % of a training sample's CPU cost (docs/training_data.md), and a COCO epoch decodes each image
about 2.65 times (once per person) and again every epoch. The bank pays that once: `build` decodes each image one
time into `pixels.u8` (RGB rows, image after image) and writes `index.json` last, so a bank without an index is
unfinished. `open` memory-maps the pixels read-only: DataLoader workers share the page cache instead of copies, and
a crop reads only the rows it touches. Pixels are exactly the decoder's (ImageDecoder at full size).

Size: the decoded images, e.g. ~47 GB for COCO train2017's 56.6 K keypoint images; `build` refuses when the disk
has less free space. Each source file's size and mtime are recorded: `open` refuses a bank whose images changed.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from posefix_video.atomic import write_json_atomic
from posefix_video.errors import ConfigError, InputError
from posefix_video.train.data.image_decode import ImageDecoder
from posefix_video.train.data.posetrack import jpeg_size

log = logging.getLogger(__name__)

BANK_VERSION = 1
PIXELS = "pixels.u8"
INDEX = "index.json"


def _key(path: str | os.PathLike) -> str:
    return os.path.abspath(os.fspath(path))


class ImageBank:
    """Decoded training images by path, memory-mapped. Build with `ImageBank.build`, load with `ImageBank.open`.

    Args:
        folder: the bank folder.
        entries: absolute image path -> (offset, height, width) into the pixel file.
    """

    def __init__(self, *, folder: str | os.PathLike, entries: dict[str, tuple[int, int, int]]):
        self.folder = Path(folder)
        self.entries = entries
        self._pixels: np.memmap | None = None

    def __getstate__(self) -> dict:
        return {"folder": self.folder, "entries": self.entries}  # workers map the file themselves

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, path: str | os.PathLike) -> bool:
        return _key(path) in self.entries

    @property
    def nbytes(self) -> int:
        return sum(h * w * 3 for _, h, w in self.entries.values())

    def get(self, path: str | os.PathLike) -> np.ndarray | None:
        """(H, W, 3) uint8 RGB read-only view of `path`'s decoded image, or None when the bank does not hold it."""
        entry = self.entries.get(_key(path))
        if entry is None:
            return None
        if self._pixels is None:
            self._pixels = np.memmap(self.folder / PIXELS, dtype=np.uint8, mode="r")
        offset, h, w = entry
        return self._pixels[offset : offset + h * w * 3].reshape(h, w, 3)

    @classmethod
    def open(cls, folder: str | os.PathLike, *, check: Iterable[str | os.PathLike] = ()) -> ImageBank:
        """Loads a built bank; every path in `check` must be in it and unchanged since the build."""
        folder = Path(folder)
        index_path = folder / INDEX
        how = (f"build it with `python -m pipelines.build_image_bank --config <recipe> data.image_bank={folder}` "
               "(docs/training_data.md)")
        if not index_path.is_file():
            raise ConfigError(f"{folder}: no image bank here ({INDEX} missing, or the build did not finish); {how}")
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
            version, images, total = index["version"], index["images"], int(index["total_bytes"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(index_path, f"not a readable image bank index ({exc}); rebuild the bank") from None
        if version != BANK_VERSION:
            raise InputError(index_path, f"image bank version {version}, this code reads {BANK_VERSION}; rebuild it")
        size = (folder / PIXELS).stat().st_size if (folder / PIXELS).is_file() else -1
        if size != total:
            raise InputError(folder / PIXELS, f"{size} bytes, the index says {total}; rebuild the bank")
        entries, stamps = {}, {}
        for path, offset, h, w, nbytes, mtime_ns in images:
            entries[path] = (int(offset), int(h), int(w))
            stamps[path] = (int(nbytes), int(mtime_ns))
        missing, changed = [], []
        for p in {_key(p) for p in check}:
            if p not in stamps:
                missing.append(p)
                continue
            try:
                st = os.stat(p)
            except OSError:
                continue  # the sample reports the missing image with its record when it is read
            if (st.st_size, st.st_mtime_ns) != stamps[p]:
                changed.append(p)
        if missing:
            raise ConfigError(f"{folder}: image bank lacks {len(missing)} of the dataset's images (e.g. "
                              f"{sorted(missing)[0]}); {how}")  # fmt: skip
        if changed:
            raise ConfigError(f"{folder}: {len(changed)} images changed since the bank was built (e.g. "
                              f"{sorted(changed)[0]}: size or modification time differs); {how}")  # fmt: skip
        return cls(folder=folder, entries=entries)

    @classmethod
    def build(
        cls, folder: str | os.PathLike, paths: Iterable[str | os.PathLike], *, workers: int = 0, progress: bool = False
    ) -> ImageBank:
        """Decodes every image of `paths` once into a new bank at `folder` (replacing one that is there).

        Args:
            workers: decoding processes (0: this process). Each writes its images straight into the mapped file.
            progress: a tqdm bar on stderr.
        """
        folder = Path(folder)
        keys = sorted({_key(p) for p in paths})
        layout, stamps, offset = [], [], 0
        for p in keys:
            h, w = _image_size(p)
            st = os.stat(p)
            layout.append((p, offset, h, w))
            stamps.append((st.st_size, st.st_mtime_ns))
            offset += h * w * 3
        folder.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(folder).free
        old = (folder / PIXELS).stat().st_size if (folder / PIXELS).is_file() else 0
        if offset > free + old:
            raise ConfigError(f"{folder}: the image bank needs {offset / 1e9:.1f} GB ({len(keys)} images), "
                              f"{(free + old) / 1e9:.1f} GB free there")  # fmt: skip
        (folder / INDEX).unlink(missing_ok=True)  # from here on the folder holds no finished bank
        tmp = folder / f".{PIXELS}.tmp"
        with open(tmp, "wb") as f:
            f.truncate(offset)
        try:
            tasks = [(str(tmp), p, o, h, w) for p, o, h, w in layout]
            chunks = [tasks[i : i + 64] for i in range(0, len(tasks), 64)]
            with tqdm(total=len(tasks), unit="img", desc="image bank", disable=not progress) as bar:
                if workers > 0 and len(chunks) > 1:
                    ctx = multiprocessing.get_context("spawn")  # fork after torch threads may deadlock
                    with ctx.Pool(workers) as pool:
                        for n in pool.imap_unordered(_fill, chunks):
                            bar.update(n)
                else:
                    for chunk in chunks:
                        bar.update(_fill(chunk))
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, folder / PIXELS)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        images = [[p, o, h, w, s, m] for (p, o, h, w), (s, m) in zip(layout, stamps)]
        write_json_atomic(folder / INDEX, {"version": BANK_VERSION, "total_bytes": offset, "images": images})
        log.info("image bank %s: %d images, %.2f GB", folder, len(keys), offset / 1e9)
        return cls(folder=folder, entries={p: (o, h, w) for p, o, h, w in layout})


def _image_size(path: str) -> tuple[int, int]:
    """(height, width) from the JPEG header, or by decoding other formats."""
    size = jpeg_size(path)
    if size is not None:
        return size[1], size[0]
    img, _ = ImageDecoder().decode(path)
    return img.shape[0], img.shape[1]


def _fill(chunk: Sequence[tuple[str, str, int, int, int]]) -> int:
    """Decodes a chunk of images into their places in the pixel file; returns how many.

    pwrite, not a writable memmap: faulting in a fresh file's pages one by one cost more than the copy.
    """
    dec = ImageDecoder()
    fd = os.open(chunk[0][0], os.O_WRONLY)
    try:
        for _, path, offset, h, w in chunk:
            img, _ = dec.decode(path)
            if img.shape[:2] != (h, w):
                raise InputError(path, f"decodes to {img.shape[1]}x{img.shape[0]}, its header says {w}x{h}")
            data = np.ascontiguousarray(img).data
            written = 0
            while written < data.nbytes:
                written += os.pwrite(fd, data[written:], offset + written)
    finally:
        os.close(fd)
    return len(chunk)
