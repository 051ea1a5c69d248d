"""Synthetic renderer throughput on one core: frames per second at 640x480, rendering alone and with JPEG.

    python scripts/bench_render.py [--frames 300] [--size 640x480] [--tracks 4-6]

Renders one synthetic PoseTrack-style video (static background, people moving; per-frame part-label map and
ground truth included) with OpenCV limited to one thread, then the same frames plus JPEG encoding, and prints
frames per second of each (wall clock and per CPU second, best of --repeats interleaved passes) and the JPEG
share. Pin to one core with `taskset -c 0` for a one-core number.
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
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    w, h = (int(v) for v in args.size.split("x"))
    lo, hi = (int(v) for v in args.tracks.split("-"))
    settings = VideoSettings(num_videos=1, num_frames=args.frames, seed=args.seed, width=w, height=h,
                             min_tracks=lo, max_tracks=hi)  # fmt: skip
    n = args.frames

    def run(encode: bool) -> tuple[float, float, int]:
        """(wall s, CPU s, persons) of one pass over the video."""
        persons = 0
        params = [int(cv2.IMWRITE_JPEG_QUALITY), 92]
        w0, c0 = time.perf_counter(), time.process_time()
        for _, image, _, truths in render_video(settings, 0):
            persons += len(truths)
            if encode:
                cv2.imencode(".jpg", image, params)
        return time.perf_counter() - w0, time.process_time() - c0, persons

    # Best of `repeats` interleaved passes: the machine is shared, the best pass is the least disturbed one.
    runs = {False: [], True: []}
    for _ in range(args.repeats):
        for encode in (False, True):
            runs[encode].append(run(encode))
    persons = runs[False][0][2]
    print(f"{n} frames {w}x{h}, {persons / n:.1f} persons/frame, 1 OpenCV thread, best of {args.repeats}")
    for encode, label in ((False, "render (image + label map + ground truth)"), (True, "render + JPEG encode")):
        wall = min(r[0] for r in runs[encode])
        cpu = min(r[1] for r in runs[encode])
        print(f"{label:42s} {n / wall:7.1f} frames/s wall, {n / cpu:7.1f} frames/s per CPU second")
    ratio = min(r[1] for r in runs[False]) / min(r[1] for r in runs[True])
    print(f"JPEG encoding costs {1 - ratio:.0%} of render + encode (CPU time)")

if __name__ == "__main__":
    main()
