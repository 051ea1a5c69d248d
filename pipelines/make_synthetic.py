"""Synthetic people with exact ground truth: COCO-format datasets, PoseTrack18-format videos, simulated tracker
output, and contact sheets.

    python -m pipelines.make_synthetic coco --out DIR --seed S --num-images N [--size 640x480]
    python -m pipelines.make_synthetic posetrack --out DIR --seed S --num-videos N --frames F [--size 640x480]
    python -m pipelines.make_synthetic track --gt GT_DIR_OR_FILES --out PRED_DIR --seed S [--preset P] [--drift 0.2]
    python -m pipelines.make_synthetic sheet --out sheet.png --seed S [--count 9] [--overlay]

The same arguments and seed give byte-identical files.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from posefix_video.cli import check_outputs, run_cli
from posefix_video.errors import PosefixError


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected WIDTHxHEIGHT, e.g. 640x480") from None
    if not (32 <= w <= 8192 and 32 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"size {text!r}: width and height must be in 32..8192")
    return w, h


def _range(text: str) -> tuple[int, int]:
    try:
        lo, _, hi = text.partition("-")
        lo_i, hi_i = int(lo), int(hi or lo)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected MIN-MAX, e.g. 2-6") from None
    if not 0 <= lo_i <= hi_i <= 500:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= MIN <= MAX <= 500")
    return lo_i, hi_i


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines.make_synthetic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", required=True, type=Path, help="output folder (created if needed)")
    common.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    common.add_argument("--size", type=_size, default=(640, 480), help="WIDTHxHEIGHT (default 640x480)")
    common.add_argument("--min-height", type=float, default=40.0, help="smallest person height in px (default 40)")
    common.add_argument("--jpeg-quality", type=int, default=92, choices=range(50, 101), metavar="50..100",
                        help="JPEG quality (default 92)")  # fmt: skip

    coco = sub.add_parser("coco", parents=[common], help="COCO-format keypoint dataset",
                          description="Images <out>/<split>2017/*.jpg and <out>/annotations/"
                          "person_keypoints_<split>2017.json (COCO-17, v 0/1/2, pycocotools-loadable).")  # fmt: skip
    coco.add_argument("--num-images", type=_positive, default=100, help="number of images (default 100)")
    coco.add_argument("--persons", type=_range, default=(1, 7), help="people per image MIN-MAX (default 1-7)")
    coco.add_argument("--split", default="train", choices=("train", "val"), help="split name (default train)")

    pt = sub.add_parser("posetrack", parents=[common], help="PoseTrack 2018-format videos",
                        description="Frames <out>/images/<split>/<video>/NNNNNN.jpg, <out>/videos/<split>/"
                        "<video>.mp4, ground truth <out>/annotations/<split>/<video>.json (poseval).")  # fmt: skip
    pt.add_argument("--num-videos", type=_positive, default=2, help="number of videos (default 2)")
    pt.add_argument("--frames", type=_positive, default=60, help="frames per video (default 60)")
    pt.add_argument("--tracks", type=_range, default=(2, 6), help="people per video MIN-MAX (default 2-6)")
    pt.add_argument("--split", default="val", choices=("train", "val", "test"), help="split (default val)")
    pt.add_argument("--first-video", type=int, default=1, help="number of the first video (default 1)")
    pt.add_argument("--fps", type=_positive, default=25, help="frame rate (default 25)")
    pt.add_argument("--label-every", type=_positive, default=1,
                    help="annotate every k-th frame (is_labeled), like PoseTrack val (default 1: all)")  # fmt: skip
    pt.add_argument("--no-mp4", action="store_true", help="do not encode the mp4")

    tr = sub.add_parser("track", help="simulated tracker output from PoseTrack18 ground truth",
                        description="Writes one PoseTrack18 prediction file per ground-truth file (same name) "
                        "with PoseFix-statistics joint errors, AR(1) drift, dropped joints, missed persons, "
                        "identity switches, error-correlated scores. Strength 0 switches a process off.")  # fmt: skip
    tr.add_argument("--gt", required=True, nargs="+", type=Path, help="ground-truth JSON files or folders of them")
    tr.add_argument("--out", required=True, type=Path, help="prediction folder")
    tr.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    from posefix_video.synthetic.tracker_sim import TrackerSimSettings

    defaults = TrackerSimSettings()
    for name, help_text in (
        ("posefix", "probability a joint gets a PoseFix-synthesised error draw"),
        ("drift", "AR(1) drift std in KS-0.85 radii"), ("drift_rho", "AR(1) correlation"),
        ("drop_joints", "probability a joint is missing"), ("miss_person", "probability a miss burst starts"),
        ("miss_length", "mean miss burst length (frames)"), ("id_switch", "probability of an id swap per frame"),
        ("new_id_after_miss", "probability of a fresh id after a miss"), ("score_noise", "score logit noise std"),
    ):  # fmt: skip
        tr.add_argument(f"--{name.replace('_', '-')}", type=float, default=None,
                        help=f"{help_text} (default preset: {getattr(defaults, name)})")  # fmt: skip
    tr.add_argument("--preset", choices=("default", "training", "clean"), default="default",
                    help="starting settings that the options above override: default (a realistic tracker, "
                    "about 74 AP on synthetic videos), training (PoseFix synthesis only, at full strength), "
                    "clean (every process off: output = GT)")  # fmt: skip

    sh = sub.add_parser("sheet", help="contact sheet PNG of random scenes",
                        description="A grid of random synthetic scenes (for looking at the renderer).")  # fmt: skip
    sh.add_argument("--out", required=True, type=Path, help="PNG file")
    sh.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    sh.add_argument("--count", type=_positive, default=9, help="number of scenes (default 9)")
    sh.add_argument("--columns", type=_positive, default=3, help="grid columns (default 3)")
    sh.add_argument("--tile-width", type=_positive, default=320, help="tile width in px (default 320)")
    sh.add_argument("--size", type=_size, default=(640, 480), help="scene size WIDTHxHEIGHT (default 640x480)")
    sh.add_argument("--overlay", action="store_true", help="draw the COCO ground truth (green visible, red "
                    "occluded)")  # fmt: skip
    return parser


def _gt_files(items: list[Path]) -> list[Path]:
    files: list[Path] = []
    for item in items:
        if item.is_dir():
            found = sorted(item.glob("*.json"))
            if not found:
                raise PosefixError(f"{item}: no *.json ground-truth files in this folder")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise PosefixError(f"{item}: no such file or folder")
    return files


def run(args: argparse.Namespace) -> None:
    from posefix_video.synthetic import coco_dataset, posetrack_videos, scene, tracker_sim

    if args.command == "sheet":
        check_outputs(inputs=[], outputs={"--out": args.out})
    elif args.command == "track":
        gt = [p for p in args.gt if p.is_dir()] + [p.parent for p in args.gt if p.is_file()]  # same names: no GT folder
        check_outputs(inputs=gt, outputs={}, folders={"--out": args.out})
    else:
        check_outputs(inputs=[], outputs={}, folders={"--out": args.out})
    if args.command == "coco":
        settings = coco_dataset.CocoSettings(
            num_images=args.num_images, seed=args.seed, width=args.size[0], height=args.size[1], split=args.split,
            min_persons=args.persons[0], max_persons=args.persons[1], min_height=args.min_height,
            jpeg_quality=args.jpeg_quality)  # fmt: skip
        print(coco_dataset.write_coco_dataset(args.out, settings))
    elif args.command == "posetrack":
        settings = posetrack_videos.VideoSettings(
            num_videos=args.num_videos, num_frames=args.frames, seed=args.seed, width=args.size[0],
            height=args.size[1], split=args.split, first_video=args.first_video, min_tracks=args.tracks[0],
            max_tracks=args.tracks[1], min_height=args.min_height, fps=args.fps, label_every=args.label_every,
            jpeg_quality=args.jpeg_quality, write_mp4=not args.no_mp4)  # fmt: skip
        for path in posetrack_videos.write_posetrack_videos(args.out, settings):
            print(path)
    elif args.command == "track":
        presets = {"default": tracker_sim.TrackerSimSettings(), "clean": tracker_sim.TrackerSimSettings.clean(),
                   "training": tracker_sim.TrackerSimSettings.training()}  # fmt: skip
        names = ("posefix", "drift", "drift_rho", "drop_joints", "miss_person", "miss_length", "id_switch",
                 "new_id_after_miss", "score_noise")  # fmt: skip
        overrides = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
        for n, v in overrides.items():
            if v < 0 or (n in ("posefix", "drop_joints", "miss_person", "id_switch", "new_id_after_miss") and v > 1):
                raise PosefixError(f"--{n.replace('_', '-')} {v}: must be a probability in [0, 1]" if v >= 0
                                   else f"--{n.replace('_', '-')} {v}: must not be negative")  # fmt: skip
        if overrides.get("drift_rho", 0) >= 1:
            raise PosefixError(f"--drift-rho {args.drift_rho}: must be below 1")
        settings = dataclasses.replace(presets[args.preset], **overrides)
        for path in tracker_sim.simulate_files(_gt_files(args.gt), args.out, settings, args.seed):
            print(path)
    else:
        import cv2
        import numpy as np

        from posefix_video.atomic import write_bytes_atomic

        images = []
        for i in range(args.count):
            rng = np.random.default_rng([args.seed, i, 0x5EE7])
            w, h = args.size
            horizon = scene.random_horizon(rng, h)
            bg = scene.make_background(rng, h, w, horizon)
            persons = scene.random_people(rng, h, w, int(rng.integers(2, 8)), horizon=horizon)
            image, _, truths = scene.render_frame(bg, persons)
            if args.overlay:
                scene.draw_truth(image, truths)
            images.append(image)
        ok, buf = cv2.imencode(".png", scene.contact_sheet(images, args.columns, args.tile_width))
        if not ok:
            raise PosefixError(f"{args.out}: PNG encoding failed")
        write_bytes_atomic(args.out, buf.tobytes())
        print(args.out)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    return run_cli(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
