"""Readers of tracker/pose outputs into `PoseSequence`s, and the PoseTrack18, COCO-results and CSV writers.

`read_tracks(path, format="auto", frame_base="auto", layout=None, num_frames=None, image_size=None)` is the one
entry point for input (files, or a folder of ultralytics labels); docs/formats.md lists the formats, their
detection and the frame-base rules.

May import: the shared root modules only (keypoints, records, errors, atomic, ...). Readers and writers never
import torch, the network or the video stack, so `import posefix_video.io` stays light.
"""

from posefix_video.io.coco_results import read_keypoint_results, write_coco_results
from posefix_video.io.csv_tracks import read_csv_tracks, write_csv_tracks
from posefix_video.io.mmpose_dump import read_mmpose_dump
from posefix_video.io.posetrack17 import read_posetrack17
from posefix_video.io.posetrack18 import (
    coco_to_posetrack18,
    is_poseval_seq_name,
    read_posetrack18,
    synthesize_images,
    write_posetrack18,
)
from posefix_video.io.read import FORMATS, detect_format, read_tracks
from posefix_video.io.ultralytics_txt import read_ultralytics_txt

__all__ = [
    "FORMATS",
    "coco_to_posetrack18",
    "detect_format",
    "is_poseval_seq_name",
    "read_csv_tracks",
    "read_keypoint_results",
    "read_mmpose_dump",
    "read_posetrack17",
    "read_posetrack18",
    "read_tracks",
    "read_ultralytics_txt",
    "synthesize_images",
    "write_coco_results",
    "write_csv_tracks",
    "write_posetrack18",
]
