"""Pose records: one person in one frame, and a sequence that groups them by frame.

Coordinates are frame pixels (x right, y down, pixel centres at integers) of the frame as decoded (0-based frame
index in decode order). Readers fill these; the refiner and the writers consume them. Fields of the input that
posefix does not interpret are kept in `extra` and written back untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from posefix_video.keypoints import NUM_JOINTS, KeypointLayout


@dataclass
class PersonRecord:
    """One person in one frame.

    Attributes:
        frame: 0-based frame index in decode order.
        track_id: the tracker's identity, or None when the input has none.
        keypoints: (17, 2) float64, x/y in frame pixels; rows of absent joints hold 0.
        scores: (17,) float64 per-joint confidence, or None when the input has none (PoseTrack GT: `scores: []`).
        present: (17,) bool, which joints the input gives.
        visibility: (17,) float64, the third value of each input triplet (v flag, or a score in some formats);
            None when the input has no triplets. Written back as given for present joints.
        box: (4,) float64 person box [x, y, w, h] in frame pixels, or None.
        person_score: the input's person score, or None.
        extra: the input's other fields, carried through untouched.
    """

    frame: int
    track_id: int | None
    keypoints: np.ndarray
    scores: np.ndarray | None
    present: np.ndarray
    visibility: np.ndarray | None = None
    box: np.ndarray | None = None
    person_score: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, dtype=np.float64).reshape(NUM_JOINTS, 2)
        self.present = np.asarray(self.present, dtype=bool).reshape(NUM_JOINTS)
        if self.scores is not None:
            self.scores = np.asarray(self.scores, dtype=np.float64).reshape(NUM_JOINTS)
        if self.visibility is not None:
            self.visibility = np.asarray(self.visibility, dtype=np.float64).reshape(NUM_JOINTS)
        if self.box is not None:
            self.box = np.asarray(self.box, dtype=np.float64).reshape(4)

    def replace(self, **changes: Any) -> PersonRecord:
        """A copy with some fields changed (arrays are not shared with the original)."""
        copy = dataclasses.replace(self, **changes)
        for name in ("keypoints", "scores", "present", "visibility", "box"):
            value = getattr(copy, name)
            if value is not None and value is getattr(self, name):
                setattr(copy, name, value.copy())
        copy.extra = dict(copy.extra)
        return copy


@dataclass
class PoseSequence:
    """All persons of one video, grouped by frame, with the sequence metadata.

    Attributes:
        name: sequence name (PoseTrack: the file stem, e.g. "000342_mpii_test").
        layout: the keypoint layout of every record.
        num_frames: frame count, when known (from the file's image list, or later from decoding).
        frames: frame index -> persons in that frame, in input order.
        images: PoseTrack18 `images` list as read (copied to the output as is), or None.
        image_ids: per-frame image id, when known.
        file_names: per-frame image file name, when known.
        source_format: the format the records were read from.
        meta: other file-level fields (e.g. the `categories` block, format-specific notes).
    """

    name: str
    layout: KeypointLayout
    num_frames: int | None = None
    frames: dict[int, list[PersonRecord]] = field(default_factory=dict)
    images: list[dict[str, Any]] | None = None
    image_ids: list[int] | None = None
    file_names: list[str] | None = None
    source_format: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def add(self, person: PersonRecord) -> None:
        self.frames.setdefault(person.frame, []).append(person)

    def persons(self) -> Iterator[PersonRecord]:
        """All records, frame by frame in increasing frame order."""
        for frame in sorted(self.frames):
            yield from self.frames[frame]

    def persons_in(self, frame: int) -> list[PersonRecord]:
        return self.frames.get(frame, [])

    @property
    def num_persons(self) -> int:
        return sum(len(p) for p in self.frames.values())

    @property
    def last_frame(self) -> int:
        """Largest frame index that has a person, or -1."""
        return max((f for f, p in self.frames.items() if p), default=-1)
