"""Everything docs/benchmarks.md still lacks on a GPU, measured in one run (< 8 min on one H200), as one markdown
table. Run through scripts/gpu_check.sh; `--smoke` runs every section at toy sizes on the CPU (seconds; tested).

Rows:
  * bf16 matmul ceiling: 8192^3 torch.matmul TFLOP/s, the denominator of every MFU below (measured, not the
    datasheet).
  * refiner persons/s, R-50 256x192 and R-152 384x288: `Refiner.refine_arrays` on 1080p frames resident on the
    GPU (crops, input heatmaps, network, soft-argmax, mapping back), flip test on (2 crops per person), bf16
    autocast + channels_last, eager and torch.compile (batches padded to a fixed size). MFU = persons/s x 2 x
    forward GFLOP / ceiling.
  * refine_video on a 1080p clip (R-50 256x192, random weights, opencv decoder): decode-only, network-only and
    end-to-end seconds; end-to-end / slowest stage (the overlap of decoding and the network; 1.0 is perfect).
  * training R-50 256x192: samples/s of full steps (input rendering, forward, loss, backward, Adam) on a fixed
    batch, bf16 + channels_last; MFU with 3 x forward FLOPs per sample.
  * ONNX Runtime CUDA execution provider vs torch, R-50 256x192 fp32 network (needs onnxruntime-gpu; else n/a).

Each section is timed on its own and a failing one is reported in its row; sections that would start after
--budget-s are skipped (and say so).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a plain script from the repository
from posefix_video.config import ModelConfig  # noqa: E402
from posefix_video.net.model import build_model, estimate_flops  # noqa: E402

FULL = {"R-50 256x192": ModelConfig(depth=50, input_size=(256, 192)),
        "R-152 384x288": ModelConfig(depth=152, input_size=(384, 288))}
TINY = {"tiny R-18/8 64x64": ModelConfig(depth=18, input_size=(64, 64), width=8, deconv_channels=16)}


class Table:
    def __init__(self):
        self.rows: list[tuple[str, ...]] = []

    def add(self, *cells: str) -> None:
        self.rows.append(tuple(cells))
        print("  " + " | ".join(cells), file=sys.stderr, flush=True)

    def markdown(self) -> str:
        head = "| measurement | configuration | result | MFU / ratio |\n|---|---|---|---|\n"
        return head + "".join("| " + " | ".join(r) + " |\n" for r in self.rows)


def num(x: float) -> str:
    """Three significant figures at least, thousands separated."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}" if x >= 1 else f"{x:.3g}"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, warmup: int, iters: int) -> float:
    """Median seconds of fn() after warm-up."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_ceiling(device: torch.device, smoke: bool) -> float:
    n, dtype = (256, torch.float32) if smoke else (8192, torch.bfloat16)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    sec = timed(lambda: a @ b, device, 3, 3 if smoke else 10)
    return 2 * n**3 / sec


def poses(n: int, hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(n, 17, 2) person-sized random poses inside an H x W frame."""
    h, w = hw
    height = rng.uniform(0.25, 0.6, (n, 1, 1)) * h
    centre = np.stack([rng.uniform(0.2, 0.8, n) * w, rng.uniform(0.3, 0.7, n) * h], -1)[:, None]
    return centre + rng.uniform(-0.5, 0.5, (n, 17, 2)) * height * np.array([0.4, 1.0])


def refiner_rate(cfg: ModelConfig, device: torch.device, compile: bool, persons: int, smoke: bool) -> float:
    """Persons/s of Refiner.refine_arrays, flip test on, frames resident on the device."""
    from posefix_video.net.refiner import Refiner

    torch.manual_seed(0)
    cuda = device.type == "cuda"
    refiner = Refiner.from_model(build_model(cfg), cfg, device=device, flip_test=True,
                                 precision="bf16" if cuda else "fp32", channels_last=cuda, compile=compile,
                                 batch_size=2 * persons)
    hw = (120, 160) if smoke else (1080, 1920)
    frames = torch.randint(0, 256, (4, *hw, 3), dtype=torch.uint8, device=device)
    kp = poses(persons, hw, np.random.default_rng(0))
    index, present = np.arange(persons) % 4, np.ones((persons, 17), bool)
    sec = timed(lambda: refiner.refine_arrays(frames, index, kp, present), device,
                1 if smoke else 3, 1 if smoke else 10)
    return persons / sec


