"""python -m pipelines.demo [--out demo_out] [--train]: PoseFix refinement of a synthetic clip, before vs after.

Makes a short synthetic PoseTrack18 clip with several people, simulates a noisy tracker (the PoseFix error
statistics), refines it with the committed tiny checkpoint (assets/demo_checkpoint.pth; --train trains one on the
spot instead), evaluates input and refined poses with our PoseTrack evaluator and prints the AP/MOTA table.
Outputs: OUT/overlay.mp4 (grey input, coloured refined skeletons), OUT/ap_per_joint.png, OUT/table.txt,
OUT/refined/*.json (PoseTrack18), OUT/tracks/*.json (tracker input), OUT/clip/ (mp4, frames, ground truth).

--boxes: a box-only tracker instead (MOTChallenge text of jittered ground-truth boxes with the simulator's misses
and identity switches): its boxes get initial poses from the committed top-down initializer
(assets/demo_initializer.pth), then PoseFix refines them; prints AP and MOTA of the initializer alone and after
PoseFix. Outputs: OUT/boxes/*.txt, OUT/initializer/*.json, OUT/refined/*.json, OUT/table.txt, OUT/clip/.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from posefix_video.cli import check_outputs, run_cli
from posefix_video.demo import DEMO_CHECKPOINT, DEMO_INITIALIZER, ClipSpec, run_box_demo, run_demo
from posefix_video.errors import PosefixError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)")
    p.add_argument("--train", action="store_true", help="train a tiny checkpoint on the spot (a few CPU minutes)")
    p.add_argument("--checkpoint", type=Path, default=DEMO_CHECKPOINT, help="checkpoint (default: the committed one)")
    p.add_argument("--seed", type=int, default=0, help="tracker-simulator (and --train) seed")
    p.add_argument("--clip-seed", type=int, default=ClipSpec.seed, help="seed of the synthetic clip")
    p.add_argument("--frames", type=int, default=ClipSpec.frames, help="frames in the clip")
    p.add_argument("--boxes", action="store_true", help="box-only tracker: initializer poses, then PoseFix")
    p.add_argument("--initializer", type=Path, default=DEMO_INITIALIZER, help="top-down initializer for --boxes "
                   "(default: the committed one)")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    return run_cli(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    check_outputs(inputs=[args.checkpoint], outputs={}, folders={"--out": args.out})
    if args.boxes:
        if args.train:
            raise PosefixError("--train trains a PoseFix checkpoint for the pose demo; --boxes uses --checkpoint")
        res = run_box_demo(args.out, checkpoint=args.checkpoint, initializer=args.initializer, seed=args.seed,
                           spec=ClipSpec(seed=args.clip_seed, frames=args.frames))
        print(res.table)
        print(f"tracker boxes: {res.boxes}\nposes: {args.out / 'initializer'} (initializer), "
              f"{args.out / 'refined'} (+ PoseFix)")
        return 0
    res = run_demo(args.out, checkpoint=args.checkpoint, train=args.train, seed=args.seed,
                   spec=ClipSpec(seed=args.clip_seed, frames=args.frames))
    print(res.table)
    print(f"overlay video: {res.render}\nper-joint AP plot: {res.plot}\nrefined poses: {res.result.refined}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
