"""Evaluation: PoseTrack AP and MOTA with poseval's numbers, and COCO OKS AP (pycocotools).

May import: the shared root modules and io/ (to read prediction and GT files). Nothing from net/, train/,
video/ or synthetic/: scores never depend on how the poses were made.
"""

from posefix_video.eval.posetrack import (
    GROUP_NAMES,
    PoseTrackResult,
    evaluate_posetrack,
    evaluate_posetrack_dirs,
    pair_files,
)

__all__ = ["GROUP_NAMES", "PoseTrackResult", "evaluate_posetrack", "evaluate_posetrack_dirs", "pair_files"]
