"""Train PoseFix: `python -m pipelines.train --config configs/coco_r50_256x192.yaml [key=value ...] [--resume]`.

Multi-GPU / multi-node: the same command under torchrun, e.g.
    torchrun --nproc_per_node 8 -m pipelines.train --config configs/coco_r152_384x288.yaml --out runs/r152
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from posefix_video.cli import check_outputs, run_cli


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipelines.train",
        description="Train the PoseFix refiner (COCO pre-training, PoseTrack fine-tuning) from a YAML recipe. "
                    "Writes config.yaml (the merged config, once the data and validation inputs are known good), "
                    "metrics.jsonl, last.pth every epoch and best.pth (best validation score: PoseTrack AP Total, "
                    "COCO OKS AP or -loss, per validation.metric) under --out. Run under torchrun for "
                    "DistributedDataParallel. See docs/training.md.",
        epilog="examples:\n"
               "  python -m pipelines.train --config configs/tiny_synthetic.yaml --out runs/tiny\n"
               "  python -m pipelines.train --config configs/tiny_synthetic_posetrack.yaml --out runs/tiny_posetrack\n"
               "  python -m pipelines.train --config configs/coco_r50_256x192.yaml optim.lr=1e-3 data.batch_size=64\n"
               "  python -m pipelines.train --config configs/coco_r50_256x192.yaml --out runs/r50 --resume\n"
               "  torchrun --nproc_per_node 4 -m pipelines.train --config configs/coco_r152_384x288.yaml --out runs/x",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="training recipe (YAML), e.g. configs/coco_r152_384x288.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides with dotted keys, e.g. optim.lr=1e-4 schedule.epochs=20")
    p.add_argument("--out", default=None, help="output folder (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/last.pth exactly (weights, optimizer, schedule, sample order, RNG)")
    p.add_argument("--quiet", action="store_true", help="log warnings only")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.WARNING if args.quiet or rank else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    out = args.out or os.path.join("runs", os.path.splitext(os.path.basename(args.config))[0])
    return run_cli(lambda: _run(args, out, rank), interrupted_hint=lambda: _resume_hint(out))


def _resume_hint(out: str) -> str:
    last = os.path.join(out, "last.pth")
    if os.path.isfile(last):
        return f"{last} holds the last finished epoch; add --resume to the same command to continue from it"
    return "no epoch had finished; run the command again"


def _run(args: argparse.Namespace, out: str, rank: int) -> int:
    from posefix_video.train.config import load_train_config
    from posefix_video.train.run import run_training

    check_outputs(inputs=[args.config], outputs={}, folders={"--out": out})
    cfg = load_train_config(args.config, args.overrides)
    result = run_training(cfg, out, resume=args.resume)
    if rank == 0:
        print(f"done: {result['last']} (best validation score: {result['best_score']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
