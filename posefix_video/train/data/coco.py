"""COCO keypoints training persons (train2017/val2017 layout, or an explicit annotation file + image folder)."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

from posefix_video.errors import InputError
from posefix_video.keypoints import COCO17, KeypointLayout
from posefix_video.train.data.annotations import PersonEntry, load_json, persons_from_coco


def coco_paths(root: str | os.PathLike, split: str) -> tuple[Path, Path]:
    """(annotation file, image folder) of the standard layout: <root>/annotations/person_keypoints_<split>.json
    and <root>/<split>/."""
    root = Path(root)
    return root / "annotations" / f"person_keypoints_{split}.json", root / split


def load_coco_persons(
    ann_file: str | os.PathLike, image_dir: str | os.PathLike, layout: KeypointLayout = COCO17
) -> list[PersonEntry]:
    """Training persons of a COCO keypoint annotation file whose images lie in `image_dir`.

    The file is read through pycocotools (the reference's reader), so anything COCO's API rejects fails here.
    """
    from pycocotools.coco import COCO

    data = load_json(ann_file)
    if not isinstance(data, dict):
        raise InputError(ann_file, "expected a COCO annotation object with 'images' and 'annotations'")
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress; the library must not
        try:
            coco.createIndex()
        except (KeyError, TypeError) as e:
            raise InputError(ann_file, f"not a valid COCO annotation file (pycocotools: missing {e})") from None
    cleaned = {"images": coco.loadImgs(coco.getImgIds()), "annotations": coco.loadAnns(coco.getAnnIds())}
    return persons_from_coco(cleaned, image_dir, layout, ann_file, labeled_only=False)
