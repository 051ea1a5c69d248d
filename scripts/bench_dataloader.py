"""Training-loader throughput: samples per second per CPU core at a given crop size (decode, synthesis, warp).

Makes a small synthetic COCO-format set itself (random 640x480 JPEGs of smooth noise, roughly COCO-sized files,
with random persons' boxes and keypoints; no real people needed), then measures in one run:

1. one process, no workers: CPU time per sample (time.process_time) -> samples/s per core, with the cost split
   into JPEG decode, warp, and error synthesis;
2. a DataLoader with --workers processes: wall-clock samples/s.

The issue's target is >= 350 samples/s per core at 256x192 (performance.md A5).

    python scripts/bench_dataloader.py                     # 256x192
    python scripts/bench_dataloader.py --size 384 288 --workers 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from posefix_video.data import PoseFixDataset, load_coco_persons  # noqa: E402
from posefix_video.keypoints import COCO17  # noqa: E402
from posefix_video.synthesis import synthesize_poses  # noqa: E402

TARGET_PER_CORE = 350.0


def make_coco_set(folder: Path, num_images: int, seed: int = 0) -> Path:
    """Writes num_images random 640x480 JPEGs and a COCO keypoint file with 1-5 persons per image."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in range(num_images):
        low = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
        img = cv2.resize(low, (640, 480), interpolation=cv2.INTER_CUBIC)
        img = cv2.add(img, rng.integers(0, 24, img.shape, dtype=np.uint8))
        name = f"{i:06d}.jpg"
        cv2.imwrite(str(folder / name), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        images.append({"id": i, "file_name": name, "width": 640, "height": 480})
        for _ in range(int(rng.integers(1, 6))):
            w, h = rng.uniform(40, 250), rng.uniform(80, 420)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            kp = np.stack([rng.uniform(x, x + w, 17), rng.uniform(y, y + h, 17), np.full(17, 2.0)], 1)
            kp[rng.random(17) < 0.2] = 0
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": 1,
                    "iscrowd": 0,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "num_keypoints": int((kp[:, 2] > 0).sum()),
                    "keypoints": kp.ravel().tolist(),
                }
            )
    path = folder / "person_keypoints.json"
    cats = [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(COCO17.names)}]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, nargs=2, default=(256, 192), metavar=("H", "W"), help="crop size")
    ap.add_argument("--images", type=int, default=200, help="synthetic images to generate")
    ap.add_argument("--samples", type=int, default=600, help="samples timed in the single-process run")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers for the second measurement")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--no-reduced-decode", action="store_true", help="always decode JPEGs at full size")
    args = ap.parse_args(argv)

    import torch
    from torch.utils.data import DataLoader

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ann = make_coco_set(folder, args.images)
        persons = load_coco_persons(ann, folder)
        ds = PoseFixDataset(
            persons=persons, layout=COCO17, input_hw=tuple(args.size), seed=0, reduced_decode=not args.no_reduced_decode
        )
        n = min(args.samples, len(ds))
        for i in range(20):  # warm-up
            ds[i]
        t0 = time.process_time()
        for i in range(n):
            ds[i]
        per_single = (time.process_time() - t0) / n
        # what the DataLoader calls: __getitems__ of a batch (one synthesis call per batch)
        order = np.random.default_rng(1).permutation(len(ds))[:n]
        t0 = time.process_time()
        for b in range(0, n, args.batch):
            ds.__getitems__(order[b : b + args.batch].tolist())
        per = (time.process_time() - t0) / n

        # cost split: full-size decode, warp, synthesis (same persons)
        t0 = time.process_time()
        for p in persons[:n]:
            img = cv2.imread(p.image_path, cv2.IMREAD_COLOR)
        t_dec = (time.process_time() - t0) / n
        M = np.array([[0.5, 0.0, 10.0], [0.0, 0.5, 5.0]])
        t0 = time.process_time()
        for _ in range(n):
            cv2.warpAffine(img, M, (args.size[1], args.size[0]), flags=cv2.INTER_LINEAR)
        t_warp = (time.process_time() - t0) / n
        rng = np.random.default_rng(0)
        s = ds[0]
        gt, gv = s["target_keypoints"].double().numpy()[None], s["target_valid"].numpy()[None]
        near = gt[:, None] + np.array([40.0, 0.0])
        t0 = time.process_time()
        for _ in range(n):
            synthesize_poses(gt, gv, near, gv[:, None], np.array([120.0 * 180]), np.array([1]), COCO17, rng)
        t_syn = (time.process_time() - t0) / n

        print(
            f"crop {args.size[0]}x{args.size[1]}, {len(persons)} persons on {args.images} synthetic 640x480 JPEGs "
            f"(mean {np.mean([Path(p.image_path).stat().st_size for p in persons]) / 1024:.0f} KB)"
        )
        print(
            f"single process, batches of {args.batch} (__getitems__): {per * 1e3:.2f} ms CPU per sample = "
            f"{1 / per:.0f} samples/s per core ({1 / per / TARGET_PER_CORE:.2f}x the {TARGET_PER_CORE:.0f}/s target)"
        )
        print(
            f"single process, one sample at a time (__getitem__): {per_single * 1e3:.2f} ms CPU per sample = "
            f"{1 / per_single:.0f} samples/s per core"
        )
        print(
            f"  parts (CPU ms): full-size decode {t_dec * 1e3:.2f}, warp {t_warp * 1e3:.2f}, "
            f"synthesis (1 neighbour, one person per call) {t_syn * 1e3:.2f}"
        )
        print(
            f"  batched sample minus full-size decode: {(per - t_dec) * 1e3:.2f} ms; decode share "
            f"{t_dec / per:.0%}; at the decode cost alone the ceiling is {1 / t_dec:.0f} samples/s per core"
        )

        if args.workers > 0:
            loader = DataLoader(
                ds,
                batch_size=args.batch,
                shuffle=True,
                num_workers=args.workers,
                persistent_workers=True,
                generator=torch.Generator().manual_seed(0),
            )
            it = iter(loader)
            next(it)  # start-up
            got, t0 = 0, time.perf_counter()
            for batch in it:
                got += batch["image"].shape[0]
            wall = time.perf_counter() - t0
            print(
                f"DataLoader, {args.workers} workers, batch {args.batch}: {got / wall:.0f} samples/s wall clock "
                f"({got / wall / args.workers:.0f} per worker)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
