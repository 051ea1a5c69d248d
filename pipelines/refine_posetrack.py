"""Refine every video of a PoseTrack split: one prediction file per video in, one refined file per video out (same
names), ready for the evaluator. Videos are sharded across processes: under torchrun each rank takes every
world_size-th video (RANK / WORLD_SIZE / LOCAL_RANK from the environment); without it, one process does all.

    python -m pipelines.refine_posetrack --frames-root data/posetrack18/images/val --pred-dir preds/ \\
        --out-dir refined/ --checkpoint posefix.pt
    torchrun --nproc_per_node 8 -m pipelines.refine_posetrack ...   # 8 GPUs, one process each
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from pipelines.refine_video import add_output_arguments, output_options
from posefix_video.cli import check_outputs, run_cli
from posefix_video.errors import PosefixError

log = logging.getLogger("refine_posetrack")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipelines.refine_posetrack",
        description="Refine the per-video prediction files of a PoseTrack split with PoseFix. For each "
        "<pred-dir>/<video>.json the frames are read from <frames-root>/<video>/ (numbered JPEGs) or "
        "<frames-root>/<video>.mp4, and <out-dir>/<video>.json is written.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--frames-root", required=True, help="folder holding one frame folder (or video file) per "
                   "video, e.g. posetrack18/images/val")
    p.add_argument("--pred-dir", required=True, help="folder of per-video prediction files (<video>.json)")
    p.add_argument("--out-dir", required=True, help="where refined files go, under the same names (must differ "
                   "from --pred-dir)")
    p.add_argument("--checkpoint", default=None, help="posefix checkpoint file or installed model name; default: "
                   "the installed model for --layout (posetrack18 unless given)")
    p.add_argument("--initializer", default=None, metavar="CKPT_OR_NAME", help="top-down pose network for persons "
                   "with a box and no pose (box-only trackers); see pipelines.refine_video")
    p.add_argument("--no-refine", action="store_true", help="stop after the initializer (no PoseFix checkpoint)")
    p.add_argument("--format", default="auto", help="prediction format (see pipelines.refine_video)")
    p.add_argument("--frame-base", default="auto", choices=["auto", "0", "1"])
    p.add_argument("--layout", default=None, choices=["coco17", "posetrack18"])
    p.add_argument("--batch-size", type=int, default=64, help="persons per network batch")
    p.add_argument("--chunk-frames", type=int, default=32, help="frames per batch at most")
    p.add_argument("--device", default="auto", help="auto: cuda:LOCAL_RANK when GPUs are visible, else cpu")
    p.add_argument("--no-flip", action="store_true", help="skip the flip test")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime"], help="network backend: "
                   "auto = ONNX Runtime on the CPU when installed (1.6-7x faster there), torch on CUDA; an .onnx "
                   "--checkpoint runs with ONNX Runtime (docs/model.md#onnx-runtime)")
    p.add_argument("--decoder", default="pyav", choices=["decord", "pyav", "opencv"], help="for video files")
    p.add_argument("--resume", action="store_true", help="skip videos whose output exists; continue interrupted "
                   "videos from their journals")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    add_output_arguments(p)
    return p


def shard() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) without it."""
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return rank, world, local


def find_frames(root: Path, name: str) -> Path | None:
    """The frames of video `name`: a folder <root>/<name>, else a video file <root>/<name>.<ext>."""
    if (root / name).is_dir():
        return root / name
    for ext in (".mp4", ".avi", ".mov", ".mkv", ".webm"):
        if (root / (name + ext)).is_file():
            return root / (name + ext)
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return run_cli(lambda: _run(args), interrupted_hint="finished videos are kept and interrupted ones journaled; "
                   "run the same command with --resume to continue")


def _run(args: argparse.Namespace) -> int:
    from posefix_video.net.model_store import resolve_model
    from posefix_video.video.initial_poses import load_initializer
    from posefix_video.video.refine_video import load_refiner, refine_video
    from posefix_video.video.stream import check_chunking

    rank, world, local = shard()
    pred_dir, out_dir, root = Path(args.pred_dir), Path(args.out_dir), Path(args.frames_root)
    try:
        check_outputs(inputs=[pred_dir, root, args.checkpoint], outputs={}, folders={"--out-dir": out_dir})
        check_chunking(args.batch_size, args.chunk_frames)
        if not pred_dir.is_dir():
            raise PosefixError(f"{pred_dir}: no such prediction folder")
        if not root.is_dir():
            raise PosefixError(f"{root}: no such frames folder")
        if out_dir.resolve() == pred_dir.resolve():
            raise PosefixError(f"{out_dir}: the output folder must differ from the prediction folder")
        videos = sorted(pred_dir.glob("*.json"))
        if not videos:
            raise PosefixError(f"{pred_dir}: no prediction files (*.json)")
        mine = videos[rank::world]
        device = args.device
        if device == "auto":
            import torch

            device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
        checkpoint = refiner = initializer = None
        if not args.no_refine:
            checkpoint = resolve_model(args.checkpoint, args.layout or "posetrack18")  # a path, a name or the default
            refiner = load_refiner(checkpoint, device=device, flip_test=not args.no_flip,
                                   precision=args.precision, batch_size=args.batch_size, backend=args.backend)
        if args.initializer is not None:  # loaded once for all videos, as the refiner
            initializer = load_initializer(args.initializer, device=device, flip_test=not args.no_flip,
                                           batch_size=args.batch_size)
    except PosefixError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"rank {rank}/{world}: {len(mine)} of {len(videos)} videos on {device}", file=sys.stderr)
    failed = []
    for pred in mine:
        out = out_dir / pred.name
        if args.resume and out.exists():
            continue
        frames = find_frames(root, pred.stem)
        try:
            if frames is None:
                raise PosefixError(f"{root}: no frames for {pred.name} (expected folder {pred.stem}/ or a video)")
            summary = refine_video(
                frames, pred, checkpoint, out, format=args.format,
                frame_base=args.frame_base if args.frame_base == "auto" else int(args.frame_base),
                layout=args.layout, batch_size=args.batch_size, chunk_frames_max=args.chunk_frames,
                decoder=args.decoder, resume=args.resume, progress=not args.no_progress, refiner=refiner,
                precision=args.precision, flip_test=not args.no_flip, initializer=initializer,
                refine=not args.no_refine, **output_options(args),
            )  # fmt: skip
            print(f"{pred.name}: {summary.frames} frames, {summary.refined}/{summary.persons} refined, "
                  f"{summary.seconds:.1f} s", file=sys.stderr)
        except PosefixError as err:
            print(f"error: {err}", file=sys.stderr)
            failed.append(pred.name)
    if failed:
        print(f"rank {rank}: {len(failed)} videos failed: {', '.join(failed)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
