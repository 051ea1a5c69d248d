"""Evaluation: PoseTrack AP and MOTA with poseval's numbers, and COCO OKS AP (pycocotools)."""

from posefix_video.eval.posetrack import (
    GROUP_NAMES,
    PoseTrackResult,
    evaluate_posetrack,
    evaluate_posetrack_dirs,
    pair_files,
)

__all__ = ["GROUP_NAMES", "PoseTrackResult", "evaluate_posetrack", "evaluate_posetrack_dirs", "pair_files"]
