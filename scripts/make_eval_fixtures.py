"""Generates deterministic PoseTrack 2018 prediction files from GT files, for evaluator parity checks.

Each kind perturbs the GT in one way poseval's rules react to; scores are continuous random numbers, so the AP
ranking has no ties (poseval breaks ties with numpy's unstable sort). Same seed, same bytes.

    python scripts/make_eval_fixtures.py --gt GT_DIR --out OUT_DIR [--kinds exact noise_small ...] [--seed 0]

writes OUT_DIR/<kind>/<gt file name> for every GT file (poseval pairs files by name).

Kinds: exact, noise_small, noise_large, missing_persons, false_persons, missing_joints, swapped_ids, empty_frames.
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path

import numpy as np

KINDS = ("exact", "noise_small", "noise_large", "missing_persons", "false_persons", "missing_joints",
         "swapped_ids", "empty_frames")
EARS = (3, 4)


def _head_size(ann: dict) -> float:
    x, y, w, h = ann["bbox_head"]
    return 0.6 * float(np.hypot(w, h))


def _perturb(ann: dict, rng: np.random.Generator, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(17, 3) keypoints with Gaussian noise of sigma x head size on present joints, and (17,) scores."""
    kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
    present = ~((kp[:, 0] == 0) & (kp[:, 1] == 0) & (kp[:, 2] == 0))
    noise = rng.normal(0.0, sigma * _head_size(ann), size=(17, 2)) if sigma > 0 else np.zeros((17, 2))
    kp[:, :2] += noise
    kp[:, 2] = 1.0
    kp[~present] = 0.0
    # Scores: higher for smaller errors, plus continuous noise (tie-free).
    err = np.hypot(noise[:, 0], noise[:, 1]) / max(_head_size(ann), 1e-6)
    scores = np.exp(-err) * 0.7 + rng.uniform(0.0, 0.3, size=17)
    return np.round(kp, 3), np.round(scores, 6)


def make_predictions(gt: dict, kind: str, rng: np.random.Generator) -> dict:
    """One prediction file for one GT file (copies `images` and `categories`, writes `annotations`)."""
    by_image: dict[int, list[dict]] = {}
    for ann in gt["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    sigma = {"exact": 0.0, "noise_large": 0.35}.get(kind, 0.1)
    out = []
    next_track = 1000
    swap_phase = {}
    for f_idx, image in enumerate(gt["images"]):
        anns = by_image.get(image["id"], [])
        if kind == "empty_frames" and rng.uniform() < 0.25:
            continue
        persons = []
        for ann in anns:
            if kind == "missing_persons" and rng.uniform() < 0.3:
                continue
            kp, sc = _perturb(ann, rng, sigma)
            if kind == "missing_joints":
                drop = rng.uniform(size=17) < 0.25
                kp[drop] = 0.0
                keep_v0 = (~drop) & (rng.uniform(size=17) < 0.1)
                kp[keep_v0, 2] = 0.0  # v = 0 with coordinates: still a predicted joint for poseval
            persons.append([int(ann["track_id"]), kp, sc])
        if kind == "false_persons" and anns:
            for _ in range(int(rng.integers(1, 3))):
                src = anns[int(rng.integers(len(anns)))]
                kp, sc = _perturb(src, rng, 0.1)
                shift = rng.uniform(-400, 400, size=2)
                kp[kp[:, 2] > 0, :2] += shift
                persons.append([next_track, np.round(kp, 3), np.round(sc * 0.8, 6)])
                next_track += 1
        if kind == "swapped_ids" and len(persons) >= 2:
            # From some frame on, two tracks exchange ids for a stretch of frames: identity switches.
            phase = swap_phase.setdefault("start", int(rng.integers(2, 8)))
            if phase <= f_idx < phase + 6 or f_idx % 9 == 0:
                a, b = rng.choice(len(persons), size=2, replace=False)
                persons[a][0], persons[b][0] = persons[b][0], persons[a][0]
        for k, (tid, kp, sc) in enumerate(persons):
            kp[list(EARS)] = 0.0
            sc = sc.copy()
            sc[list(EARS)] = 0.0
            out.append({
                "id": int(image["id"]) * 100 + k, "image_id": image["id"], "track_id": tid, "category_id": 1,
                "keypoints": [float(v) for v in kp.reshape(-1)], "scores": [float(v) for v in sc],
            })
    return {"images": gt["images"], "annotations": out, "categories": gt["categories"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gt", required=True, help="folder of PoseTrack 2018 GT files (one video each)")
    parser.add_argument("--out", required=True, help="output folder; OUT/<kind>/<gt name> is written")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    gt_files = sorted(Path(args.gt).glob("*.json"))
    if not gt_files:
        print(f"error: no *.json files in {args.gt}", file=sys.stderr)
        return 2
    for kind in args.kinds:
        folder = Path(args.out) / kind
        folder.mkdir(parents=True, exist_ok=True)
        for gt_file in gt_files:
            rng = np.random.default_rng([args.seed, zlib.crc32(f"{kind}/{gt_file.name}".encode())])
            gt = json.loads(gt_file.read_text())
            (folder / gt_file.name).write_text(json.dumps(make_predictions(gt, kind, rng)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
