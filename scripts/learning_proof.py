"""Learning proof: refined AP against input AP over person height x tracker defect, on held-out synthetic clips.

    python scripts/learning_proof.py [--checkpoint assets/demo_checkpoint.pth | --train] [--clips 2] [--frames 16]
        [--heights 40 80 160 320] [--defects posefix mix ultralytics drift drop limbs] [--gaps] [--scores]
        [--seed-base 2000] [--json out.json] [refine options: --no-safeguard --fill-joints --scores-mode M]

For every person height (clips whose persons are about that tall, frame size to fit) and tracker defect (simulator
presets, see `defects`) it renders held-out clips (val split, seeds `--seed-base`+, never used in training; the
safeguard and the defaults were chosen on seeds 3000+, see docs/benchmarks.md), simulates the tracker, refines with
posefix_video.demo.refine_and_evaluate (the demo's code) and prints input AP, refined AP and the difference per
cell, overall and per joint group (our PoseTrack evaluator, poseval's numbers; a cell's AP is the mean over its
clips). `--gaps` adds the missed-person table (tracks lost for a few frames, ids kept): AP and MOTA without and
with `fill_gaps=8`. `--scores` adds refined AP per written score kind (input, refined, product) per cell.

Default size: 4 heights x 6 defects x 2 clips x 16 frames, about 4 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from posefix_video.demo import (  # noqa: E402
    AP_GROUPS,
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

GROUPS = AP_GROUPS[:-1]
# person height (px) -> frame (width, height): the frame leaves room around the persons
FRAMES = {40: (320, 240), 80: (320, 240), 160: (480, 360), 320: (640, 480)}


def defects() -> dict[str, TrackerSimSettings]:
    """Tracker defects of the matrix (TrackerSimSettings presets and single processes)."""
    clean = TrackerSimSettings.clean().__dict__
    return {
        "posefix": TrackerSimSettings.training(),  # the training error statistics
        "mix": TrackerSimSettings(),  # realistic default mix (posefix 0.5, drift, drops, misses, id switches)
        "ultralytics": TrackerSimSettings.ultralytics(),  # the mix, joints under 0.5 score blanked
        "drift": TrackerSimSettings(**{**clean, "drift": 0.5}),  # smooth drift only (never seen in training)
        "drop": TrackerSimSettings(**{**clean, "posefix": 0.5, "drop_joints": 0.25}),  # 25 % random joints absent
        "limbs": TrackerSimSettings(**{**clean, "posefix": 0.5, "drop_limbs": 0.25}),  # whole limbs absent
    }


def gap_settings() -> TrackerSimSettings:
    """Missed-person bursts with ids kept (mean 4 frames, 4 % of tracks per frame start one), mild pose noise."""
    return TrackerSimSettings(**{**TrackerSimSettings.clean().__dict__, "posefix": 0.5, "miss_person": 0.04,
                                 "miss_length": 4.0, "new_id_after_miss": 0.0})


def clip_spec(height: int, seed: int, frames: int, index: int) -> ClipSpec:
    """A held-out clip whose persons are `height` px tall (+-10 %)."""
    w, h = FRAMES.get(height, (max(320, int(2 * height)), max(240, int(1.5 * height))))
    return ClipSpec(seed=seed, frames=frames, width=w, height=h, first_video=index + 1, min_height=0.9 * height,
                    max_height=1.1 * height)


def _cell(clips, settings, work: Path, tag: str, refiner, seed: int, refine: dict) -> dict:
    """Input and refined AP (per group) and MOTA of one cell, the mean over its clips."""
    acc = {"input": [], "refined": [], "mota_in": [], "mota_out": [], "filled": 0}
    for i, clip in enumerate(clips):
        tracks = simulate_tracks(clip, work / f"tracks_{tag}_{i}", settings, seed=seed)
        res = refine_and_evaluate(clip, tracks, work / f"refined_{tag}_{i}", refiner=refiner, **refine)
        acc["input"].append(res.before.groups("ap"))
        acc["refined"].append(res.after.groups("ap"))
        acc["mota_in"].append(res.before.groups("mota")["Total"])
        acc["mota_out"].append(res.after.groups("mota")["Total"])
        acc["filled"] += int(getattr(res.summary, "filled", 0) or 0)
    mean = lambda rows, g: float(sum(r[g] for r in rows) / len(rows))  # noqa: E731
    return {"input": {g: mean(acc["input"], g) for g in AP_GROUPS},
            "refined": {g: mean(acc["refined"], g) for g in AP_GROUPS},
            "mota_input": sum(acc["mota_in"]) / len(clips), "mota_refined": sum(acc["mota_out"]) / len(clips),
            "filled": acc["filled"]}


def _row(name: str, cell: dict) -> str:
    b, a = cell["input"], cell["refined"]
    worst = min(GROUPS, key=lambda g: a[g] - b[g])
    return (f"| {name} | {b['Total']:.1f} | {a['Total']:.1f} | {a['Total'] - b['Total']:+.1f} | "
            + " | ".join(f"{a[g] - b[g]:+.1f}" for g in GROUPS) + f" | {worst} {a[worst] - b[worst]:+.1f} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=DEMO_CHECKPOINT)
    p.add_argument("--train", action="store_true", help="train a fresh tiny checkpoint first")
    p.add_argument("--clips", type=int, default=2, help="held-out clips per height")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--heights", type=int, nargs="+", default=[40, 80, 160, 320])
    p.add_argument("--defects", nargs="+", default=list(defects()), choices=list(defects()))
    p.add_argument("--seed", type=int, default=0, help="tracker simulation seed")
    p.add_argument("--seed-base", type=int, default=2000, help="clip seeds (2000: test clips; 3000: tuning clips)")
    p.add_argument("--gaps", action="store_true", help="also the missed-person table (fill_gaps 0 vs 8)")
    p.add_argument("--scores", action="store_true", help="also refined AP per score kind")
    p.add_argument("--no-safeguard", action="store_true")
    p.add_argument("--fill-joints", choices=("on", "off", "default"), default="default")
    p.add_argument("--scores-mode", choices=("input", "refined", "product", "default"), default="default")
    p.add_argument("--json", type=Path, default=None, help="also write every number here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    refine: dict = {}
    if args.no_safeguard:
        refine["safeguard"] = False
    if args.fill_joints != "default":
        refine["fill_joints"] = args.fill_joints == "on"
    if args.scores_mode != "default":
        refine["scores"] = args.scores_mode
    table, report = [], {"cells": {}, "gaps": {}, "scores": {}}
    header = ("| height x defect | input AP | refined AP | diff | " + " | ".join(GROUPS) + " | worst group |\n|"
              + "---|" * (len(GROUPS) + 5))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            ckpt = args.checkpoint
            if args.train:
                ckpt = train_demo_checkpoint(work / "train", work / "ckpt.pth", seed=args.seed)
            refiner = load_demo_refiner(ckpt)
            for hgt in args.heights:
                clips = [make_clip(work / f"clip{hgt}_{i}", clip_spec(hgt, args.seed_base + 10 * hgt + i,
                                                                      args.frames, i)) for i in range(args.clips)]
                for d, name in enumerate(args.defects):
                    tag = f"{hgt}_{name}"
                    cell = _cell(clips, defects()[name], work, tag, refiner, args.seed + d, refine)
                    report["cells"][tag] = cell
                    table.append(_row(f"{hgt} px {name}", cell))
                    print(table[-1], flush=True)
                    if args.scores:
                        report["scores"][tag] = {
                            mode: _cell(clips, defects()[name], work, f"{tag}_{mode}", refiner, args.seed + d,
                                        {**refine, "scores": mode})["refined"]["Total"]
                            for mode in ("input", "refined", "product")}
                        print(f"  scores {tag}: {report['scores'][tag]}", flush=True)
                if args.gaps:
                    for n in (0, 8):
                        cell = _cell(clips, gap_settings(), work, f"{hgt}_gaps{n}", refiner, args.seed + 99,
                                     {**refine, "fill_gaps": n})
                        report["gaps"][f"{hgt}_{n}"] = cell
                        print(f"  gaps {hgt} px fill_gaps {n}: AP {cell['input']['Total']:.1f} -> "
                              f"{cell['refined']['Total']:.1f}, MOTA {cell['mota_input']:.1f} -> "
                              f"{cell['mota_refined']:.1f}, filled {cell['filled']}", flush=True)
    except PosefixError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n" + header)
    print("\n".join(table))
    if report["gaps"]:
        print("\n| height | fill_gaps | input AP | output AP | input MOTA | output MOTA | filled |\n"
              + "|---" * 7 + "|")
        for key, c in report["gaps"].items():
            hgt, n = key.split("_")
            print(f"| {hgt} | {n} | {c['input']['Total']:.1f} | {c['refined']['Total']:.1f} | {c['mota_input']:.1f} "
                  f"| {c['mota_refined']:.1f} | {c['filled']} |")
    if report["scores"]:
        print("\n| cell | input | refined | product |\n|---|---|---|---|")
        for key, s in report["scores"].items():
            print(f"| {key} | {s['input']:.1f} | {s['refined']:.1f} | {s['product']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
