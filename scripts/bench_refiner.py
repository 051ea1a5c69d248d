"""Benchmark of the PoseFix network: crops/s and FLOP utilisation per model, batch size and execution mode.

All configurations run in one process, one after the other, so the ratios in the printed table are comparable
(the absolute numbers depend on what else the machine runs). Random weights in eval mode and random inputs: the
speed of a conv net does not depend on the values.

Examples:
    python scripts/bench_refiner.py --models r50-256x192 --batches 32 --modes fp32,bf16-cl --iters 3
    python scripts/bench_refiner.py --device cuda --batches 32,128,256 --peak-tflops 790
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a plain script from anywhere
from posefix_video.config import ModelConfig  # noqa: E402
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
                   help="device peak dense TFLOP/s for the MFU column (e.g. 790 for bf16 on an H200)")
    args = p.parse_args(argv)
    for name, known, what in ((args.models, MODELS, "model"), (args.modes, MODES, "mode")):
        for item in name.split(","):
            if item not in known:
                p.error(f"unknown {what} {item!r}; choose from {', '.join(known)}")
    return args


def time_config(model: torch.nn.Module, cfg: ModelConfig, batch: int, mode: str, args: argparse.Namespace) -> float:
    """Median seconds of one forward of `batch` crops."""
    bf16, channels_last, compiled = MODES[mode]
    device = torch.device(args.device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=fmt)
    net = torch.compile(model) if compiled else model
    x = torch.randn(batch, model.in_channels, *cfg.input_size, device=device).contiguous(memory_format=fmt)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    times = []
    with torch.inference_mode(), autocast:
        for i in range(args.warmup + args.iters):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            net(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"iters {args.iters} (median), warmup {args.warmup}")
    header = f"{'model':<14} {'batch':>5} {'mode':<16} {'ms/batch':>10} {'crops/s':>9} {'GFLOP/s':>9} {'x fp32':>7}"
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
                sec = time_config(model, cfg, batch, mode, args)
                rate = batch / sec
                base = rate if mode == "fp32" or base is None else base
                row = (f"{name:<14} {batch:>5} {mode:<16} {sec * 1e3:>10.1f} {rate:>9.2f} "
                       f"{rate * flops / 1e9:>9.1f} {rate / base:>7.2f}")
                if args.peak_tflops:
                    row += f" {model_flop_utilization(rate, flops, args.peak_tflops * 1e12):>6.1%}"
                print(row, flush=True)


if __name__ == "__main__":
    main()
