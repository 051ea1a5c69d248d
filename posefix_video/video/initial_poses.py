"""Box-only persons (trackers that write boxes, not poses): an initial pose from a top-down initializer, then PoseFix.

    stage = PoseStage(refiner=refiner, initializer=load_initializer("simplebaseline.pth"))
    records, counts = stage.refine_records(frames, records, frame_offset=chunk.start)

`PoseStage` has the refiner's `refine_records` interface, so the streaming loop of `refine_video` calls it where
it called the refiner (refine_coco does the same on its arrays, video/refine_images.py): per chunk, the frames
decoded once go to the initializer first (box-only persons get a pose: `TopDownEstimator.estimate_records`), then
every person goes to the refiner. On a GPU the chunk's frames are moved to the device once and both networks crop
from that copy.

What each person becomes (input order kept, one output record per input record):
    box and a pose         refined (as without an initializer)
    box, no pose           initializer pose (every joint, maxvals as scores, extra "initializer"), then refined
    box, no pose, no initializer given
                           passed through with the counted reason NO_POSE (it names --initializer); written to
                           PoseTrack18 as a person whose 17 joints are (0, 0, 0), poseval's "not predicted"
    box of zero size       passed through with the counted reason NO_BOX (no crop)
    refine=False (--no-refine): the initializer's poses as they are, nothing refined (counted reasons say so)
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from posefix_video.errors import CheckpointError
from posefix_video.records import PersonRecord, PoseSequence

NO_POSE = "box only, no pose (give --initializer to estimate one)"
INITIALIZED_NOT_REFINED = "initializer pose, not refined (--no-refine)"
NOT_REFINED = "not refined (--no-refine)"


NO_BOX = "box of zero size or not finite, no pose"


def needs_pose(record: PersonRecord) -> bool:
    """A person with a box and no joint (a box-only tracker's detection)."""
    return record.box is not None and not record.present.any()


def usable_box(box: np.ndarray | None) -> bool:
    """A box the initializer can crop: finite, width and height > 0 (readers keep zero-size boxes)."""
    return box is not None and bool(np.isfinite(box).all() and box[2] > 0 and box[3] > 0)


def box_only_count(seq: PoseSequence) -> int:
    """Persons of `seq` that have a box and no pose."""
    return sum(1 for r in seq.persons() if needs_pose(r))


def load_initializer(checkpoint: str | os.PathLike, *, device: str = "auto", flip_test: bool = True,
                     batch_size: int = 64) -> Any:
    """A `TopDownEstimator` from a checkpoint file or an installed model name (`pipelines.import_weights
    simplebaseline-msra|simplebaseline-mmpose ... --name NAME`, or a top-down model we trained).

    Its forward batch holds `batch_size` persons (twice the crops with the flip test), as the refiner's; `.source`
    is the checkpoint file.
    """
    from posefix_video.cli import check_device
    from posefix_video.net.model_store import resolve_checkpoint
    from posefix_video.net.topdown import TopDownEstimator

    if device != "auto":  # "auto": cuda when visible (TopDownEstimator decides)
        check_device(device)
    path = resolve_checkpoint(checkpoint)
    estimator = TopDownEstimator.from_checkpoint(path, device=device, flip_test=flip_test,
                                                 batch_size=max(2, batch_size * (2 if flip_test else 1)))
    estimator.source = path  # the file, so a journal's run id changes with it
    return estimator


def adopt_layout(seq: PoseSequence, layout: Any) -> PoseSequence:
    """`seq` with `layout` when it holds no pose at all (box-only readers cannot know the layout; the networks
    decide it). Sequences with poses are returned as they are, so a layout mismatch is still reported."""
    if seq.layout.name == layout.name or any(not needs_pose(r) for r in seq.persons()):
        return seq
    return dataclasses.replace(seq, layout=layout)


class PoseStage:
    """Initializer (box-only persons) then refiner (every person), with the refiner's `refine_records` interface.

    Args:
        refiner: the PoseFix `Refiner`, or None to stop after the initializer (--no-refine).
        initializer: a `TopDownEstimator` (`load_initializer`), or None.
    """

    def __init__(self, *, refiner: Any = None, initializer: Any = None):
        if refiner is None and initializer is None:
            raise CheckpointError("nothing to run: --no-refine needs --initializer (the initializer's poses are "
                                  "the output)")
        if refiner is not None and initializer is not None and refiner.layout.name != initializer.layout.name:
            raise CheckpointError(f"the initializer estimates {initializer.layout.name} poses but the PoseFix "
                                  f"checkpoint refines {refiner.layout.name} poses; use models of one layout")
        self.refiner = refiner
        self.initializer = initializer
        main = refiner if refiner is not None else initializer
        self.layout = main.layout
        # duck-typed stages (a refiner stand-in needs only `layout` and `refine_records`) carry no device
        self.device = getattr(main, "device", None)
        self.flip_test = getattr(main, "flip_test", None)

    def refine_records(self, frames: Any, records: Sequence[PersonRecord], frame_offset: int = 0,
                       **refine_options: Any) -> tuple[list[PersonRecord], Counter]:
        """Output copies of `records` (input order kept) and the Counter of pass-through reasons.

        Args:
            frames: (F, H, W, 3) uint8 RGB (numpy or tensor), decoded once for both networks.
            records: persons whose `.frame - frame_offset` indexes `frames`.
            frame_offset: frame number of frames[0].
            **refine_options: passed to the refiner's `refine_records` (safeguard, scores, ...).
        """
        import torch

        records = list(records)
        counts: Counter = Counter()
        box_only = [i for i, r in enumerate(records) if needs_pose(r)]
        initialized: list[int] = []
        if self.initializer is None:
            counts[NO_POSE] += len(box_only)
        else:
            initialized = [i for i in box_only if usable_box(records[i].box)]
            counts[NO_BOX] += len(box_only) - len(initialized)  # a zero-size box cannot be cropped
        if initialized:
            if self.refiner is not None and torch.is_tensor(frames) and str(self.device).startswith("cuda"):
                frames = frames.to(self.device, non_blocking=True)  # once, for both networks
            posed = self.initializer.estimate_records(frames, [records[i] for i in initialized],
                                                      frame_offset=frame_offset)
            for i, r in zip(initialized, posed):
                records[i] = r
        unposed = {i for i, r in enumerate(records) if needs_pose(r)}
        if self.refiner is None:
            counts[INITIALIZED_NOT_REFINED] += len(initialized)
            counts[NOT_REFINED] += len(records) - len(initialized) - len(unposed)  # persons with a pose
            return [r.replace() for r in records], +counts
        todo = [i for i in range(len(records)) if i not in unposed]
        refined, refiner_counts = self.refiner.refine_records(frames, [records[i] for i in todo],
                                                              frame_offset=frame_offset, **refine_options)
        refined = list(refined)
        if len(refined) != len(todo):
            raise RuntimeError(f"the refiner returned {len(refined)} records for {len(todo)}")
        out = [r.replace() for r in records]
        for i, r in zip(todo, refined):
            out[i] = r
        counts.update(refiner_counts)
        return out, +counts
