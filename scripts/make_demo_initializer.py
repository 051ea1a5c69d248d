"""Regenerates assets/demo_initializer.pth: the box-only demo's top-down initializer (a tiny SimpleBaseline).

    python scripts/make_demo_initializer.py [--out assets/demo_initializer.pth] [--videos 40] [--frames 6] [--epochs 2]

The committed file is three such runs, each continuing the previous one (`--init`): docs/demo.md, "The initializer".

Renders synthetic PoseTrack18 training videos (train split, seed 500000 + seed), trains
configs/tiny_synthetic_topdown.yaml (ResNet-18 width 16, 128x96 crops of the ground-truth boxes, image only,
Gaussian target heatmaps + MSE) through train.run.run_training on the CPU, starting from the image features of the
demo PoseFix checkpoint (same network; `--init ''` for random weights), and keeps only the entries
TopDownEstimator.from_checkpoint reads (weights, model config, input contract; no optimizer state).
`--loss posefix` trains the soft-argmax losses instead (the comparison in docs/training.md; that file's decoder is
soft_argmax, which the top-down estimator refuses).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from posefix_video.cli import run_cli  # noqa: E402
from posefix_video.demo import DEMO_CHECKPOINT, DEMO_INITIALIZER, train_demo_initializer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=DEMO_INITIALIZER, help="checkpoint to write")
    p.add_argument("--videos", type=int, default=40, help="synthetic training videos")
    p.add_argument("--frames", type=int, default=6, help="frames per training video")
    p.add_argument("--epochs", type=int, default=2, help="training epochs (the last one at lr x0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--loss", choices=["heatmap_mse", "posefix"], default="heatmap_mse")
    p.add_argument("--init", default=str(DEMO_CHECKPOINT), help="start from this checkpoint of the same network: a "
                   "PoseFix one (image features reused, output layer afresh) or a top-down one (continued); '' for "
                   "random weights")
    p.add_argument("--work", type=Path, default=None, help="keep the training data and run here (default: temp)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    def run() -> int:
        with tempfile.TemporaryDirectory() as tmp:
            train_demo_initializer(args.work or Path(tmp), args.out, videos=args.videos, frames=args.frames,
                                   epochs=args.epochs, seed=args.seed, loss=args.loss, init_checkpoint=args.init)
        print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
        return 0

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
