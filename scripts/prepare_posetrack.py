"""Prepare the official PoseTrack 2018 download for training: one COCO-style file per split.

The PoseTrack18 download has one GT file per video (`annotations/{train,val}/<video>.json`) whose `images` carry
no width/height. This script does what the reference's posetrack2coco conversion does:

1. concatenates the per-video GT files of a split into one COCO-style file (images, annotations, categories);
2. fills every image's width/height from its JPEG header (no decoding);
3. adds num_keypoints (from the v flags), iscrowd 0, area = bbox w*h, category_id 1 where absent;
4. checks that the images exist: a missing image of a labeled frame is an error (exit 2, nothing written) unless
   --allow-missing, which drops those frames and their persons and says how many.

Expected layout (the official download, unpacked into ROOT):

    ROOT/images/{train,val}/<video>/<frame>.jpg
    ROOT/annotations/{train,val}/<video>.json

Example:

    python scripts/prepare_posetrack.py --root /data/posetrack18 --split train \\
        --out /data/posetrack18/annotations/posetrack18_train.json

Training can also read the per-video folder directly (data.kind=posetrack); the merged file is loaded with
data.kind=coco (image root = ROOT) and skips the per-start header reads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from posefix_video.atomic import write_json_atomic  # noqa: E402
from posefix_video.errors import InputError, PosefixError  # noqa: E402
from posefix_video.train.data.posetrack import merge_posetrack  # noqa: E402


def prepare(ann: Path, image_root: Path, out: Path, allow_missing: bool = False) -> dict:
    """Merges, fills sizes, checks images, writes `out` atomically. Returns a summary dict."""
    merged = merge_posetrack(ann, image_root)
    missing = [img for img in merged["images"] if not (image_root / img["file_name"]).is_file()]
    missing_labeled = [img for img in missing if img.get("is_labeled", True)]
    if missing_labeled and not allow_missing:
        names = ", ".join(img["file_name"] for img in missing_labeled[:5])
        more = f" and {len(missing_labeled) - 5} more" if len(missing_labeled) > 5 else ""
        raise InputError(ann, f"{len(missing_labeled)} labeled frame(s) have no image under {image_root}: "
                         f"{names}{more} (use --allow-missing to drop them)")  # fmt: skip
    drop = {img["id"] for img in missing}
    merged["images"] = [img for img in merged["images"] if img["id"] not in drop]
    before = len(merged["annotations"])
    merged["annotations"] = [a for a in merged["annotations"] if a.get("image_id") not in drop]
    no_size = [img["file_name"] for img in merged["images"] if "width" not in img or "height" not in img]
    if no_size:
        raise InputError(image_root / no_size[0], "not a readable JPEG (no size in its header)")
    write_json_atomic(out, merged)
    return {
        "images": len(merged["images"]),
        "labeled": sum(1 for img in merged["images"] if img.get("is_labeled", True)),
        "annotations": len(merged["annotations"]),
        "missing_images": len(missing),
        "dropped_annotations": before - len(merged["annotations"]),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, type=Path, help="PoseTrack18 folder (holds images/ and annotations/)")
    ap.add_argument("--split", default="train", help="split folder name under annotations/ (train, val)")
    ap.add_argument(
        "--annotations", type=Path, default=None, help="per-video GT folder or file (default ROOT/annotations/SPLIT)"
    )
    ap.add_argument("--out", required=True, type=Path, help="merged COCO-style JSON to write")
    ap.add_argument("--allow-missing", action="store_true", help="drop frames whose image is missing")
    args = ap.parse_args(argv)
    ann = args.annotations or args.root / "annotations" / args.split
    try:
        summary = prepare(ann, args.root, args.out, allow_missing=args.allow_missing)
    except PosefixError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {summary['images']} images ({summary['labeled']} labeled), "
          f"{summary['annotations']} persons; {summary['missing_images']} missing images dropped "
          f"({summary['dropped_annotations']} persons)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
