"""Benchmark of the streaming refinement: decode-only, network-only and end-to-end on the same clip in one run,
and the peak memory (RSS high-water mark) of end-to-end runs on a short clip and a 10x longer one.

Each measurement runs in its own subprocess, so its VmHWM is its own. Clips (frames with moving content, the frame
index barcode, tracked persons) and a tiny untrained checkpoint are generated in a temporary folder.

    python scripts/bench_pipeline.py [--frames 60] [--persons 4] [--size 320x240] [--decoder pyav] [--device cpu]
    python scripts/bench_pipeline.py --memory [--frames 150] [--persons 2] [--decoders decord,pyav,opencv]

Targets: end-to-end wall time <= 1.15x the slower of decode-only and network-only; long-clip peak memory <= 1.1x
the short clip's. `--memory` measures only the memory target, per decoder, with the committed demo checkpoint
(assets/demo_checkpoint.pth) at the default batch size and a person on every frame, each run in its own process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_clip(path: Path, n: int, hw: tuple[int, int]) -> None:
    from posefix_video.video.barcode import draw_barcode
    from posefix_video.video.encode import VideoEncoder

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 60, size=(*hw, 3), dtype=np.uint8)
    enc = VideoEncoder(path, Fraction(30), hw, crf=23)
    ys, xs = np.mgrid[: hw[0], : hw[1]]
    for i in range(n):
        frame = ((xs + 3 * i) % 256).astype(np.uint8)[..., None].repeat(3, -1) // 2 + noise
        enc.write(draw_barcode(frame, i % 65536))
    enc.close()


def make_tracks(path: Path, n: int, persons: int, hw: tuple[int, int]) -> None:
    from posefix_video.io import write_posetrack18
    from posefix_video.keypoints import POSETRACK18
    from posefix_video.records import PersonRecord, PoseSequence

    h, w = hw
    rng = np.random.default_rng(1)
    base = rng.uniform([0.1 * w, 0.3 * h], [0.9 * w, 0.7 * h], size=(persons, 17, 2))
    seq = PoseSequence(name="000001_mpiinew_test", layout=POSETRACK18, num_frames=n)
    present = np.ones(17, bool)
    present[[3, 4]] = False
    for f in range(n):
        for t in range(persons):
            kp = base[t] * 0.3 + base[t].mean(0) * 0.7 + rng.normal(0, 2, (17, 2))
            seq.add(PersonRecord(frame=f, track_id=t, keypoints=kp * present[:, None], scores=present * 0.9,
                                 present=present, visibility=present.astype(float)))
    write_posetrack18(seq, path, image_size=(w, h))


def make_checkpoint(path: Path) -> None:
    import torch

    from posefix_video.config import ModelConfig
    from posefix_video.net.checkpoint import save_checkpoint
    from posefix_video.net.model import build_model

    torch.manual_seed(0)
    cfg = ModelConfig(depth=18, input_size=(128, 96), layout="posetrack18", width=16, deconv_channels=32)
    save_checkpoint(path, build_model(cfg), cfg)


def measure(kind: str, clip: str, tracks: str, ckpt: str, decoder: str, device: str, batch: int) -> dict:
    """Runs in a child process; returns seconds and VmHWM."""
    import torch

    torch.set_num_threads(torch.get_num_threads())
    from posefix_video.video import FrameStream, open_frames
    from posefix_video.video.refine_video import load_refiner, refine_video

    t0 = time.perf_counter()
    if kind == "decode":
        n = sum(1 for _ in FrameStream(open_frames(clip, decoder=decoder)))
        extra = {"frames": n}
    elif kind == "network":
        from posefix_video.io import read_tracks

        refiner = load_refiner(ckpt, device=device, batch_size=batch)
        seq = read_tracks(tracks)
        first = next(iter(open_frames(clip, decoder=decoder).frames()))
        per_frame = max(1, len(seq.persons_in(0)))
        chunk = max(1, min(32, -(-batch // per_frame)))
        frames = torch.from_numpy(np.stack([first] * chunk))
        t0 = time.perf_counter()  # the network alone: same chunks of persons, frames already decoded
        persons = 0
        for start in range(0, seq.num_frames, chunk):
            recs = [p.replace(frame=p.frame - start) for f in range(start, min(start + chunk, seq.num_frames))
                    for p in seq.persons_in(f)]
            refiner.refine_records(frames, recs, frame_offset=0)
            persons += len(recs)
        extra = {"persons": persons}
    else:
        with tempfile.TemporaryDirectory() as tmp:
            s = refine_video(clip, tracks, ckpt, out=Path(tmp) / "out.json", decoder=decoder, device=device,
                             batch_size=batch)
        extra = {"frames": s.frames, "persons": s.persons}
    return {"kind": kind, "seconds": time.perf_counter() - t0, "hwm_mb": vm_hwm_mb(), **extra}


def child(kind: str, *args: str) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=30, help="frames of the short clip (the long one has 10x)")
    p.add_argument("--persons", type=int, default=4, help="persons per frame")
    p.add_argument("--size", default="320x240", help="frame WxH")
    p.add_argument("--decoder", default="pyav", choices=["decord", "pyav", "opencv"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--memory", action="store_true", help="peak memory only: short vs 10x clip, per decoder, "
                   "demo checkpoint")
    p.add_argument("--decoders", default="decord,pyav,opencv", help="with --memory: decoders to measure")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        kind, clip, tracks, ckpt, decoder, device, batch = args.child
        print(json.dumps(measure(kind, clip, tracks, ckpt, decoder, device, int(batch))))
        return
    if args.memory:
        memory(args)
        return
    w, h = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_checkpoint(tmp / "tiny.pt")
        clips = {}
        for name, n in (("short", args.frames), ("long", 10 * args.frames)):
            make_clip(tmp / f"{name}.mp4", n, (h, w))
            make_tracks(tmp / f"{name}.json", n, args.persons, (h, w))
            clips[name] = (str(tmp / f"{name}.mp4"), str(tmp / f"{name}.json"))
        common = [str(tmp / "tiny.pt"), args.decoder, args.device, str(args.batch_size)]
        long_clip = clips["long"]
        dec = child("decode", *long_clip, *common)
        net = child("network", *long_clip, *common)
        e2e = child("e2e", *long_clip, *common)
        short_mem = child("e2e", *clips["short"], *common)
    slower = max(dec["seconds"], net["seconds"])
    print(f"clip: {10 * args.frames} frames {w}x{h}, {args.persons} persons/frame, decoder {args.decoder}, "
          f"device {args.device}, batch {args.batch_size}")
    print(f"decode-only   {dec['seconds']:7.2f} s  ({dec['frames'] / dec['seconds']:.0f} frames/s)")
    print(f"network-only  {net['seconds']:7.2f} s  ({net['persons'] / net['seconds']:.0f} persons/s)")
    print(f"end-to-end    {e2e['seconds']:7.2f} s  ({e2e['frames'] / e2e['seconds']:.0f} frames/s, "
          f"{e2e['persons'] / e2e['seconds']:.0f} persons/s)")
    print(f"ratio end-to-end / slower stage: {e2e['seconds'] / slower:.3f}  (target <= 1.15)")
    print(f"peak RSS short clip ({args.frames} frames): {short_mem['hwm_mb']:.0f} MB; "
          f"long clip ({10 * args.frames} frames): {e2e['hwm_mb']:.0f} MB")
    print(f"ratio peak memory long / short: {e2e['hwm_mb'] / short_mem['hwm_mb']:.3f}  (target <= 1.1)")


def memory(args: argparse.Namespace) -> None:
    """Peak RSS of end-to-end runs on a short clip and a 10x longer one, per decoder (the memory target)."""
    w, h = map(int, args.size.split("x"))
    ckpt = str(REPO / "assets" / "demo_checkpoint.pth")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = {}
        for name, n in (("short", args.frames), ("long", 10 * args.frames)):
            make_clip(tmp / f"{name}.mp4", n, (h, w))
            make_tracks(tmp / f"{name}.json", n, args.persons, (h, w))
            clips[name] = (str(tmp / f"{name}.mp4"), str(tmp / f"{name}.json"))
        for decoder in args.decoders.split(","):
            common = [ckpt, decoder, args.device, str(args.batch_size)]
            short = child("e2e", *clips["short"], *common)
            long = child("e2e", *clips["long"], *common)
            rows.append((decoder, short, long))
            print(f"{decoder:7s} peak RSS {args.frames} frames {short['hwm_mb']:6.0f} MB ({short['seconds']:.0f} s), "
                  f"{10 * args.frames} frames {long['hwm_mb']:6.0f} MB ({long['seconds']:.0f} s): ratio "
                  f"{long['hwm_mb'] / short['hwm_mb']:.3f}  (target <= 1.1)", flush=True)
    print(f"clip {w}x{h} H.264, {args.persons} persons on every frame, demo checkpoint, batch {args.batch_size}, "
          f"device {args.device}")


if __name__ == "__main__":
    main()
