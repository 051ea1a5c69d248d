"""Synthetic renderer throughput on one core: frames per second at 640x480, rendering alone and with JPEG.

    python scripts/bench_render.py [--frames 300] [--size 640x480] [--tracks 4-6]

Renders one synthetic PoseTrack-style video (static background, people moving; per-frame part-label map and
ground truth included) with OpenCV limited to one thread, then the same frames plus JPEG encoding, and prints
frames per second of each and their ratio.
"""

from __future__ import annotations

import argparse
import time

import cv2

from posefix_video.synthetic.posetrack_videos import VideoSettings, render_video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--tracks", default="4-6", help="people per video MIN-MAX")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    w, h = (int(v) for v in args.size.split("x"))
    lo, hi = (int(v) for v in args.tracks.split("-"))
    settings = VideoSettings(num_videos=1, num_frames=args.frames, seed=args.seed, width=w, height=h,
                             min_tracks=lo, max_tracks=hi)  # fmt: skip
    persons = 0
    t0 = time.perf_counter()
    for _, _, _, truths in render_video(settings, 0):
        persons += len(truths)
    render_s = time.perf_counter() - t0
    params = [int(cv2.IMWRITE_JPEG_QUALITY), 92]
    t0 = time.perf_counter()
    for _, image, _, _ in render_video(settings, 0):
        cv2.imencode(".jpg", image, params)
    jpeg_s = time.perf_counter() - t0
    n = args.frames
    print(f"{n} frames {w}x{h}, {persons / n:.1f} persons/frame, 1 OpenCV thread")
    print(f"render (image + label map + ground truth): {n / render_s:.1f} frames/s")
    print(f"render + JPEG encode:                       {n / jpeg_s:.1f} frames/s")
    print(f"JPEG share of the time: {(jpeg_s - render_s) / jpeg_s:.0%}")


if __name__ == "__main__":
    main()
