"""Learning proof: a tiny PoseFix model trained on CPU improves simulated tracker poses on held-out synthetic videos.

    python scripts/learning_proof.py [--checkpoint assets/demo_checkpoint.pth | --train] [--clips 2] [--frames 30]

For each error regime of the tracker simulator (PoseFix statistics at training strength, then drift, dropped
joints, the realistic default mix) it renders held-out clips (val split, seeds unseen in training), simulates the
tracker, refines with posefix_video.demo.refine_and_evaluate (the demo's code) and prints input AP, refined AP and
the gain (our PoseTrack evaluator, Total over all clips of a regime is the mean over clips).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from posefix_video.demo import (  # noqa: E402
    DEMO_CHECKPOINT,
    ClipSpec,
    load_demo_refiner,
    make_clip,
    refine_and_evaluate,
    simulate_tracks,
    train_demo_checkpoint,
)
from posefix_video.errors import PosefixError  # noqa: E402
from posefix_video.synthetic.tracker_sim import TrackerSimSettings  # noqa: E402


def regimes() -> dict[str, TrackerSimSettings]:
    """Error regimes: the training statistics, and processes the refiner never saw in training (one at a time)."""
    clean = TrackerSimSettings.clean()
    return {
        "posefix (training stats)": TrackerSimSettings.training(),
        "drift 0.5": TrackerSimSettings(**{**clean.__dict__, "drift": 0.5}),
        "posefix 0.5 + drop 0.1": TrackerSimSettings(**{**clean.__dict__, "posefix": 0.5, "drop_joints": 0.1}),
        "default mix": TrackerSimSettings(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=DEMO_CHECKPOINT)
    p.add_argument("--train", action="store_true", help="train a fresh tiny checkpoint first")
    p.add_argument("--clips", type=int, default=2, help="held-out clips per regime")
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            ckpt = args.checkpoint
            if args.train:
                ckpt = train_demo_checkpoint(work / "train", work / "ckpt.pth", seed=args.seed)
            refiner = load_demo_refiner(ckpt)
            clips = [make_clip(work / f"clip{i}", ClipSpec(seed=2000 + i, frames=args.frames, first_video=i + 1))
                     for i in range(args.clips)]
            for r, (name, settings) in enumerate(regimes().items()):
                before, after = [], []
                for i, clip in enumerate(clips):
                    tracks = simulate_tracks(clip, work / f"tracks{r}_{i}", settings, seed=args.seed + r)
                    res = refine_and_evaluate(clip, tracks, work / f"refined{r}_{i}", refiner=refiner)
                    before.append(res.before.groups("ap")["Total"])
                    after.append(res.after.groups("ap")["Total"])
                b, a = sum(before) / len(before), sum(after) / len(after)
                rows.append((name, b, a))
                print(f"{name:<26} input {b:6.1f}  refined {a:6.1f}  gain {a - b:+6.1f}", flush=True)
    except PosefixError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"\n{'regime':<26}{'input AP':>10}{'refined AP':>12}{'gain':>8}")
    for name, b, a in rows:
        print(f"{name:<26}{b:10.1f}{a:12.1f}{a - b:+8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
