"""Evaluate PoseTrack predictions with poseval's numbers (AP, MOTA, MOTP, precision, recall).

    python -m pipelines.evaluate --gt GT --pred PRED [--no-tracking] [--per-sequence] [--json OUT.json]
                                 [--plot OUT.png] [--allow-missing-scores] [--coco]

GT and PRED are both folders of per-video JSON files (paired by file name, as poseval pairs them) or both single
files. Prints poseval's tables. Exit status 0 on success, 2 on unusable input (the message names file, frame and
track).
"""

from __future__ import annotations

import argparse
import sys

from posefix_video.atomic import write_json_atomic
from posefix_video.cli import check_outputs, run_cli
from posefix_video.eval.posetrack import evaluate_posetrack, pair_files


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.evaluate",
        description="PoseTrack evaluation identical to poseval (leonid-pishchulin/poseval): per-joint AP with "
        "PCKh@0.5 matching, and MOTA/MOTP/precision/recall per joint (Head, Shou, Elb, Wri, Hip, Knee, Ankl, "
        "Total). Reads PoseTrack 2018 and 2017 files.",
        epilog="MOTP: the table and the JSON key `motp` give poseval's value with a current motmetrics (>= 1.1, "
        "which also sums distances of unmatched pairs); `motp_textbook` is the CLEAR-MOT definition (matched "
        "distances only). A video needs >= 2 labeled frames for tracking; shorter ones are left out with a note. "
        "See docs/evaluation.md.",
    )
    parser.add_argument("--gt", required=True, help="GT folder (every *.json is one video) or one GT file")
    parser.add_argument("--pred", required=True, help="prediction folder (same file names as GT) or one file")
    parser.add_argument("--no-tracking", action="store_true", help="AP only (no MOTA etc.)")
    parser.add_argument("--per-sequence", action="store_true", help="also print and save metrics per video")
    parser.add_argument("--json", metavar="OUT.json", help="write {ap, mota, motp, motp_textbook, precision, "
                        "recall}: group name -> percent (null where poseval gives NaN), plus per joint")
    parser.add_argument("--plot", metavar="OUT.png", help="bar plot of per-joint AP (and MOTA)")
    parser.add_argument("--allow-missing-scores", action="store_true", help="rank predicted joints without scores "
                        "with -9999 as poseval does, instead of refusing the file")
    parser.add_argument("--coco", action="store_true", help="also report COCO OKS AP (PoseTrack18 sigmas, 15 "
                        "joints) of PoseTrack 2018 files")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    check_outputs(inputs=[args.gt, args.pred], outputs={"--json": args.json, "--plot": args.plot})
    gts, preds = pair_files(args.gt, args.pred)
    result = evaluate_posetrack(gts, preds, tracking=not args.no_tracking, per_sequence=args.per_sequence,
                                missing_scores="fallback" if args.allow_missing_scores else "error")
    print(f"# gt frames: {result.n_frames} in {len(gts)} video(s)")
    if args.per_sequence:
        for name, r in result.per_sequence.items():
            print(f"\n== {name}\n{r.table()}")
        print("\n== all videos")
    print(result.table())
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    out = result.to_json()
    if args.coco:
        from posefix_video.eval.coco import evaluate_posetrack_coco

        out["coco"] = evaluate_posetrack_coco(gts, preds)
        print("COCO OKS (PoseTrack18 sigmas, 15 joints): " + ", ".join(f"{k} {v:.3f}" for k, v in
                                                                      out["coco"].items()))
    if args.json:
        write_json_atomic(args.json, out, indent=1)
    if args.plot:
        from posefix_video.eval.plot import plot_result

        plot_result(result, args.plot, title=f"{args.pred}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
