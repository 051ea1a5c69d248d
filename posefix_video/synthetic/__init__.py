"""Synthetic people with exact ground truth: bodies (skeleton), drawing (render), scenes and ground-truth rules
(scene), COCO-format datasets (coco_dataset), PoseTrack18-format videos (posetrack_videos) and a tracker simulator
(tracker_sim). See docs/synthetic.md.

May import: the shared root modules, io/ (writers), net/, eval/ and video/ (encoding clips). Nothing from
train/: training imports synthetic/, not the reverse.
"""