def write_clip(path: Path, tracks: Path, frames: int, persons: int, hw: tuple[int, int]) -> None:
    """An mp4v clip (OpenCV: no PyAV needed) with moving content, and PoseTrack18 tracks for it."""
    import cv2

    from posefix_video.io import write_posetrack18
    from posefix_video.keypoints import POSETRACK18
    from posefix_video.records import PersonRecord, PoseSequence

    h, w = hw
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    ramp = (np.arange(w, dtype=np.int64)[None, :, None] + np.zeros((h, 1, 3), np.int64))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (w, h))
    for i in range(frames):
        writer.write((((ramp + 4 * i) % 256) // 2).astype(np.uint8) + noise)
    writer.release()
    base = poses(persons, hw, rng)
    seq = PoseSequence(name="000001_mpiinew_test", layout=POSETRACK18, num_frames=frames)
    present = np.ones(17, bool)
    present[[3, 4]] = False  # PoseTrack ears
    for f in range(frames):
        for t in range(persons):
            kp = base[t] + rng.normal(0, 2, (17, 2))
            seq.add(PersonRecord(frame=f, track_id=t, keypoints=kp * present[:, None], scores=present * 0.9,
                                 present=present, visibility=present.astype(float)))
    write_posetrack18(seq, tracks, image_size=(w, h))


def refine_video_1080p(cfg: ModelConfig, device: torch.device, smoke: bool, tmp: Path) -> dict[str, float]:
    from posefix_video.io import read_tracks
    from posefix_video.net.checkpoint import save_checkpoint
    from posefix_video.video import FrameStream, open_frames
    from posefix_video.video.refine_video import load_refiner, refine_video

    frames, persons, hw = (4, 2, (120, 160)) if smoke else (300, 6, (1080, 1920))
    cfg = dataclasses.replace(cfg, layout="posetrack18")  # the tracks written below are PoseTrack18
    batch = 16 if smoke else 256
    clip, tracks, ckpt = tmp / "clip.mp4", tmp / "tracks.json", tmp / "ckpt.pth"
    write_clip(clip, tracks, frames, persons, hw)
    torch.manual_seed(0)
    save_checkpoint(ckpt, build_model(cfg), cfg)
    t0 = time.perf_counter()
    n = sum(1 for _ in FrameStream(open_frames(clip, decoder="opencv")))
    decode = time.perf_counter() - t0
    refiner = load_refiner(ckpt, device=str(device), batch_size=batch, backend="torch")
    seq = read_tracks(tracks)
    first = next(iter(open_frames(clip, decoder="opencv").frames()))
    chunk = max(1, -(-batch // persons))
    stack = torch.from_numpy(np.stack([first] * chunk)).to(device)
    refiner.refine_records(stack, [p.replace(frame=0) for p in seq.persons_in(0)], frame_offset=0)  # warm-up
    sync(device)
    t0 = time.perf_counter()  # the network alone: the same chunks of persons, frames already on the device
    for start in range(0, frames, chunk):
        recs = [p.replace(frame=p.frame - start) for f in range(start, min(start + chunk, frames))
                for p in seq.persons_in(f)]
        refiner.refine_records(stack, recs, frame_offset=0)
    sync(device)
    network = time.perf_counter() - t0
    t0 = time.perf_counter()
    s = refine_video(clip, tracks, ckpt, out=tmp / "out.json", decoder="opencv", device=str(device),
                     batch_size=batch, chunk_frames_max=64, backend="torch")
    e2e = time.perf_counter() - t0
    assert n == frames == s.frames
    return {"frames": frames, "persons": frames * persons, "decode": decode, "network": network, "e2e": e2e}


def train_rate(cfg: ModelConfig, device: torch.device, smoke: bool) -> float:
    """Samples/s of full training steps on one fixed batch (data loading excluded)."""
    from posefix_video.keypoints import get_layout
    from posefix_video.train.losses import PoseFixLoss
    from posefix_video.train.run import posefix_prepare

    cuda = device.type == "cuda"
    batch = 2 if smoke else 128
    h, w = cfg.input_size
    torch.manual_seed(0)
    model = build_model(cfg).to(device, memory_format=torch.channels_last if cuda else torch.contiguous_format)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    crit = PoseFixLoss(joint_mask=torch.as_tensor(get_layout(cfg.layout).used_mask)).to(device)
    prepare = posefix_prepare(sigma=cfg.input_sigma, ignored=(), channels_last=cuda)
    kp = torch.rand(batch, 17, 2) * torch.tensor([w - 1.0, h - 1.0])
    valid = torch.ones(batch, 17, dtype=torch.bool)
    data = {"image": torch.randint(0, 256, (batch, h, w, 3), dtype=torch.uint8), "target_keypoints": kp,
            "target_valid": valid, "input_keypoints": kp + 2, "input_valid": valid}
    data = {k: v.to(device) for k, v in data.items()}
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()

    def step():
        x, targets = prepare(data, device)
        with autocast:
            out = model(x)
        loss = crit(out, *targets)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return batch / timed(step, device, 1 if smoke else 3, 1 if smoke else 10)


def ort_vs_torch(cfg: ModelConfig, device: torch.device, smoke: bool, tmp: Path) -> tuple[float, float, str]:
    """(ORT crops/s, torch fp32 eager crops/s, providers) for the network alone; CUDA EP on a GPU."""
    from posefix_video.net.onnx_backend import OnnxRunner, export_network

    torch.manual_seed(0)
    model = build_model(cfg).eval()
    path = export_network(model, cfg, tmp / "net.onnx")
    batch = 2 if smoke else 64
    runner = OnnxRunner.from_file(path, device=device, batch_size=batch)
    model = model.to(device)
    x = torch.randn(batch, model.in_channels, *cfg.input_size, device=device)
    warm, iters = (1, 1) if smoke else (3, 10)
    with torch.inference_mode():
        diff = float((runner(x) - model(x)).abs().max())
        ort_sec = timed(lambda: runner(x), device, warm, iters)
        torch_sec = timed(lambda: model(x), device, warm, iters)
    return batch / ort_sec, batch / torch_sec, f"{', '.join(runner.providers)}; max logit diff {diff:.1e}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="toy sizes on the CPU: checks that every section runs")
    p.add_argument("--device", default=None, help="default: cuda when available (cpu with --smoke)")
    p.add_argument("--budget-s", type=float, default=420.0, help="sections starting after this many seconds are "
                   "skipped (the whole check must fit 8 minutes)")
    p.add_argument("--out", default=None, help="also write the markdown table to this file")
    args = p.parse_args(argv)
    device = torch.device(args.device or ("cpu" if args.smoke or not torch.cuda.is_available() else "cuda"))
    if device.type == "cpu" and not args.smoke:
        print("gpu_check: no CUDA device; run with --smoke for the CPU check", file=sys.stderr)
        return 2
    models = TINY if args.smoke else FULL
    r50 = next(iter(models.values()))
    t_start = time.perf_counter()
    table = Table()
    ceiling = [0.0]

    def section(name: str, fn) -> None:
        if time.perf_counter() - t_start > args.budget_s:
            table.add(name, "-", f"skipped: past the {args.budget_s:.0f} s budget", "-")
            return
        try:
            fn()
        except Exception as err:  # one broken section must not cost the others (device time is scarce)
            traceback.print_exc()
            table.add(name, "-", f"failed: {type(err).__name__}: {str(err)[:160]}", "-")

    def mfu(flops_per_s: float) -> str:
        return f"{flops_per_s / ceiling[0]:.1%}" if ceiling[0] else "n/a"

    def do_ceiling():
        ceiling[0] = matmul_ceiling(device, args.smoke)
        what = "256^3 fp32 (smoke)" if args.smoke else "8192^3 bf16 torch.matmul"
        table.add("matmul ceiling", what, f"{num(ceiling[0] / 1e12)} TFLOP/s", "100% (MFU denominator)")

    section("matmul ceiling", do_ceiling)
    def refiner_rows(compile: bool) -> None:
        for name, cfg in models.items():
            flops = estimate_flops(build_model(cfg), cfg.input_size)
            persons = 4 if args.smoke else (256 if cfg.depth == 50 else 128)
            label = f"{name}, flip, {'bf16+CL' if device.type == 'cuda' else 'fp32'}, " + \
                ("torch.compile" if compile else "eager") + f", {persons} persons/call"

            def run(cfg=cfg, label=label, flops=flops, persons=persons):
                if compile and args.smoke:
                    table.add("refiner", label, "skipped in --smoke (compile takes minutes on a CPU)", "-")
                    return
                rate = refiner_rate(cfg, device, compile, persons, args.smoke)
                table.add("refiner persons/s", label, f"{num(rate)} persons/s", mfu(rate * 2 * flops))

            section("refiner persons/s", run)

    refiner_rows(compile=False)

    def do_video():
        with tempfile.TemporaryDirectory() as tmp:
            r = refine_video_1080p(r50, device, args.smoke, Path(tmp))
        slowest = max(r["decode"], r["network"])
        size = "160x120" if args.smoke else "1920x1080"
        table.add("refine_video 1080p", f"{r['frames']} frames {size}, {r['persons']} persons, "
                  f"{next(iter(models))} random weights, batch {16 if args.smoke else 256}, opencv decoder",
                  f"decode {r['decode']:.2f} s, network {r['network']:.2f} s, end-to-end "
                  f"{r['e2e']:.2f} s ({num(r['persons'] / r['e2e'])} persons/s)",
                  f"e2e / slowest stage {r['e2e'] / slowest:.2f}")

    section("refine_video 1080p", do_video)

    def do_train():
        flops = estimate_flops(build_model(r50), r50.input_size)
        rate = train_rate(r50, device, args.smoke)
        table.add("training", f"{next(iter(models))}, batch {2 if args.smoke else 128}, "
                  f"{'bf16+CL' if device.type == 'cuda' else 'fp32'}", f"{num(rate)} samples/s",
                  mfu(rate * 3 * flops))

    section("training", do_train)

    def do_ort():
        from posefix_video.net.onnx_backend import BackendError

        with tempfile.TemporaryDirectory() as tmp:
            try:
                ort_rate, torch_rate, how = ort_vs_torch(r50, device, args.smoke, Path(tmp))
            except BackendError as err:
                table.add("ONNX Runtime vs torch", f"{next(iter(models))} fp32", f"n/a: {err}", "-")
                return
        table.add("ONNX Runtime vs torch", f"{next(iter(models))} fp32 network, {how}",
                  f"ORT {num(ort_rate)} crops/s, torch eager {num(torch_rate)} crops/s",
                  f"ORT / torch {ort_rate / torch_rate:.2f}")

    section("ONNX Runtime vs torch", do_ort)
    refiner_rows(compile=True)  # last: compiling takes minutes, and the budget check skips what no longer fits
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    text = (f"gpu_check on {name}, torch {torch.__version__}, {time.perf_counter() - t_start:.0f} s"
            f"{' (--smoke)' if args.smoke else ''}\n\n{table.markdown()}")
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
