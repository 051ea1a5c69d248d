"""The append-only run journal beside the output (`OUT.partial.jsonl`): the results of a refinement run, flushed to
disk chunk by chunk, so a crash loses at most the chunk in flight and `--resume` continues where it stopped.

Line 1 is a header with a hash of the inputs and the options that change the results; every further line is one
chunk of consecutive frames [start, stop) with its refined persons. Lines are fsynced as they are written. A line
cut short by a kill is dropped (and the file trimmed to the last whole line) when the journal is opened again,
wherever it is (a header cut short starts the run again). A run holds an exclusive `flock` on its journal until it
ends, so a second run writing the same output is refused with a message instead of corrupting the first's.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from posefix_video.errors import PosefixError
from posefix_video.records import PersonRecord

log = logging.getLogger(__name__)

JOURNAL_VERSION = 1
JOURNAL_NAME = "posefix_video.video.refine_video"


def journal_path(out: str | os.PathLike) -> Path:
    """The journal of output `out`: `<out>.partial.jsonl` in the same folder."""
    out = Path(out)
    return out.with_name(out.name + ".partial.jsonl")


def file_fingerprint(path: str | os.PathLike, full: bool = False, head_bytes: int = 1 << 20) -> dict[str, Any]:
    """Identity of a file for the journal header: size, mtime and a sha256 of its content (the first MiB only,
    unless `full`; videos are large, and size + mtime + head catch a replaced file).

    A folder (frames, or an ultralytics labels folder) is identified by its files' names, sizes and mtimes, and
    with `full` by their contents too.
    """
    path = Path(path)
    st = path.stat()
    digest = hashlib.sha256()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        for p in files:
            fst = p.stat()
            digest.update(f"{p.name}\0{fst.st_size}\0{fst.st_mtime_ns}\n".encode())
            if full:
                digest.update(hashlib.sha256(p.read_bytes()).digest())
        return {"path": str(path.resolve()), "files": len(files), "sha256": digest.hexdigest()}
    with open(path, "rb") as f:
        if full:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        else:
            digest.update(f.read(head_bytes))
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest.hexdigest()}


def run_hash(inputs: dict[str, Any]) -> str:
    """sha256 of a JSON-able description of the inputs and result-changing options."""
    text = json.dumps({"version": JOURNAL_VERSION, **inputs}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in the journal")


def record_to_json(p: PersonRecord) -> dict[str, Any]:
    """A PersonRecord as plain JSON (floats round-trip exactly through Python's json)."""
    return {
        "frame": p.frame,
        "track_id": p.track_id,
        "keypoints": p.keypoints.tolist(),
        "scores": None if p.scores is None else p.scores.tolist(),
        "present": p.present.astype(int).tolist(),
        "visibility": None if p.visibility is None else p.visibility.tolist(),
        "box": None if p.box is None else p.box.tolist(),
        "person_score": p.person_score,
        "extra": p.extra,
    }


def record_from_json(d: dict[str, Any]) -> PersonRecord:
    return PersonRecord(
        frame=d["frame"],
        track_id=d["track_id"],
        keypoints=np.asarray(d["keypoints"], dtype=np.float64),
        scores=None if d["scores"] is None else np.asarray(d["scores"], dtype=np.float64),
        present=np.asarray(d["present"], dtype=bool),
        visibility=None if d["visibility"] is None else np.asarray(d["visibility"], dtype=np.float64),
        box=None if d["box"] is None else np.asarray(d["box"], dtype=np.float64),
        person_score=d["person_score"],
        extra=d["extra"],
    )


@dataclass
class JournalChunk:
    """One journaled chunk: frames [start, stop), their output records and pass-through reason counts."""

    start: int
    stop: int
    records: list[PersonRecord]
    passed: Counter


class Journal:
    """Writer of a run journal, holding an exclusive lock (flock) on it from opening to `close`/`remove`, so a
    second run writing the same output is refused instead of corrupting it. Use `Journal.create` (fresh) or
    `Journal.resume` (continue a matching one)."""

    def __init__(self, path: Path, run_id: str, done_until: int, fd: int):
        self.path = path
        self.run_id = run_id
        self.done_until = done_until
        self._fd: int | None = fd

    @staticmethod
    def _lock(path: Path) -> int:
        """Opens (without truncating: the file may be another run's) and locks the journal, or refuses."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise PosefixError(f"{path}: another run is writing this output right now (its journal is locked); "
                               "wait for it to finish, or choose another -o") from None
        except OSError as err:
            if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                os.close(fd)
                raise
            log.warning("%s: this file system cannot lock files (%s); two runs on the same output would not be "
                        "told apart", path, err.strerror)
        except BaseException:
            os.close(fd)
            raise
        return fd

    @classmethod
    def create(cls, path: str | os.PathLike, run_id: str) -> Journal:
        path = Path(path)
        fd = cls._lock(path)
        try:
            _start(fd, path, run_id)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, run_id, 0, fd)

    @classmethod
    def resume(cls, path: str | os.PathLike, run_id: str) -> Journal:
        """Opens an existing journal to continue it, after checking it belongs to this run. A journal cut short
        anywhere (inside its header or its first chunk too) keeps its complete lines; an empty or half-written
        header starts the run again.

        Raises:
            PosefixError: the journal was written for other inputs or options, is not a journal, or is locked by
                a run in progress.
        """
        path = Path(path)
        fd = cls._lock(path)
        try:
            with open(path, "rb") as f:
                head = f.readline()
            if not head.endswith(b"\n") and (not head or head.startswith(b'{"journal"')):
                log.warning("%s: the journal's header was cut off (the previous run was killed as it started); "
                            "starting again", path)
                _start(fd, path, run_id)
                return cls(path, run_id, 0, fd)
            stop, good_bytes = 0, len(head)
            for chunk, end in _scan(path, run_id):
                stop, good_bytes = chunk.stop, end
            if good_bytes < os.fstat(fd).st_size:
                log.warning("%s: dropping an incomplete last line (the previous run was cut off while writing)",
                            path)
                os.ftruncate(fd, good_bytes)
        except BaseException:
            os.close(fd)
            raise
        log.info("%s: resuming after frame %d", path, stop - 1)
        return cls(path, run_id, stop, fd)

    def append(self, start: int, stop: int, records: list[PersonRecord], passed: Counter) -> None:
        """Writes one chunk and fsyncs it (chunks must follow each other without gaps)."""
        if start != self.done_until:
            raise ValueError(f"journal chunk starts at {start}, expected {self.done_until}")
        if self._fd is None:
            raise ValueError(f"{self.path}: the journal is closed")
        line = json.dumps({"start": start, "stop": stop, "passed": dict(passed),
                           "persons": [record_to_json(p) for p in records]}, default=_plain)
        os.lseek(self._fd, 0, os.SEEK_END)
        _write_all(self._fd, self.path, (line + "\n").encode())
        self.done_until = stop

    def close(self) -> None:
        """Closes the journal and releases its lock (the file stays for --resume)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def remove(self) -> None:
        """Deletes the journal (still holding the lock, so no other run can have taken it over), then closes."""
        self.path.unlink(missing_ok=True)
        self.close()


def _start(fd: int, path: Path, run_id: str) -> None:
    """Empties the (locked) journal and writes its header."""
    os.ftruncate(fd, 0)
    header = {"journal": JOURNAL_NAME, "version": JOURNAL_VERSION, "run": run_id}
    _write_all(fd, path, (json.dumps(header) + "\n").encode())


def _write_all(fd: int, path: Path, data: bytes) -> None:
    """Writes and fsyncs `data`; an OS error (a full disk) names the journal."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except OSError as err:
        if err.filename is None:
            raise OSError(err.errno, err.strerror, os.fspath(path)) from None
        raise


def _scan(path: Path, run_id: str) -> Iterator[tuple[JournalChunk, int]]:
    """Chunks of a journal with the byte offset after each line; stops at the first incomplete line."""
    with open(path, "rb") as f:
        head = f.readline()
        try:
            header = json.loads(head)
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("journal") != JOURNAL_NAME:
            raise PosefixError(f"{path}: not a posefix refine_video journal; delete it or choose another output")
        if header.get("run") != run_id:
            raise PosefixError(f"{path}: this journal was written for other inputs or options (video, tracks, "
                               "checkpoint, format, frame base, layout, flip, precision, decoder, batch size, "
                               "chunk frames, ... changed); run without --resume to start again, or restore the "
                               "original inputs and options")
        offset = len(head)
        expected = 0
        for line in f:
            if not line.endswith(b"\n"):
                return
            try:
                d = json.loads(line)
            except ValueError:
                return
            if not isinstance(d, dict) or not all(k in d for k in ("start", "stop", "passed", "persons")):
                return  # a damaged line: the chunks before it are kept
            if d["start"] != expected:
                raise PosefixError(f"{path}: chunk at byte {offset} starts at frame {d['start']}, expected "
                                   f"{expected}; the journal is damaged, run without --resume")
            offset += len(line)
            expected = d["stop"]
            yield JournalChunk(d["start"], d["stop"], [record_from_json(r) for r in d["persons"]],
                               Counter(d["passed"])), offset


def read_journal(path: str | os.PathLike, run_id: str) -> Iterator[JournalChunk]:
    """The complete chunks of a journal, in frame order (streamed, not loaded at once)."""
    for chunk, _ in _scan(Path(path), run_id):
        yield chunk
