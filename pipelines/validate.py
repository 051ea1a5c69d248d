"""Check a PoseTrack 2018 JSON file the way poseval loads it, optionally against its ground-truth file.

    python -m pipelines.validate PRED.json [--gt GT.json] [--kind auto|gt|pred]
    python -m pipelines.validate TRACKS --input [--format auto] [--frame-base auto] [--num-frames N] [--image-size WxH]

Prints every problem with its location. Exit status: 0 clean, 1 problems found, 2 unreadable input.
With --input the file is checked as refiner input instead (any supported format, read as `read_tracks` reads it;
the first problem ends the check with exit 2).
"""

from __future__ import annotations

import argparse
import logging
import sys

from posefix_video.cli import run_cli
from posefix_video.errors import PosefixError
from posefix_video.io import FORMATS, read_tracks
from posefix_video.io.validate import validate_posetrack18


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
    parser.add_argument("--input", action="store_true", help="check FILE as refiner input in any supported "
                        "format (PoseTrack 2018/2017, COCO results, AlphaPose, CSV) instead of as a poseval file")
    parser.add_argument("--format", choices=FORMATS, default="auto", help="with --input: the input format")
    parser.add_argument("--frame-base", choices=("auto", "0", "1"), default="auto",
                        help="with --input: frame numbering of CSV/COCO/AlphaPose files")
    parser.add_argument("--num-frames", type=int, help="with --input: the video's frame count, when known")
    parser.add_argument("--image-size", metavar="WxH", help="with --input: the frame size, needed for formats with "
                        "normalised coordinates (ultralytics labels), e.g. 1920x1080")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    return run_cli(lambda: _check(args))


def _check(args: argparse.Namespace) -> int:
    if args.input:
        return _check_input(args)
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


def _check_input(args: argparse.Namespace) -> int:
    base = args.frame_base if args.frame_base == "auto" else int(args.frame_base)
    size = None
    if args.image_size:
        w, _, h = args.image_size.lower().partition("x")
        if not (w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
            print(f"--image-size {args.image_size!r}: expected WIDTHxHEIGHT, e.g. 1920x1080", file=sys.stderr)
            return 2
        size = (int(w), int(h))
    try:
        seq = read_tracks(args.file, format=args.format, frame_base=base, num_frames=args.num_frames, image_size=size)
    except PosefixError as err:
        print(err, file=sys.stderr)
        return 2
    box_only = sum(1 for p in seq.persons() if p.box is not None and not p.present.any())
    note = f" ({box_only} with a box and no pose: refine_video gives them one with --initializer)" if box_only else ""
    print(f"{args.file}: OK: {seq.source_format}, {seq.num_persons} persons on {len(seq.frames)} frames, "
          f"layout {seq.layout.name}{note}", file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
