"""The append-only run journal beside the output (`OUT.partial.jsonl`): the results of a refinement run, flushed to
disk chunk by chunk, so a crash loses at most the chunk in flight and `--resume` continues where it stopped.

Line 1 is a header with a hash of the inputs and the options that change the results; every further line is one
chunk of consecutive frames [start, stop) with its refined persons. Lines are fsynced as they are written. A line
cut short by a kill is dropped (and the file trimmed to the last whole line) when the journal is opened again.
"""

from __future__ import annotations

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
    """Writer of a run journal. Use `Journal.create` (fresh) or `Journal.resume` (continue a matching one)."""

    def __init__(self, path: Path, run_id: str, done_until: int):
        self.path = path
        self.run_id = run_id
        self.done_until = done_until
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    @classmethod
    def create(cls, path: str | os.PathLike, run_id: str) -> Journal:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(json.dumps({"journal": "posefix_video.video.refine_video", "version": JOURNAL_VERSION,
                                "run": run_id}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return cls(path, run_id, 0)

    @classmethod
    def resume(cls, path: str | os.PathLike, run_id: str) -> Journal:
        """Opens an existing journal to continue it, after checking it belongs to this run.

        Raises:
            PosefixError: the journal was written for other inputs or options, or is not a journal.
        """
        path = Path(path)
        stop, good_bytes = 0, 0
        for chunk, end in _scan(path, run_id):
            stop, good_bytes = chunk.stop, end
        if good_bytes and good_bytes < path.stat().st_size:
            log.warning("%s: dropping an incomplete last line (the previous run was cut off while writing)", path)
            os.truncate(path, good_bytes)
        log.info("%s: resuming after frame %d", path, stop - 1)
        return cls(path, run_id, stop)

    def append(self, start: int, stop: int, records: list[PersonRecord], passed: Counter) -> None:
        """Writes one chunk and fsyncs it (chunks must follow each other without gaps)."""
        if start != self.done_until:
            raise ValueError(f"journal chunk starts at {start}, expected {self.done_until}")
        line = json.dumps({"start": start, "stop": stop, "passed": dict(passed),
                           "persons": [record_to_json(p) for p in records]}, default=_plain)
        self._file.write(line + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.done_until = stop

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


def _scan(path: Path, run_id: str) -> Iterator[tuple[JournalChunk, int]]:
    """Chunks of a journal with the byte offset after each line; stops at the first incomplete line."""
    with open(path, "rb") as f:
        head = f.readline()
        try:
            header = json.loads(head)
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("journal") != "posefix_video.video.refine_video":
            raise PosefixError(f"{path}: not a posefix refine_video journal; delete it or choose another output")
        if header.get("run") != run_id:
            raise PosefixError(f"{path}: this journal was written for other inputs or options (video, tracks, "
                               "checkpoint, format, frame base, layout, flip, decoder changed); run without "
                               "--resume to start again, or restore the original inputs")
        offset = len(head)
        expected = 0
        for line in f:
            if not line.endswith(b"\n"):
                return
            try:
                d = json.loads(line)
            except ValueError:
                return
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
