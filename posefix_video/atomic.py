"""Atomic file writes: a temporary file in the target's folder, fsync, then rename.

A reader (or a user after a crash) sees either the old file or the complete new one, never a truncated file.

The temporary file is `.NAME.<pid>-<random>.tmp`. A process killed during the write (SIGKILL, power loss) leaves
it behind; the next write of the same NAME removes such files whose writing process is gone, and no other file
(the pattern, the process id and the process's death must all match). The final file gets the mode a plain
`open(path, "w")` would give it: the mode of the file it replaces, else 0o666 minus the umask (mkstemp's 0o600
would hide outputs from the user's group).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def current_umask() -> int:
    """The process umask, read without changing it (os.umask(x) would briefly affect other threads' files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)  # no /proc (macOS): the classic way
    os.umask(old)
    return old


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Removes `.NAME.<pid>-<random>.tmp` files beside `path` left by atomic writes of processes that no longer
    run (killed while writing). Returns the removed paths."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)-[a-z0-9_]{{8}}\.tmp")
    removed = []
    try:
        candidates = list(path.parent.glob(f".{glob.escape(path.name)}.*-*.tmp"))
    except OSError:
        return removed
    for tmp in candidates:
        m = pattern.fullmatch(tmp.name)
        if m is None or int(m.group(1)) == os.getpid() or _alive(int(m.group(1))):
            continue
        with contextlib.suppress(OSError):
            if tmp.is_file() and not tmp.is_symlink():
                tmp.unlink()
                removed.append(tmp)
    return removed


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Opens a temporary file next to `path`; on a clean exit it replaces `path`, on an error it is removed.

    An OSError without a file name (a full disk on write) is raised again naming `path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise _named(err, path) from None
    try:
        try:
            file_mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            file_mode = 0o666 & ~current_umask()
        os.fchmod(fd, file_mode)
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename is None:
            raise _named(err, path) from None
        raise


def _named(err: OSError, path: Path) -> OSError:
    """`err` with `path` as its file name when it has none (write/fsync errors carry no path)."""
    if err.filename is not None:
        return err
    return OSError(err.errno, err.strerror or str(err), os.fspath(path))


def write_json_atomic(path: str | os.PathLike, data: Any, indent: int | None = None) -> None:
    """Writes `data` as JSON to `path` atomically. NaN/inf are refused: no standard JSON reader accepts them."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=indent, allow_nan=False)
        f.write("\n")


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)
