"""Readers of tracker/pose outputs into `PoseSequence`s, and the PoseTrack18 and COCO-results writers."""

from posefix_video.io.posetrack18 import (
    coco_to_posetrack18,
    is_poseval_seq_name,
    read_posetrack18,
    synthesize_images,
    write_posetrack18,
)

__all__ = [
    "coco_to_posetrack18",
    "is_poseval_seq_name",
    "read_posetrack18",
    "synthesize_images",
    "write_posetrack18",
]
