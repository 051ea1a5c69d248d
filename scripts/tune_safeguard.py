"""Chooses the post-network defaults on tuning clips: safeguard rule, --fill-joints, --scores, the gap-fill threshold.

    python scripts/tune_safeguard.py [--checkpoint assets/demo_checkpoint.pth] [--clips 2] [--frames 16]
        [--heights 40 80 160 320] [--seed-base 3000] [--json out.json]

Tuning clips use seeds 3000+ (scripts/learning_proof.py reports on the test clips, seeds 2000+). Every cell of the
learning-proof matrix (height x defect) is refined once through refine_video with the safeguard off, absent joints
filled and gap fills of up to 8 frames written whatever their confidence; every candidate setting is then applied
to those arrays (net/safeguard.py, the same functions the refiner uses) and evaluated with our PoseTrack evaluator:

1. safeguard rules (min_confidence x keep_within x blend): mean AP gain over cells, worst cell, worst joint group;
   the chosen rule is the one with the highest mean gain among those whose worst group stays >= -0.5, else the one
   with the best worst group;
2. with that rule: fill_joints off/on x scores input/refined/product, AP per cell;
3. gap fills: AP and MOTA per confidence threshold on the missed-person clips.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from learning_proof import GROUPS, clip_spec, defects, gap_settings  # noqa: E402

from posefix_video import geometry  # noqa: E402
from posefix_video.demo import DEMO_CHECKPOINT, load_demo_refiner, make_clip, simulate_tracks  # noqa: E402
from posefix_video.eval import evaluate_posetrack  # noqa: E402
from posefix_video.io.posetrack18 import read_posetrack18, write_posetrack18  # noqa: E402
from posefix_video.keypoints import POSETRACK18  # noqa: E402
from posefix_video.net.safeguard import Safeguard, apply_safeguard, choose_scores  # noqa: E402
from posefix_video.records import PoseSequence  # noqa: E402
from posefix_video.video.gaps import drop_weak_fills, fill_confidence, is_filled  # noqa: E402
from posefix_video.video.refine_video import refine_video  # noqa: E402


def _existing_clip(folder: Path):
    """The Clip of a folder make_clip wrote earlier (--work reuse)."""
    from posefix_video.demo import Clip

    (gt,) = sorted((folder / "annotations" / "val").glob("*.json"))
    return Clip(video=folder / "videos" / "val" / f"{gt.stem}.mp4", frames=folder / "images" / "val" / gt.stem, gt=gt)


class RawCell:
    """One clip of one cell: GT, input and the raw (unguarded, filled) refinement, as arrays aligned by person."""

    def __init__(self, gt: Path, tracks: Path, raw: Path):
        self.gt, self.tracks = gt, tracks
        self.inputs = read_posetrack18(tracks)
        self.raw = read_posetrack18(raw)
        ins = list(self.inputs.persons())
        outs = [p for p in self.raw.persons() if not is_filled(p)]
        assert [(p.frame, p.track_id) for p in ins] == [(p.frame, p.track_id) for p in outs], "misaligned"
        self.records = outs
        self.inp = np.stack([p.keypoints for p in ins])
        self.present = np.stack([p.present for p in ins])
        self.scores = np.stack([p.scores if p.scores is not None else p.present * 1.0 for p in ins])
        self.net = np.stack([p.keypoints for p in outs])
        conf = [p.extra.get("posefix_confidence") for p in outs]
        self.refined = np.array([c is not None for c in conf])
        self.conf = np.stack([np.asarray(c if c is not None else [0.0] * 17, dtype=np.float64) for c in conf])
        self.usable = geometry.usable_joints(self.inp, self.present, POSETRACK18.ignored)
        self.filled = np.zeros_like(self.present)
        for i, p in enumerate(outs):
            self.filled[i, p.extra.get("posefix_filled_joints", [])] = True
        self.fills = [p for p in self.raw.persons() if is_filled(p)]

    def variant(self, rule: Safeguard | None, fill_joints: bool, scores: str, out: Path,
                fill_min: float | None = None, joint_min: float = 0.0) -> Path:
        """Writes the output this setting would have written; returns its path."""
        kp = self.net.copy()
        if rule is not None:
            kp, _ = apply_safeguard(self.net, self.conf, self.inp, self.usable, POSETRACK18.sigma_array, rule,
                                    np.where(self.usable, self.scores, np.nan))
        kp = np.where(self.usable[..., None], kp, self.inp)
        present = self.present.copy()
        sc = self.scores.copy()
        if fill_joints:
            filled = self.filled & (self.conf >= joint_min)
            kp = np.where(filled[..., None], self.net, kp)
            present |= filled
            sc = np.where(filled, self.conf, sc)
        conf = np.where(present & self.refined[:, None], self.conf, 0.0)
        seq = PoseSequence(name=self.raw.name, layout=self.raw.layout, num_frames=self.raw.num_frames,
                           images=self.raw.images, image_ids=self.raw.image_ids, file_names=self.raw.file_names,
                           source_format=self.raw.source_format, meta=self.raw.meta)
        for i, r in enumerate(self.records):
            s_i = sc[i] if scores == "input" or not self.refined[i] else choose_scores(sc[i], conf[i], scores)
            seq.add(r.replace(keypoints=kp[i], present=present[i], scores=s_i,
                              visibility=np.where(present[i], np.maximum(s_i, 1e-3), 0.0)))
        if fill_min is not None:
            fills = PoseSequence(name=seq.name, layout=seq.layout)
            for p in self.fills:
                fills.add(p)
            kept, _, _ = drop_weak_fills(fills, fill_min)
            for p in kept.persons():
                seq.add(p)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_posetrack18(seq, out)
        return out


def evaluate(cells: list[RawCell], outs: list[Path]) -> tuple[dict, float]:
    res = evaluate_posetrack([c.gt for c in cells], outs, tracking=True)
    return res.groups("ap"), res.groups("mota")["Total"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=DEMO_CHECKPOINT)
    p.add_argument("--clips", type=int, default=2)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--heights", type=int, nargs="+", default=[40, 80, 160, 320])
    p.add_argument("--seed-base", type=int, default=3000)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--work", type=Path, default=None, help="keep clips and raw refinements here; an existing raw "
                   "refinement is reused (the checkpoint must be the same)")
    p.add_argument("--min-confidence", type=float, nargs="+", default=[0.0, 0.3, 0.5, 0.6, 0.7, 0.8])
    p.add_argument("--keep-within", type=float, nargs="+", default=[0.0, 0.5])
    p.add_argument("--blend", type=float, nargs="+", default=[0.0, 0.3])
    p.add_argument("--input-margin", nargs="+", default=["none", "-0.2", "0.0", "0.2"], help="'none' or numbers")
    p.add_argument("--worst-group", type=float, default=-0.5, help="the chosen rule keeps every cell's groups above "
                   "this (AP points vs the input), else the rule with the best worst group is chosen")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    refiner = load_demo_refiner(args.checkpoint)
    report: dict = {"rules": {}, "post": {}, "fill_threshold": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        cells: dict[str, list[RawCell]] = {}
        gaps: list[RawCell] = []
        for hgt in args.heights:
            clips = [make_clip(work / f"clip{hgt}_{i}", clip_spec(hgt, args.seed_base + 10 * hgt + i, args.frames, i))
                     if not (work / f"clip{hgt}_{i}").exists() else _existing_clip(work / f"clip{hgt}_{i}")
                     for i in range(args.clips)]
            kinds = {**defects(), "gaps": gap_settings()}
            for d, (name, settings) in enumerate(kinds.items()):
                tag = f"{hgt}_{name}"
                cell = []
                for i, clip in enumerate(clips):
                    tracks = simulate_tracks(clip, work / f"tracks_{tag}_{i}", settings, seed=d)
                    raw = work / f"raw_{tag}_{i}" / clip.gt.name
                    if raw.exists():
                        cell.append(RawCell(clip.gt, tracks, raw))
                        continue
                    raw.parent.mkdir(parents=True, exist_ok=True)
                    refine_video(clip.video, tracks, out=raw, refiner=refiner, seq_name=clip.gt.stem,
                                 safeguard=False, fill_joints=True, fill_gaps=8 if name == "gaps" else 0,
                                 fill_min_confidence=0.0)
                    cell.append(RawCell(clip.gt, tracks, raw))
                if name == "gaps":
                    gaps += cell
                else:
                    cells[tag] = cell
            print(f"refined height {hgt}", flush=True)
        base = {tag: evaluate(c, [x.tracks for x in c])[0] for tag, c in cells.items()}
        n = 0

        def run(tag, c, **kw):
            nonlocal n
            n += 1
            outs = [x.variant(out=work / f"v{n}_{k}" / x.gt.name, **kw) for k, x in enumerate(c)]
            return evaluate(c, outs)

        margins = [None if m == "none" else float(m) for m in args.input_margin]
        grid = itertools.product(args.min_confidence, args.keep_within, args.blend, margins)
        rules = [None] + [Safeguard(min_confidence=mc, keep_within=kw, blend=bl, input_margin=im)
                          for mc, kw, bl, im in grid
                          if (mc > 0 or kw > 0 or im is not None) and not (bl > 0 and mc == 0)]
        for rule in rules:
            gains, worst_group, where = [], 99.0, ""
            for tag, c in cells.items():
                ap, _ = run(tag, c, rule=rule, fill_joints=False, scores="input")
                gains.append(ap["Total"] - base[tag]["Total"])
                for g in GROUPS:
                    if ap[g] - base[tag][g] < worst_group:
                        worst_group, where = ap[g] - base[tag][g], f"{tag} {g}"
            key = repr(rule)
            report["rules"][key] = {"mean_gain": float(np.mean(gains)), "worst_cell": float(min(gains)),
                                    "worst_group": float(worst_group)}
            print(f"{key}: mean {np.mean(gains):+.2f} worst cell {min(gains):+.2f} worst group {worst_group:+.2f} "
                  f"({where})", flush=True)
        ok = {k: v for k, v in report["rules"].items() if v["worst_group"] >= args.worst_group}
        pool = ok or report["rules"]
        best_key = max(pool, key=lambda k: pool[k]["mean_gain"] if ok else pool[k]["worst_group"])
        best = rules[[repr(r) for r in rules].index(best_key)]
        print(f"chosen rule: {best_key}", flush=True)
        report["chosen_rule"] = best_key
        for fill, scores in itertools.product((False, 0.0, 0.5, 0.7, 0.9), ("input", "refined", "product")):
            key = f"fill_joints={fill is not False}{f' >= {fill}' if fill is not False else ''} scores={scores}"
            report["post"][key] = {tag: run(tag, c, rule=best, fill_joints=fill is not False, scores=scores,
                                            joint_min=fill or 0.0)[0]["Total"] for tag, c in cells.items()}
            vals = report["post"][key]
            print(f"{key}: mean AP {np.mean(list(vals.values())):.2f} "
                  + " ".join(f"{t}:{v:.1f}" for t, v in vals.items()), flush=True)
        ap_in, mota_in = evaluate(gaps, [x.tracks for x in gaps])
        report["fill_threshold"]["input"] = {"ap": ap_in["Total"], "mota": mota_in}
        print(f"gaps input: AP {ap_in['Total']:.1f} MOTA {mota_in:.1f}", flush=True)
        for thr in (None, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6):
            ap, mota = run("gaps", gaps, rule=best, fill_joints=False, scores="input", fill_min=thr)
            report["fill_threshold"][str(thr)] = {"ap": ap["Total"], "mota": mota}
            print(f"gaps fill_min {thr}: AP {ap['Total']:.1f} MOTA {mota:.1f}", flush=True)
        conf = [fill_confidence(f) for x in gaps for f in x.fills]
        print(f"gap fills: {len(conf)}, confidence quartiles {np.percentile(conf, [25, 50, 75]) if conf else []}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
