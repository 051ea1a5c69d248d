"""Decode a training recipe's images once: `python -m pipelines.build_image_bank --config RECIPE [key=value ...]`.

Writes the bank to the recipe's data.image_bank folder (or --out, then set data.image_bank to it); training with
data.image_bank set crops from it instead of decoding JPEGs per sample. See docs/training_data.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from posefix_video.cli import check_outputs, run_cli


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipelines.build_image_bank",
        description="Decode every train (and val) image of a training recipe once into a memory-mapped image bank. "
                    "JPEG decode is most of a training sample's CPU cost and a COCO epoch decodes each image ~2.65 "
                    "times; with the bank the loader only warps. Needs the decoded size on disk (COCO train2017: "
                    "~47 GB). Rebuild after the images change: training refuses a stale bank.",
        epilog="examples:\n"
               "  python -m pipelines.build_image_bank --config configs/coco_r50_256x192.yaml "
               "data.image_bank=/data/bank/coco --workers 14\n"
               "  python -m pipelines.build_image_bank --config configs/tiny_synthetic.yaml --out /tmp/bank",
        formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--config", required=True, help="training recipe (YAML)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. data.image_bank=/x")
    p.add_argument("--out", default=None, help="bank folder (default: the recipe's data.image_bank)")
    p.add_argument("--splits", default="train,val", help="which splits' images (default: train,val)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="decoding processes (0: this one)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    return run_cli(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from posefix_video.errors import ConfigError
    from posefix_video.train.config import load_train_config
    from posefix_video.train.data import ImageBank, load_split_persons

    cfg = load_train_config(args.config, args.overrides)
    out = args.out or cfg.data.image_bank
    if not out:
        raise ConfigError("no bank folder: give --out or set data.image_bank in the recipe or as an override")
    check_outputs(inputs=[args.config, *(p for p in (cfg.data.train_images, cfg.data.val_images) if p)],
                  outputs={}, folders={"--out": out})
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    paths = set()
    for split in splits:
        if split == "val" and not cfg.data.val_ann:
            continue
        paths |= {p.image_path for p in load_split_persons(cfg, split)}
    t0 = time.perf_counter()
    bank = ImageBank.build(out, paths, workers=args.workers, progress=True)
    print(f"image bank {out}: {len(bank)} images, {bank.nbytes / 1e9:.2f} GB, "
          f"{time.perf_counter() - t0:.1f} s; train with data.image_bank={out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
