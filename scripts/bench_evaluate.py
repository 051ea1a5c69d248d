"""Times our PoseTrack evaluator against poseval on data of PoseTrack18-val size, in one run.

    python scripts/bench_evaluate.py [--videos 170] [--frames 150] [--persons 5] [--poseval-path /tmp/poseval-site]

Writes synthetic GT (every 4th frame labeled) and noisy predictions with track switches into a temporary folder,
evaluates AP + tracking with ours and, when poseval is importable (from --poseval-path or PYTHONPATH), with
poseval's own functions, and prints both times, the ratio and whether the numbers agree.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a plain script from anywhere
from posefix_video.eval import evaluate_posetrack_dirs  # noqa: E402
from posefix_video.keypoints import POSETRACK18_NAMES  # noqa: E402


def write_dataset(root: Path, videos: int, frames: int, persons: int, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    gt_dir, pred_dir = root / "gt", root / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    cats = [{"id": 1, "name": "person", "keypoints": list(POSETRACK18_NAMES)}]
    for v in range(videos):
        name = f"{v + 1:06d}_mpii_test"
        images, gts, preds = [], [], []
        start = rng.uniform(100, 1800, size=(persons, 2))
        vel = rng.normal(0, 4, size=(persons, 2))
        body = rng.normal(0, 40, size=(persons, 17, 2))
        for f in range(frames):
            iid = 10000000000 + (v + 1) * 10000 + f
            images.append({"id": iid, "file_name": f"images/val/{name}/{f:06d}.jpg", "is_labeled": f % 4 == 0})
            centre = start + vel * f
            ids = rng.permutation(persons) if rng.uniform() < 0.05 else np.arange(persons)
            for p in range(persons):
                kp = np.concatenate([centre[p] + body[p], np.ones((17, 1))], axis=1)
                kp[[3, 4]] = 0
                if f % 4 == 0:
                    gts.append({"image_id": iid, "track_id": p, "keypoints": kp.reshape(-1).round(2).tolist(),
                                "bbox_head": [*(centre[p] - 15).round(2).tolist(), 30, 30], "scores": []})
                if rng.uniform() < 0.9:
                    noisy = kp.copy()
                    noisy[:, :2] += rng.normal(0, 6, size=(17, 2))
                    noisy[[3, 4]] = 0
                    preds.append({"image_id": iid, "track_id": int(ids[p]),
                                  "keypoints": noisy.reshape(-1).round(2).tolist(),
                                  "scores": rng.uniform(0, 1, 17).round(6).tolist()})
        (gt_dir / f"{name}.json").write_text(json.dumps({"images": images, "annotations": gts, "categories": cats}))
        (pred_dir / f"{name}.json").write_text(json.dumps({"images": images, "annotations": preds,
                                                           "categories": cats}))
    return gt_dir, pred_dir


def run_poseval(gt_dir: Path, pred_dir: Path, out: Path) -> tuple[np.ndarray, np.ndarray]:
    from poseval import eval_helpers
    from poseval.evaluateAP import evaluateAP
    from poseval.evaluateTracking import evaluateTracking

    with contextlib.redirect_stdout(io.StringIO()):
        gt, pr = eval_helpers.load_data_dir(["", f"{gt_dir}/", f"{pred_dir}/"])
        ap, _, _ = evaluateAP(gt, pr, str(out), True, False)
        mot = evaluateTracking(gt, pr, str(out), True, False)
    return ap.flatten(), mot["mota"].flatten()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=170)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--persons", type=int, default=5)
    parser.add_argument("--poseval-path", help="folder to put on sys.path so that `import poseval` works")
    args = parser.parse_args()
    if args.poseval_path:
        sys.path.insert(0, args.poseval_path)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        gt_dir, pred_dir = write_dataset(root, args.videos, args.frames, args.persons)
        print(f"data: {args.videos} videos x {args.frames} frames (every 4th labeled), {args.persons} persons; "
              f"written in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        ours = evaluate_posetrack_dirs(gt_dir, pred_dir, tracking=True)
        t_ours = time.perf_counter() - t
        print(f"ours:    {t_ours:8.2f} s  (AP Total {ours.ap[15]:.2f}, MOTA Total {ours.mota[15]:.2f})")
        try:
            import poseval  # noqa: F401
        except ImportError:
            print("poseval not importable (use --poseval-path): no ratio")
            return 0
        (root / "out").mkdir()
        t = time.perf_counter()
        ap, mota = run_poseval(gt_dir, pred_dir, root / "out")
        t_ref = time.perf_counter() - t
        same = np.allclose(ap, ours.ap, atol=0.01, equal_nan=True) and np.allclose(mota, ours.mota, atol=0.01,
                                                                                     equal_nan=True)
        print(f"poseval: {t_ref:8.2f} s  (AP Total {ap[15]:.2f}, MOTA Total {mota[15]:.2f})")
        print(f"speed-up: {t_ref / t_ours:.1f}x; numbers identical to 0.01: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
