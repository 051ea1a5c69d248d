"""Training-loader throughput: samples per second per CPU core at a given crop size (decode, synthesis, warp).

Makes a small synthetic COCO-format set itself (random 640x480 JPEGs of smooth noise, 4:4:4 at quality 90 and
~160 KB like COCO's files, with random persons' boxes and keypoints; no real people needed), then measures in one run:

1. one process, no workers: CPU time per sample (time.process_time) of batched fetches, the median of several
   repeats (these machines are noisy) -> samples/s per core, with the cost split into JPEG decode (ours and
   cv2.imread), warp, and error synthesis;
2. the same with a decode-once image bank (data.image_bank): per-sample cost, and the cost per sample of one epoch
   when the bank's build is counted in it;
3. a DataLoader with --workers processes: wall-clock samples/s.

The issue's target is >= 350 samples/s per core at 256x192 (performance.md A5).

    python scripts/bench_dataloader.py                     # 256x192
    python scripts/bench_dataloader.py --size 384 288 --workers 2
    python scripts/bench_dataloader.py --coco ../shared/data/coco_mmpose/test_coco.json ../shared/data/coco_mmpose
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

from posefix_video.keypoints import COCO17  # noqa: E402
from posefix_video.synthesis import synthesize_poses  # noqa: E402
from posefix_video.train.data import ImageBank, PoseFixDataset, load_coco_persons  # noqa: E402
from posefix_video.train.data.image_decode import ImageDecoder  # noqa: E402

TARGET_PER_CORE = 350.0
# COCO's JPEGs are 4:4:4 at high quality (the 4 real samples in ../shared/data all are), ~160 KB for ~640x480:
# the default. "420" makes the earlier, lighter set (OpenCV's default 4:2:0, ~100 KB), which flatters the loader.
JPEG_KINDS = {
    "444": (22, [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]),
    "420": (24, [cv2.IMWRITE_JPEG_QUALITY, 90]),
}


def make_coco_set(folder: Path, num_images: int, seed: int = 0, kind: str = "444") -> Path:
    """Writes num_images random COCO-like 640x480 JPEGs and a COCO keypoint file with 1-5 persons per image."""
    rng = np.random.default_rng(seed)
    noise, params = JPEG_KINDS[kind]
    images, anns = [], []
    for i in range(num_images):
        low = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
        img = cv2.resize(low, (640, 480), interpolation=cv2.INTER_CUBIC)
        img = cv2.add(img, rng.integers(0, noise, img.shape, dtype=np.uint8))
        name = f"{i:06d}.jpg"
        cv2.imwrite(str(folder / name), img, params)
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


def _median_run(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, nargs=2, default=(256, 192), metavar=("H", "W"), help="crop size")
    ap.add_argument("--images", type=int, default=200, help="synthetic images to generate")
    ap.add_argument("--samples", type=int, default=640, help="samples timed per repeat in the single-process run")
    ap.add_argument("--repeats", type=int, default=5, help="repeats of the single-process run (median reported)")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers for the second measurement")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--jpeg", choices=sorted(JPEG_KINDS), default="444", help="synthetic JPEG chroma subsampling")
    ap.add_argument("--no-reduced-decode", action="store_true", help="always decode JPEGs at full size")
    ap.add_argument("--coco", nargs=2, metavar=("ANN", "IMAGES"), help="a real COCO keypoint file and image folder "
                    "instead of the synthetic set (samples are drawn with repetition when it is small)")  # fmt: skip
    args = ap.parse_args(argv)

    import torch
    from torch.utils.data import DataLoader

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.coco:
            persons = load_coco_persons(args.coco[0], args.coco[1])
            source = f"{len(persons)} persons of {args.coco[0]}"
        else:
            persons = load_coco_persons(make_coco_set(folder, args.images, kind=args.jpeg), folder)
            source = f"{len(persons)} persons on {args.images} synthetic 640x480 {args.jpeg} JPEGs"
        ds = PoseFixDataset(
            persons=persons, layout=COCO17, input_hw=tuple(args.size), seed=0, reduced_decode=not args.no_reduced_decode
        )
        n = args.samples
        rng = np.random.default_rng(1)
        order = rng.integers(0, len(ds), n) if n > len(ds) else rng.permutation(len(ds))[:n]
        batches = [order[b : b + args.batch].tolist() for b in range(0, n, args.batch)]
        for b in batches[:2]:  # warm-up
            ds.__getitems__(b)

        # what the DataLoader calls: __getitems__ of a batch
        runs = np.array(_median_run(lambda: [ds.__getitems__(b) for b in batches], args.repeats)) / n
        per = float(np.median(runs))
        single = _median_run(lambda: [ds[int(i)] for i in order[: n // 4]], 1)[0] / (n // 4)

        # cost split on the same persons: decode (ours, and cv2.imread for comparison), warp, batched synthesis
        paths = [persons[int(i)].image_path for i in order]
        dec = ImageDecoder()
        t_dec = float(np.median(_median_run(lambda: [dec.decode(p) for p in paths], 3))) / n
        t_cv2 = float(np.median(_median_run(lambda: [cv2.imread(p, cv2.IMREAD_COLOR) for p in paths], 3))) / n
        img = cv2.imread(paths[0], cv2.IMREAD_COLOR)
        M = np.array([[0.5, 0.0, 10.0], [0.0, 0.5, 5.0]])
        out = np.empty((args.size[0], args.size[1], 3), np.uint8)
        t_warp = _median_run(lambda: [cv2.warpAffine(img, M, (args.size[1], args.size[0]), dst=out)
                                      for _ in range(n)], 1)[0] / n  # fmt: skip
        s = ds.__getitems__(batches[0])
        gt = np.stack([x["target_keypoints"].double().numpy() for x in s])
        gv = np.stack([x["target_valid"].numpy() for x in s])
        near = gt[:, None] + np.array([40.0, 0.0])
        rng = np.random.default_rng(0)
        area = np.full(len(s), 120.0 * 180)
        t_syn = _median_run(lambda: [synthesize_poses(gt, gv, near, gv[:, None], area, np.ones(len(s)), COCO17, rng)
                                     for _ in range(10)], 1)[0] / (10 * len(s))  # fmt: skip

        sizes = [Path(p).stat().st_size for p in paths]
        print(f"crop {args.size[0]}x{args.size[1]}, {source} (mean JPEG {np.mean(sizes) / 1024:.0f} KB)")
        print(
            f"single process, batches of {args.batch} (__getitems__), {args.repeats} x {n} samples: median "
            f"{per * 1e3:.2f} ms CPU per sample = {1 / per:.0f} samples/s per core "
            f"({1 / per / TARGET_PER_CORE:.2f}x the {TARGET_PER_CORE:.0f}/s target; runs "
            f"{', '.join(f'{1 / r:.0f}' for r in runs)} samples/s)"
        )
        print(f"single process, one sample at a time (__getitem__): {single * 1e3:.2f} ms CPU per sample = "
              f"{1 / single:.0f} samples/s per core")  # fmt: skip
        print(
            f"  parts (CPU ms per sample): decode {t_dec * 1e3:.2f} (cv2.imread {t_cv2 * 1e3:.2f}, "
            f"{t_cv2 / t_dec:.2f}x ours), warp {t_warp * 1e3:.2f}, synthesis in a batch of {len(s)} with 1 neighbour "
            f"{t_syn * 1e3:.2f}; the rest {(per - t_dec - t_warp - t_syn) * 1e3:.2f}"
        )
        print(f"  decode share {t_dec / per:.0%}; at the decode cost alone the ceiling is {1 / t_dec:.0f} samples/s "
              "per core")  # fmt: skip

        # the decode-once image bank: build cost per image, then per-sample cost of crops from the mapped pixels
        t0 = time.process_time()
        bank = ImageBank.build(folder / "bank", [p.image_path for p in persons])
        t_build = (time.process_time() - t0) / len(bank)
        banked = PoseFixDataset(persons=persons, layout=COCO17, input_hw=tuple(args.size), seed=0, image_bank=bank)
        for b in batches[:2]:
            banked.__getitems__(b)
        bank_runs = np.array(_median_run(lambda: [banked.__getitems__(b) for b in batches], args.repeats)) / n
        per_bank = float(np.median(bank_runs))
        per_image = len(persons) / len(bank)
        first_epoch = per_bank + t_build / per_image
        print(
            f"image bank ({len(bank)} images, {bank.nbytes / 1e6:.0f} MB, build {t_build * 1e3:.2f} ms CPU per image): "
            f"median {per_bank * 1e3:.2f} ms CPU per sample = {1 / per_bank:.0f} samples/s per core "
            f"({1 / per_bank / TARGET_PER_CORE:.2f}x target); counting the build in a single epoch "
            f"({per_image:.2f} persons per image): {1 / first_epoch:.0f} samples/s per core "
            f"({1 / first_epoch / TARGET_PER_CORE:.2f}x target)"
        )

        if args.workers > 0:
            for label, dataset in (("decoding", ds), ("image bank", banked)):
                loader = DataLoader(dataset, batch_size=args.batch, shuffle=True, num_workers=args.workers,
                                    persistent_workers=True, generator=torch.Generator().manual_seed(0))  # fmt: skip
                it = iter(loader)
                next(it)  # start-up
                got, t0 = 0, time.perf_counter()
                for batch in it:
                    got += batch["image"].shape[0]
                wall = time.perf_counter() - t0
                print(
                    f"DataLoader ({label}), {args.workers} workers, batch {args.batch}: {got / wall:.0f} samples/s "
                    f"wall clock ({got / wall / args.workers:.0f} per worker, IPC and the main process included)"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
