"""Refine the poses of any tracker's output on a video with PoseFix and write PoseTrack 2018 JSON.

    python -m pipelines.refine_video clip.mp4 tracks.json [--checkpoint posefix.pth|NAME] [-o refined.json]

See docs/refine_video.md for every option, input orientation, frame bases, resume, rendering and smoothing.
"""

from __future__ import annotations

import argparse
import logging
import sys

from posefix_video.cli import run_cli
from posefix_video.video.decoders import DECODERS
from posefix_video.video.smoothing import SMOOTHERS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipelines.refine_video",
        description="Refine every person of a tracker's output on the frames of a video with a PoseFix checkpoint "
        "and write a PoseTrack 2018 JSON file that poseval accepts as it is. Frames are decoded in order in a "
        "background thread, persons of many frames share one network batch, and results are journaled to disk "
        "as the run goes (an interrupted run continues with --resume).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("video", help="video file (mp4, avi, mov, ...) or a folder of numbered frames (000000.jpg, ...)")
    p.add_argument("tracks", help="tracker output: PoseTrack18/17 JSON, COCO keypoint results, AlphaPose JSON, "
                   "mmpose prediction dump, CSV, or an ultralytics YOLO-pose labels folder; in the displayed "
                   "orientation of the video (what a player shows), or see --tracks-orientation")
    p.add_argument("--checkpoint", default=None, help="posefix checkpoint file (.pth) or the name of an installed "
                   "model (python -m pipelines.models); its keypoint layout must match the tracks'. Default: the "
                   "installed model for the tracks' layout (docs/importing.md)")
    p.add_argument("--initializer", default=None, metavar="CKPT_OR_NAME", help="top-down pose network (a "
                   "SimpleBaseline imported with pipelines.import_weights, or one we trained) that gives persons "
                   "with a box and no pose (box-only trackers: MOT txt, COCO detections, ultralytics detect labels) "
                   "an initial pose, which PoseFix then refines. Without it such persons pass through with no joint")
    p.add_argument("--no-refine", action="store_true", help="stop after the initializer: write its poses as they "
                   "are (no PoseFix checkpoint needed)")
    p.add_argument("-o", "--out", default=None, help="output PoseTrack18 JSON (default: <tracks_stem>_refined.json "
                   "beside the tracks file; the tracks file is never overwritten)")
    p.add_argument("--format", default="auto", help="tracks format: auto, posetrack18, posetrack17, coco, "
                   "alphapose, mmpose, csv, ultralytics (docs/formats.md)")
    p.add_argument("--frame-base", default="auto", choices=["auto", "0", "1"], help="whether the tracks number "
                   "frames from 0 or 1 (auto decides and logs why; PoseTrack files ignore it)")
    p.add_argument("--layout", default=None, choices=["coco17", "posetrack18"], help="keypoint layout of COCO-style "
                   "tracks (COCO results, AlphaPose, CSV); default coco17")
    p.add_argument("--batch-size", type=int, default=64, help="persons per network batch; crops of consecutive "
                   "frames fill one batch")
    p.add_argument("--chunk-frames", type=int, default=32, help="frames per batch at most (bounds memory when "
                   "frames hold few persons)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    p.add_argument("--no-flip", action="store_true", help="skip the flip test (about 2x faster, slightly less "
                   "accurate)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"], help="network precision "
                   "(auto: bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime"], help="network backend: "
                   "auto = ONNX Runtime on the CPU when installed (1.6-7x faster there), torch on CUDA; an .onnx "
                   "--checkpoint runs with ONNX Runtime (docs/model.md#onnx-runtime)")
    p.add_argument("--decoder", default="pyav", choices=DECODERS, help="video decoder; all three return the "
                   "same pixels in the displayed orientation. pyav (default) keeps memory flat on long videos; "
                   "decord reads ahead without bound (docs/refine_video.md)")
    p.add_argument("--fps", type=float, default=None, help="frame rate of a frame folder for --render (default "
                   "25); video files use their container's exact rate")
    p.add_argument("--render", default=None, metavar="OUT.mp4", help="also write an H.264 video with the input "
                   "(thin grey) and refined (coloured by track) skeletons")
    p.add_argument("--smooth", default="none", choices=SMOOTHERS, help="per-track temporal filter after "
                   "refinement (off for PoseTrack evaluation)")
    p.add_argument("--smooth-window", type=int, default=7, help="savgol: window in frames (odd)")
    p.add_argument("--smooth-order", type=int, default=2, help="savgol: polynomial order")
    p.add_argument("--min-cutoff", type=float, default=0.1, help="oneeuro: cut-off at rest, cycles per frame "
                   "(lower smooths more)")
    p.add_argument("--beta", type=float, default=0.02, help="oneeuro: cut-off increase per px/frame of speed "
                   "(higher lags less on fast motion)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its journal "
                   "(<out>.partial.jsonl), if it was made with the same inputs and options")
    p.add_argument("--tracks-orientation", default="displayed", choices=["displayed", "coded"], help="frame the "
                   "tracks' pixels refer to, for videos with a display rotation (phone videos): displayed = what a "
                   "player shows (as decoded here); coded = the raw unrotated frames, as seen by trackers that "
                   "ignore the display matrix: poses are turned to the displayed frame for refining and the output "
                   "(keypoints and image width/height) is in the coded frame again. No effect without rotation")
    p.add_argument("--seq-name", default=None, help="sequence name for image entries of non-PoseTrack tracks; "
                   "must be poseval-parsable, e.g. 000001_mpiinew_test")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="log details (format and frame base detection, "
                   "chunking)")
    add_output_arguments(p)
    return p


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    """What is written per joint and person (issue 18; docs/refine_video.md#what-is-written); shared with
    pipelines.refine_posetrack."""
    from posefix_video.net.safeguard import DEFAULT_FILL_JOINTS, DEFAULT_SCORES, SCORE_MODES
    from posefix_video.video.refine_video import FILL_MIN_CONFIDENCE

    p.add_argument("--safeguard", default="auto", choices=["auto", "on", "off"], help="keep the input joint where "
                   "the network is unsure (net/safeguard.py). auto: on for networks trained by our recipe (the rule "
                   "is tuned on them), off for the authors' imported models (as the paper ran them)")
    p.add_argument("--no-safeguard", dest="safeguard", action="store_const", const="off", help="same as "
                   "--safeguard off: write the network's answer for every joint")
    p.add_argument("--fill-joints", action=argparse.BooleanOptionalAction, default=DEFAULT_FILL_JOINTS,
                   help="write the network's answer for joints the input lacked, its confidence as score")
    p.add_argument("--scores", default=DEFAULT_SCORES, choices=SCORE_MODES, help="per-joint scores written: the "
                   "input's, the network confidence (refined), or their product")
    p.add_argument("--fill-gaps", type=int, default=0, metavar="N", help="a track missing for up to N frames "
                   "between two frames where it is present gets an interpolated pose refined on the frame, written "
                   "(with \"posefix_filled\": true) when its confidence reaches --fill-min-confidence")
    p.add_argument("--fill-min-confidence", type=float, default=FILL_MIN_CONFIDENCE, help="mean network "
                   "confidence a gap fill needs to be written")


