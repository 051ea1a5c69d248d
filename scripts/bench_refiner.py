"""Benchmark of the PoseFix network: crops/s and FLOP utilisation per model, batch size and execution mode.

All configurations run in one process, one after the other, so the ratios in the printed table are comparable
(the absolute numbers depend on what else the machine runs). Random weights in eval mode and random inputs: the
speed of a conv net does not depend on the values.

Mode `ort` runs the network exported to ONNX with ONNX Runtime (CPU execution provider on the CPU, CUDA provider on
a GPU; net/onnx_backend.py), fp32, exported once per model (the export time is printed, not timed). On the CPU
the MFU column uses the derived fp32 peak (`cpu_fp32_peak`: cores x 2 FMA units x SIMD lanes x 2 FLOP x clock)
unless --peak-tflops is given.

`--demo-clip` instead times `refine_video` end to end on the demo clip (synthetic video, simulated tracker, the
committed demo checkpoint) with the torch and the onnxruntime backends, alternating, in one process.

Examples:
    python scripts/bench_refiner.py --models r50-256x192 --batches 32 --modes fp32,bf16-cl --iters 3
    python scripts/bench_refiner.py --batches 16 --modes fp32,compile-fp32-cl,ort --iters 2
    python scripts/bench_refiner.py --demo-clip --iters 3
    python scripts/bench_refiner.py --device cuda --batches 32,128,256 --peak-tflops 790
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a plain script from anywhere
from posefix_video.config import ModelConfig  # noqa: E402
from posefix_video.errors import PosefixError  # noqa: E402
from posefix_video.net.model import build_model, estimate_flops, model_flop_utilization  # noqa: E402

MODELS = {
    "r50-256x192": ModelConfig(depth=50, input_size=(256, 192)),
    "r152-384x288": ModelConfig(depth=152, input_size=(384, 288)),
    "r50-384x288": ModelConfig(depth=50, input_size=(384, 288)),
    "r152-256x192": ModelConfig(depth=152, input_size=(256, 192)),
}
# mode -> (autocast bf16, channels_last, torch.compile)
MODES = {
    "fp32": (False, False, False),
    "fp32-cl": (False, True, False),
    "bf16": (True, False, False),
    "bf16-cl": (True, True, False),
    "compile-fp32-cl": (False, True, True),
    "compile-bf16-cl": (True, True, True),
    "ort": (False, False, False),  # ONNX Runtime on the exported network (fp32)
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="r50-256x192,r152-384x288",
                   help=f"comma-separated, from: {', '.join(MODELS)} (default: %(default)s)")
    p.add_argument("--batches", default="1,8,32", help="comma-separated batch sizes (default: %(default)s)")
    p.add_argument("--modes", default="fp32,fp32-cl,bf16-cl,compile-bf16-cl",
                   help=f"comma-separated, from: {', '.join(MODES)} (default: %(default)s)")
    p.add_argument("--iters", type=int, default=5, help="timed forward passes per configuration (median)")
    p.add_argument("--warmup", type=int, default=1, help="untimed passes first (compilation happens here)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="device peak dense TFLOP/s for the MFU column (e.g. 790 for bf16 on an H200; on the CPU "
                   "default: the derived fp32 peak)")
    p.add_argument("--demo-clip", action="store_true", help="time refine_video on the demo clip with both "
                   "backends instead (--iters runs of each)")
    p.add_argument("--frames", type=int, default=40, help="--demo-clip: frames of the clip")
    p.add_argument("--checkpoint", default=None, help="--demo-clip: checkpoint to refine with (default: the "
                   "committed demo checkpoint, a tiny R-18 at 128x96; its layout must be posetrack18)")
    args = p.parse_args(argv)
    for name, known, what in ((args.models, MODELS, "model"), (args.modes, MODES, "mode")):
        for item in name.split(","):
            if item not in known:
                p.error(f"unknown {what} {item!r}; choose from {', '.join(known)}")
    return args


def cpu_fp32_peak(threads: int | None = None) -> tuple[float, str]:
    """Derived fp32 peak FLOP/s of the cores this process uses, and how it was derived.

    cores (os.sched_getaffinity, at most `threads`) x 2 FMA units per core (AMD Zen 2-4, Intel Skylake and later:
    two 256-bit FMA pipes) x SIMD lanes (8 fp32 with AVX2, 16 with AVX-512F; from /proc/cpuinfo flags) x 2 FLOP
    per FMA x clock (/proc/cpuinfo "cpu MHz": the nominal clock a VM reports; turbo can be higher).
    """
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    mhz = next((float(ln.split(":", 1)[1]) for ln in text.splitlines() if ln.startswith("cpu MHz")), 0.0)
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cores = min(cores, threads or cores)
    peak = cores * 2 * lanes * 2 * mhz * 1e6
    how = (f"{cores} cores x 2 FMA units x {lanes} fp32 lanes ({'AVX-512' if lanes == 16 else 'AVX2'}) x 2 FLOP "
           f"x {mhz / 1e3:.3f} GHz = {peak / 1e9:.0f} GFLOP/s")
    return peak, how


def ort_runner(model: torch.nn.Module, cfg: ModelConfig, batch: int, args: argparse.Namespace):
    """The model exported to a temporary .onnx file, in an ONNX Runtime session."""
    from posefix_video.net.onnx_backend import OnnxRunner, export_network

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = export_network(model, cfg, Path(tmp) / "net.onnx")
        runner = OnnxRunner.from_file(path, device=args.device, batch_size=batch, threads=args.threads)
        print(f"  (ONNX export + session: {time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return runner


def time_config(model: torch.nn.Module, cfg: ModelConfig, batch: int, mode: str,
                args: argparse.Namespace) -> tuple[float, float]:
    """Median wall seconds and median process CPU seconds of one forward of `batch` crops."""
    bf16, channels_last, compiled = MODES[mode]
    device = torch.device(args.device)
    if mode == "ort":
        model = model.to(device, memory_format=torch.contiguous_format)
        net = ort_runner(model, cfg, batch, args)
        x = torch.randn(batch, model.in_channels, *cfg.input_size, device=device)
        return _median_time(net, x, device, args, contextlib.nullcontext())
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=fmt)
    net = torch.compile(model) if compiled else model
    x = torch.randn(batch, model.in_channels, *cfg.input_size, device=device).contiguous(memory_format=fmt)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    return _median_time(net, x, device, args, autocast)


def _median_time(net, x: torch.Tensor, device: torch.device, args: argparse.Namespace,
                 autocast) -> tuple[float, float]:
    times, cpu = [], []
    with torch.inference_mode(), autocast:
        for i in range(args.warmup + args.iters):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0, c0 = time.perf_counter(), time.process_time()
            net(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
    return statistics.median(times), statistics.median(cpu)


def demo_clip(args: argparse.Namespace) -> None:
    """refine_video on the demo clip, torch vs onnxruntime backend, alternating runs (median of --iters each)."""
    from posefix_video.demo import DEMO_CHECKPOINT, ClipSpec, make_clip, simulate_tracks
    from posefix_video.net.refiner import Refiner
    from posefix_video.synthetic.tracker_sim import TrackerSimSettings
    from posefix_video.video.refine_video import refine_video

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = make_clip(tmp / "clip", ClipSpec(frames=args.frames))
        tracks = simulate_tracks(clip, tmp / "tracks", TrackerSimSettings.training(), seed=0)
        t0 = time.perf_counter()
        ckpt = Path(args.checkpoint) if args.checkpoint else DEMO_CHECKPOINT
        refiners = {b: Refiner.from_checkpoint(ckpt, device=args.device, backend=b, batch_size=128)
                    for b in ("torch", "onnxruntime")}  # 64 persons per chunk, flip test: 128 crops
        print(f"refiners built in {time.perf_counter() - t0:.1f} s (ONNX export cached beside the checkpoint)")
        times: dict[str, list[float]] = {b: [] for b in refiners}
        persons = frames = 0
        for i in range(args.warmup + args.iters):
            for name, refiner in refiners.items():
                t0 = time.perf_counter()
                s = refine_video(clip.video, tracks, out=tmp / name / clip.gt.name, refiner=refiner, batch_size=64,
                                 seq_name=clip.gt.stem, decoder="pyav")
                if i >= args.warmup:
                    times[name].append(time.perf_counter() - t0)
                persons, frames = s.persons, s.frames
    print(f"demo clip: {frames} frames, {persons} persons, checkpoint {ckpt.name}, flip test on, "
          f"threads {torch.get_num_threads()}, median of {args.iters}")
    base = statistics.median(times["torch"])
    for name, ts in times.items():
        sec = statistics.median(ts)
        print(f"{name:<12} {sec:8.2f} s  {frames / sec:7.1f} frames/s  {persons / sec:7.1f} persons/s  "
              f"x torch {base / sec:5.2f}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.demo_clip:
        demo_clip(args)
        return
    print(f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"iters {args.iters} (median), warmup {args.warmup}")
    if args.peak_tflops is None and args.device == "cpu":
        peak, how = cpu_fp32_peak(args.threads)
        args.peak_tflops = peak / 1e12
        print(f"CPU fp32 peak (derived): {how}")
    header = (f"{'model':<14} {'batch':>5} {'mode':<16} {'ms/batch':>10} {'crops/s':>9} {'GFLOP/s':>9} "
              f"{'x fp32':>7} {'crops/CPU-s':>11} {'x fp32':>7}")
    header += f" {'MFU':>6}" if args.peak_tflops else ""
    print(header)
    for name in args.models.split(","):
        cfg = MODELS[name]
        torch.manual_seed(0)
        model = build_model(cfg).eval()
        flops = estimate_flops(model, cfg.input_size)
        for batch in (int(b) for b in args.batches.split(",")):
            base = None
            for mode in args.modes.split(","):
                try:
                    sec, cpu = time_config(model, cfg, batch, mode, args)
                except PosefixError as err:  # e.g. ort on CUDA without onnxruntime-gpu
                    print(f"{name:<14} {batch:>5} {mode:<16} n/a: {err}", flush=True)
                    continue
                rate, cpu_rate = batch / sec, batch / max(cpu, 1e-9)
                base = (rate, cpu_rate) if mode == "fp32" or base is None else base
                # crops per CPU-second (all threads of the process): with --threads 1 (no spin-waiting threads)
                # it does not depend on what else runs on a shared machine, unlike wall time
                row = (f"{name:<14} {batch:>5} {mode:<16} {sec * 1e3:>10.1f} {rate:>9.2f} "
                       f"{rate * flops / 1e9:>9.1f} {rate / base[0]:>7.2f} {cpu_rate:>11.2f} "
                       f"{cpu_rate / base[1]:>7.2f}")
                if args.peak_tflops:
                    row += f" {model_flop_utilization(rate, flops, args.peak_tflops * 1e12):>6.1%}"
                print(row, flush=True)


if __name__ == "__main__":
    main()
