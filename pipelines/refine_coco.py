"""Refine any method's COCO keypoint results on still images with PoseFix (the paper's main use).

    python -m pipelines.refine_coco IMAGES --ann ANN.json --results RESULTS.json --checkpoint CKPT -o OUT.json
    python -m pipelines.refine_coco IMAGES --ann ANN.json --detections DETS.json --initializer SB.pth [--no-refine] ...

See posefix_video/video/refine_images.py for the rules and README "Use the authors' trained models".
"""

from __future__ import annotations

import argparse
import logging
import sys

from posefix_video.cli import check_outputs, run_cli
from posefix_video.errors import PosefixError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipelines.refine_coco",
        description="Refine the keypoints of a COCO keypoint-results file (any pose estimator's output on still "
        "images) with a PoseFix model. The output has one entry per input entry, in input order: refined "
        "keypoints at full precision, the input scores kept, and `posefix_confidence` per joint. When the "
        "annotation file holds keypoint annotations, COCO OKS AP before and after is printed.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("images", help="image folder; the annotation file's `file_name`s are relative to it")
    p.add_argument("--ann", required=True, help="COCO-style annotation file: its `images` list maps image_id -> "
                   "file_name (e.g. person_keypoints_val2017.json)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--results", help="COCO keypoint results to refine, in the model's keypoint "
                     "layout (PoseTrack-layout results, `scores` lists included, with a PoseTrack model)")
    src.add_argument("--detections", help="COCO person detections (`image_id`, `bbox`, `score`; no keypoints), "
                     "the box-only counterpart of --results: --initializer gives each a pose, then PoseFix refines it")
    p.add_argument("--initializer", default=None, metavar="CKPT_OR_NAME", help="top-down pose network (an imported "
                   "SimpleBaseline, or one we trained) for entries with a box and no keypoints")
    p.add_argument("--no-refine", action="store_true", help="stop after the initializer: write its poses (x, y, "
                   "maxval), one entry per input detection in input order (no PoseFix checkpoint needed)")
    p.add_argument("--checkpoint", default=None, help="posefix checkpoint (.pth) or installed model name "
                   "(python -m pipelines.models). Default: the installed model for --layout")
    p.add_argument("--layout", default="coco17", choices=["coco17", "posetrack18"], help="layout of the results, "
                   "only used to pick the default model when --checkpoint is not given")
    p.add_argument("-o", "--out", required=True, help="output JSON (COCO results list)")
    p.add_argument("--oks-nms", type=float, default=None, metavar="THR", help="per-image OKS non-maximum "
                   "suppression after refinement (the official test uses 0.9); removes near-duplicates, counted")
    p.add_argument("--official-test", action="store_true", help="the official PoseFix test rules, for exact "
                   "comparison with the authors' code: box from every joint whatever its score, score-0 joints "
                   "not moved into the crop, every joint refined, OpenCV's warp, fp32 (docs/model.md)")
    p.add_argument("--batch-size", type=int, default=64, help="persons per network batch")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    p.add_argument("--no-flip", action="store_true", help="skip the flip test")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"], help="network precision "
                   "(auto: bf16 on CUDA, fp32 on CPU; fp32 with --official-test)")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime"], help="network backend "
                   "(as refine_video)")
    p.add_argument("--no-eval", action="store_true", help="do not compute AP before/after")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="log details")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return run_cli(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from posefix_video.net.model_store import resolve_model
    from posefix_video.video.initial_poses import load_initializer
    from posefix_video.video.refine_images import refine_coco
    from posefix_video.video.refine_video import load_refiner
    from posefix_video.video.stream import check_chunking

    results = args.results if args.results is not None else args.detections
    check_outputs(inputs=[args.images, args.ann, results], outputs={"-o": args.out})
    check_chunking(args.batch_size, 1)
    if args.no_refine and args.initializer is None:
        raise PosefixError("--no-refine needs --initializer (the initializer's poses are the output)")
    initializer = refiner = None
    if args.initializer is not None:
        initializer = load_initializer(args.initializer, device=args.device, flip_test=not args.no_flip,
                                       batch_size=args.batch_size)
    if not args.no_refine:
        checkpoint = resolve_model(args.checkpoint, args.layout)
        precision = "fp32" if args.official_test and args.precision == "auto" else args.precision
        refiner = load_refiner(checkpoint, device=args.device, flip_test=not args.no_flip, precision=precision,
                               batch_size=args.batch_size, backend=args.backend, official_test=args.official_test)
    summary = refine_coco(args.images, args.ann, results, refiner, args.out, oks_nms_threshold=args.oks_nms,
                          progress=not args.no_progress, evaluate=not args.no_eval, initializer=initializer)
    print(summary, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
