"""Cost of the top-down initializer's cv2-exact crop (net/warp.py) next to the refiner's grid_sample crop
(net/crop.py): the same P boxes on F frames, both batched, timed in one run; prints the ratio.

    python scripts/bench_topdown_crop.py [--persons 64] [--frames 8] [--device cpu] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from posefix_video import geometry
from posefix_video.net.crop import sample_crops, stack_frames
from posefix_video.net.topdown_codec import box_center_scale, crop_matrices
from posefix_video.net.warp import pad_frames, warp_affine_exact


def _time(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--persons", type=int, default=64)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    # smooth content (random 45x80 images upsampled x16), as camera frames are; pure noise exaggerates differences
    low = torch.from_numpy(rng.uniform(0, 255, (args.frames, 3, 45, 80)).astype(np.float32))
    frames = torch.nn.functional.interpolate(low, size=(720, 1280), mode="bicubic", align_corners=False)
    frames = frames.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().to(device)
    P = args.persons
    boxes = np.concatenate([rng.uniform([0, 0], [1100, 500], (P, 2)), rng.uniform([40, 100], [200, 400], (P, 2))], 1)
    fidx = torch.as_tensor(rng.integers(0, args.frames, P), device=device)
    hw = (256, 192)
    centre, size = box_center_scale(boxes, "mmpose", hw)
    M_exact = torch.as_tensor(crop_matrices(centre, size, "mmpose", hw), device=device)
    M_float = torch.as_tensor(geometry.crop_affine(centre, size, hw), device=device)
    padded = pad_frames(frames)
    stack = stack_frames(frames, device)
    t_exact = _time(lambda: warp_affine_exact(padded, fidx, M_exact, hw), args.repeats, device)
    t_float = _time(lambda: sample_crops(stack, fidx, M_float, hw), args.repeats, device)
    diff = (warp_affine_exact(padded, fidx, M_exact, hw).int() - sample_crops(stack, fidx, M_float, hw).int()).abs()
    print(f"{P} crops 256x192 from {args.frames} frames of 1280x720 on {device}: cv2-exact {t_exact * 1e3:.1f} ms, "
          f"grid_sample {t_float * 1e3:.1f} ms, ratio {t_exact / t_float:.2f}; crops differ by <= {int(diff.max())} "
          f"grey levels on {(diff > 0).float().mean().item() * 100:.2f}% of the values")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
