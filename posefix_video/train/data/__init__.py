"""Training data: COCO and PoseTrack18 persons, augmentation, the PoseFix sample builder."""

from __future__ import annotations

from typing import Any

from posefix_video.errors import ConfigError
from posefix_video.keypoints import get_layout
from posefix_video.train.data.annotations import PersonEntry, attach_estimates, box_iou, persons_from_coco
from posefix_video.train.data.augment import Augmentation, AugmentDraws, draw_augmentations, sample_affines
from posefix_video.train.data.coco import coco_paths, load_coco_persons
from posefix_video.train.data.image_bank import ImageBank
from posefix_video.train.data.posetrack import load_posetrack_persons, merge_posetrack
from posefix_video.train.data.samples import PoseFixDataset

__all__ = [
    "AugmentDraws", "Augmentation", "ImageBank", "PersonEntry", "PoseFixDataset", "attach_estimates", "box_iou",
    "build_dataset", "coco_paths", "draw_augmentations", "load_coco_persons", "load_posetrack_persons",
    "load_split_persons", "merge_posetrack", "persons_from_coco", "sample_affines",
]  # fmt: skip


def load_split_persons(cfg: Any, split: str) -> list[PersonEntry]:
    """The ground-truth persons of a TrainConfig's "train" or "val" split."""
    d = cfg.data
    if split not in ("train", "val"):
        raise ConfigError(f"unknown data split {split!r} (train or val)")
    ann, images = (d.train_ann, d.train_images) if split == "train" else (d.val_ann, d.val_images)
    if not ann:
        raise ConfigError(f"data.{split}_ann is empty")
    layout = get_layout(cfg.model.layout)
    if d.kind == "coco":
        return load_coco_persons(ann, images, layout)
    return load_posetrack_persons(ann, images, layout)


def build_dataset(cfg: Any, *, split: str = "train") -> PoseFixDataset:
    """The dataset of a TrainConfig (`cfg.data`, `cfg.model`, `cfg.runtime.seed`) for split "train" or "val".

    train: augmentation + synthesis, estimates from data.train_inputs for unlabeled joints when given.
    val: no augmentation, synthesis with a fixed epoch (a reproducible loss), no estimates.
    With data.image_bank set, crops come from that decode-once bank (it must hold every image, unchanged).
    """
    d = cfg.data
    persons = load_split_persons(cfg, split)
    layout = get_layout(cfg.model.layout)
    bank = ImageBank.open(d.image_bank, check=[p.image_path for p in persons]) if d.image_bank else None
    if split == "train" and d.train_inputs:
        attach_estimates(persons, d.train_inputs)
    aug = None
    if split == "train":
        aug = Augmentation(scale_factor=d.scale_factor, rotation_factor=d.rotation_factor,
                           rotation_prob=d.rotation_prob, flip_prob=d.flip_prob)  # fmt: skip
    # a top-down model (model.pose_input false) sees the image only: no input pose to synthesise
    return PoseFixDataset(persons=persons, layout=layout, input_hw=tuple(cfg.model.input_size), augmentation=aug,
                          synthesize=cfg.model.pose_input, seed=cfg.runtime.seed, image_bank=bank,
                          blank_inputs=d.blank_inputs if split == "train" else 0.0,
                          low_res=d.low_res if split == "train" else 0.0)  # fmt: skip
