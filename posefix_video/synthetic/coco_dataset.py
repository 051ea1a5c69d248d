"""A COCO-format person-keypoint dataset of synthetic images, laid out like COCO itself.

    <out>/<split>2017/000000000001.jpg ...
    <out>/annotations/person_keypoints_<split>2017.json

The JSON loads with pycocotools (`COCO(path)`): images, annotations (keypoints 17x3 with v 0/1/2, num_keypoints,
bbox, area = visible pixels, iscrowd 0, category_id 1) and the COCO person category with keypoint names and
skeleton. Image i is generated from its own generator seeded by (seed, i), so image content does not depend on
how many images are made.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from posefix_video.atomic import write_json_atomic
from posefix_video.keypoints import CATEGORY_SKELETON, COCO17
from posefix_video.synthetic import scene

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CocoSettings:
    """What `write_coco_dataset` generates.

    Attributes:
        num_images: number of images.
        seed: master seed; equal seeds give byte-identical files.
        width, height: image size in px.
        split: "train" or "val" (names the folder and the JSON).
        min_persons, max_persons: people per image (uniform).
        min_height: smallest person height in px (the largest is 95 % of the image height).
        jpeg_quality: fixed JPEG quality (part of the determinism).
        first_image_id: id of the first image (ids are consecutive).
    """

    num_images: int = 100
    seed: int = 0
    width: int = 640
    height: int = 480
    split: str = "train"
    min_persons: int = 1
    max_persons: int = 7
    min_height: float = 40.0
    jpeg_quality: int = 92
    first_image_id: int = 1


def coco_category() -> dict[str, Any]:
    return {"supercategory": "person", "id": 1, "name": "person", "keypoints": list(COCO17.names),
            "skeleton": [list(e) for e in CATEGORY_SKELETON]}  # fmt: skip


def render_coco_image(settings: CocoSettings, index: int) -> tuple[np.ndarray, np.ndarray, list[scene.PersonTruth]]:
    """Image `index` of the dataset: (H, W, 3) uint8 BGR image, (H, W) uint16 part labels, ground truth."""
    rng = np.random.default_rng([settings.seed, index, 0xC0C0])
    horizon = scene.random_horizon(rng, settings.height)
    bg = scene.make_background(rng, settings.height, settings.width, horizon)
    count = int(rng.integers(settings.min_persons, settings.max_persons + 1))
    persons = scene.random_people(rng, settings.height, settings.width, count, min_height=settings.min_height,
                                  horizon=horizon)  # fmt: skip
    return scene.render_frame(bg, persons)


def coco_annotation(truth: scene.PersonTruth, image_id: int, ann_id: int) -> dict[str, Any]:
    """One COCO keypoint annotation of a person (coordinates rounded to 0.01 px)."""
    kp = truth.coco.copy()
    kp[:, :2] = np.round(kp[:, :2], 2)
    box = np.round(truth.box, 2)
    return {
        "id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
        "keypoints": [float(v) if k % 3 < 2 else int(v) for k, v in enumerate(kp.ravel())],
        "num_keypoints": int((kp[:, 2] > 0).sum()), "bbox": box.tolist(), "area": float(truth.area),
        "track_id": int(truth.track_id),
    }  # fmt: skip


def write_coco_dataset(out_dir: str | os.PathLike, settings: CocoSettings) -> Path:
    """Renders `settings.num_images` images and writes them with their COCO annotation file.

    Returns:
        The annotation JSON path.
    """
    out = Path(out_dir)
    img_dir = out / f"{settings.split}2017"
    img_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    params = [int(cv2.IMWRITE_JPEG_QUALITY), int(settings.jpeg_quality)]
    for i in range(settings.num_images):
        image_id = settings.first_image_id + i
        image, _, truths = render_coco_image(settings, i)
        name = f"{image_id:012d}.jpg"
        ok, buf = cv2.imencode(".jpg", image, params)
        if not ok:
            raise OSError(f"JPEG encoding of {name} failed")
        # Plain writes: the annotation JSON, written last and atomically, marks a complete dataset.
        (img_dir / name).write_bytes(buf.tobytes())
        images.append({"id": image_id, "file_name": name, "width": settings.width, "height": settings.height})
        for t in truths:
            annotations.append(coco_annotation(t, image_id, len(annotations) + 1))
    path = out / "annotations" / f"person_keypoints_{settings.split}2017.json"
    data = {
        "info": {"description": "posefix-video synthetic people", "seed": settings.seed},
        "images": images, "annotations": annotations, "categories": [coco_category()],
    }  # fmt: skip
    write_json_atomic(path, data)
    log.info("wrote %d images, %d persons to %s", len(images), len(annotations), out)
    return path
