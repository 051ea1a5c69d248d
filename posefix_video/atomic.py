"""Atomic file writes: a temporary file in the target's folder, fsync, then rename.

A reader (or a user after a crash) sees either the old file or the complete new one, never a truncated file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Opens a temporary file next to `path`; on a clean exit it replaces `path`, on an error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: str | os.PathLike, data: Any, indent: int | None = None) -> None:
    """Writes `data` as JSON to `path` atomically. NaN/inf are refused: no standard JSON reader accepts them."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=indent, allow_nan=False)
        f.write("\n")


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)