def output_options(args: argparse.Namespace) -> dict:
    """refine_video keyword arguments of add_output_arguments."""
    safeguard = {"auto": None, "on": True, "off": False}[args.safeguard]
    return {"safeguard": safeguard, "fill_joints": args.fill_joints, "scores": args.scores,
            "fill_gaps": args.fill_gaps, "fill_min_confidence": args.fill_min_confidence}


def smooth_params(args: argparse.Namespace):
    from posefix_video.video.smoothing import OneEuroParams, SavgolParams

    if args.smooth == "savgol":
        return SavgolParams(window=args.smooth_window, order=args.smooth_order)
    if args.smooth == "oneeuro":
        return OneEuroParams(min_cutoff=args.min_cutoff, beta=args.beta)
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return run_cli(lambda: _run(args), interrupted_hint=lambda: resume_hint(args.out, args.tracks))


def resume_hint(out: str | None, tracks: str) -> str:
    """What to tell a user who pressed Ctrl-C: where the refined frames are kept and how to continue."""
    from posefix_video.video.journal import journal_path
    from posefix_video.video.refine_video import default_output

    journal = journal_path(out if out is not None else default_output(tracks))
    if not journal.exists():
        return "nothing was refined yet; run the command again"
    return f"the refined frames are kept in {journal}; run the same command with --resume to continue"


def _run(args: argparse.Namespace) -> int:
    from posefix_video.video.refine_video import refine_video

    summary = refine_video(
        args.video, args.tracks, args.checkpoint, args.out,
        format=args.format, frame_base=args.frame_base if args.frame_base == "auto" else int(args.frame_base),
        layout=args.layout, batch_size=args.batch_size, chunk_frames_max=args.chunk_frames, device=args.device,
        flip_test=not args.no_flip, precision=args.precision, backend=args.backend, decoder=args.decoder, fps=args.fps,
        render=args.render, smooth=args.smooth, smooth_params=smooth_params(args), resume=args.resume,
        tracks_orientation=args.tracks_orientation, seq_name=args.seq_name, progress=not args.no_progress,
        initializer=args.initializer, refine=not args.no_refine, **output_options(args),
    )  # fmt: skip
    print(summary, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
