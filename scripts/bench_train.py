"""Training throughput: samples/s and FLOP utilisation of PoseFix training steps, data loading excluded/included.

GPU (the numbers that matter; bf16 autocast, channels_last):
    python scripts/bench_train.py --configs r50_256x192 r152_384x288 --batch 64 128
CPU smoke run with a tiny model:
    python scripts/bench_train.py --configs tiny --batch 8 --iters 3 --device cpu
"Data included" feeds uint8 crops + keypoints through a DataLoader (workers decode nothing: in-memory random crops),
so it measures collation, IPC, host->device copies and on-device input rendering, not JPEG decoding.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader, Dataset

from posefix_video.config import ModelConfig
from posefix_video.keypoints import get_layout
from posefix_video.net.model import build_model, estimate_flops
from posefix_video.train.losses import PoseFixLoss
from posefix_video.train.run import posefix_prepare
from posefix_video.train.runtime import peak_flops

CONFIGS = {
    "r50_256x192": ModelConfig(depth=50, input_size=(256, 192)),
    "r152_384x288": ModelConfig(depth=152, input_size=(384, 288)),
    "tiny": ModelConfig(depth=18, input_size=(128, 96), width=16, deconv_channels=32),
}


class RandomCrops(Dataset):
    def __init__(self, n: int, h: int, w: int):
        self.n, self.h, self.w = n, h, w

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        kp = torch.rand(17, 2, generator=g) * torch.tensor([self.w - 1.0, self.h - 1.0])
        v = torch.ones(17, dtype=torch.bool)
        return {"image": torch.randint(0, 256, (self.h, self.w, 3), dtype=torch.uint8, generator=g),
                "target_keypoints": kp, "target_valid": v, "input_keypoints": kp + 2, "input_valid": v}


def bench(name: str, batch: int, iters: int, device: torch.device, workers: int) -> None:
    cfg = CONFIGS[name]
    h, w = cfg.input_size
    use_cuda = device.type == "cuda"
    model = build_model(cfg).to(device, memory_format=torch.channels_last if use_cuda else torch.contiguous_format)
    flops = estimate_flops(model, cfg.input_size)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    crit = PoseFixLoss(joint_mask=torch.as_tensor(get_layout(cfg.layout).used_mask)).to(device)
    prepare = posefix_prepare(sigma=cfg.input_sigma, ignored=(), channels_last=use_cuda)
    dtype = torch.bfloat16 if use_cuda else None
    loader = DataLoader(RandomCrops(batch * (iters + 2), h, w), batch_size=batch, num_workers=workers,
                        pin_memory=use_cuda, drop_last=True)

    def step(batch_data):
        x, targets = prepare(batch_data, device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out = model(x)
        loss = crit(out, *targets)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sync():
        if use_cuda:
            torch.cuda.synchronize()

    fixed = next(iter(loader))
    fixed = {k: v.to(device) for k, v in fixed.items()}
    for _ in range(2):
        step(fixed)
    sync()
    t = time.perf_counter()
    for _ in range(iters):
        step(fixed)
    sync()
    excl = batch * iters / (time.perf_counter() - t)
    it = iter(loader)
    step(next(it))
    sync()
    t = time.perf_counter()
    n = 0
    for b in it:
        step(b)
        n += 1
    sync()
    incl = batch * n / (time.perf_counter() - t)
    peak = peak_flops(device)
    util = (lambda s: f"{3 * flops * s / peak:.1%}") if peak else (lambda s: "n/a")
    print(f"{name:14s} batch {batch:4d}  fwd {flops / 1e9:6.2f} GFLOP  data excluded {excl:8.1f} samples/s "
          f"(FLOP util {util(excl)})  data included {incl:8.1f} samples/s (FLOP util {util(incl)})  "
          f"ratio incl/excl {incl / excl:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["r50_256x192", "r152_384x288"], choices=sorted(CONFIGS))
    p.add_argument("--batch", nargs="+", type=int, default=[64, 128])
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    device = torch.device(args.device)
    print(f"device {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, torch {torch.__version__}")
    for name in args.configs:
        for b in args.batch:
            bench(name, b, args.iters, device, args.workers)


if __name__ == "__main__":
    main()
