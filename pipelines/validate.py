"""Check a PoseTrack 2018 JSON file the way poseval loads it, optionally against its ground-truth file.

    python -m pipelines.validate PRED.json [--gt GT.json] [--kind auto|gt|pred]

Prints every problem with its location. Exit status: 0 clean, 1 problems found, 2 unreadable input.
"""

from __future__ import annotations

import argparse
import sys

from posefix_video.errors import PosefixError
from posefix_video.validate import validate_posetrack18


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.validate",
        description="Check a PoseTrack 2018 JSON file for everything poseval asserts or trips on (categories, "
        "file names, track ids, keypoints, scores, image links) and, with --gt, that its frames match the "
        "ground truth's in number and order. Exit 0 clean, 1 problems found, 2 unreadable input.",
    )
    parser.add_argument("file", help="PoseTrack 2018 JSON file (one video)")
    parser.add_argument("--gt", metavar="GT_FILE", help="its ground-truth file: check it as a prediction paired "
                        "with this GT (same frame list and order)")  # fmt: skip
    parser.add_argument("--kind", choices=("auto", "gt", "pred"), default="auto",
                        help="check as ground truth (bbox_head required) or prediction (17 scores required); "
                        "auto: pred with --gt, else gt when every annotation has `scores: []`")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        problems = validate_posetrack18(args.file, args.gt, kind=args.kind)
    except PosefixError as err:
        print(err, file=sys.stderr)
        return 2
    for p in problems:
        print(f"{args.file}: {p}")
    if problems:
        print(f"{args.file}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{args.file}: OK", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
