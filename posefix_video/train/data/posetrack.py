"""PoseTrack 2018 training persons: a folder of per-video GT files, or one merged COCO-style file.

Images are resolved from each image's `file_name` (e.g. "images/val/012834_mpii_test/000000.jpg") relative to
an image root (the PoseTrack18 download folder). Only labeled frames (`is_labeled` true) are used. The ear
slots are never labeled in PoseTrack18 and are masked by the layout. Images without width/height (the
official per-video files have none) get them from the JPEG header.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from posefix_video.errors import InputError
from posefix_video.keypoints import POSETRACK18, KeypointLayout
from posefix_video.train.data.annotations import PersonEntry, load_json, persons_from_coco


def jpeg_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) from a JPEG's SOF header without decoding; None if the file is missing or not a JPEG."""
    try:
        with open(path, "rb") as f:
            if f.read(2) != b"\xff\xd8":
                return None
            while True:
                marker = f.read(2)
                if len(marker) < 2 or marker[0] != 0xFF:
                    return None
                while marker[1] == 0xFF:  # fill bytes
                    marker = marker[:1] + f.read(1)
                code = marker[1]
                if code in (0xD8, 0x01) or 0xD0 <= code <= 0xD7:
                    continue
                (length,) = struct.unpack(">H", f.read(2))
                if 0xC0 <= code <= 0xCF and code not in (0xC4, 0xC8, 0xCC):
                    h, w = struct.unpack(">xHH", f.read(5))
                    return w, h
                f.seek(length - 2, os.SEEK_CUR)
    except OSError:
        return None


def annotation_files(ann: str | os.PathLike) -> list[Path]:
    """The JSON files of a PoseTrack annotation folder (sorted), or [ann] for a single file."""
    ann = Path(ann)
    if ann.is_dir():
        files = sorted(ann.glob("*.json"))
        if not files:
            raise InputError(ann, "no .json annotation files in this folder")
        return files
    if not ann.is_file():
        raise InputError(ann, "annotation file or folder not found")
    return [ann]


def merge_posetrack(ann: str | os.PathLike, image_root: str | os.PathLike, fill_sizes: bool = True) -> dict:
    """Concatenates PoseTrack18 GT files into one COCO-style dict (images, annotations, categories).

    Fills image width/height from the JPEG headers where absent (fill_sizes), num_keypoints from the v flags,
    iscrowd 0 and area = bbox w*h, as the reference's posetrack2coco conversion.
    """
    merged: dict = {"images": [], "annotations": [], "categories": None}
    root = Path(image_root)
    for path in annotation_files(ann):
        data = load_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise InputError(path, "not a PoseTrack18 file (no 'images' list)")
        if merged["categories"] is None and data.get("categories"):
            merged["categories"] = data["categories"]
        for i, img in enumerate(data["images"]):
            if "file_name" not in img or "id" not in img:
                raise InputError(path, "an image needs 'id' and 'file_name'", f"images[{i}]")
            img = dict(img)
            if fill_sizes and ("width" not in img or "height" not in img):
                size = jpeg_size(root / img["file_name"])
                if size is not None:
                    img["width"], img["height"] = size
            merged["images"].append(img)
        for a in data.get("annotations", []):
            a = dict(a)
            kps = a.get("keypoints") or []
            if "num_keypoints" not in a:
                a["num_keypoints"] = int(sum(1 for v in kps[2::3] if v > 0))
            a.setdefault("iscrowd", 0)
            box = a.get("bbox")
            if box is not None and len(box) == 4 and "area" not in a:
                a["area"] = float(box[2]) * float(box[3])
            a.setdefault("category_id", 1)
            merged["annotations"].append(a)
    if merged["categories"] is None:
        merged["categories"] = [{"id": 1, "name": "person", "supercategory": "person",
                                 "keypoints": list(POSETRACK18.names)}]  # fmt: skip
    return merged


def load_posetrack_persons(
    ann: str | os.PathLike, image_root: str | os.PathLike, layout: KeypointLayout = POSETRACK18
) -> list[PersonEntry]:
    """Training persons of PoseTrack18 GT (folder of per-video files, or one merged file), labeled frames only."""
    merged = merge_posetrack(ann, image_root)
    return persons_from_coco(merged, image_root, layout, ann, labeled_only=True)
