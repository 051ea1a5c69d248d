"""Time the import of an R-152-sized TF PoseFix checkpoint (the size of the authors' released models).

    python scripts/bench_import.py [--workdir /tmp/posefix_bench_import] [--optimizer]

Writes a synthetic TF V2 bundle with the official ResNet-152 PoseFix variable names and shapes (random values,
about 275 MB; with --optimizer also the Adam slots, beta powers and learning rate of a training snapshot, 3x the
size) using tests/tf_writer.py, then times what `python -m pipelines.import_weights posefix-tf` does: open and
parse the index, read the model tensors, check their crc32c, convert, save our checkpoint. Prints seconds and MB/s
per stage; the target is under 30 s for the whole import. The files are removed afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from posefix_video.config import ModelConfig  # noqa: E402
from posefix_video.net.model import build_model  # noqa: E402
from posefix_video.net.model_store import save_model  # noqa: E402
from posefix_video.net.posefix_tf import _tf_shape, convert_posefix_tf, name_map  # noqa: E402
from posefix_video.net.tf_checkpoint import TFCheckpoint  # noqa: E402
from tests.tf_writer import write_tf_checkpoint  # noqa: E402


def synthetic_tensors(depth: int, optimizer: bool, seed: int = 0) -> dict[str, np.ndarray]:
    """TF-named random tensors of the official PoseFix ResNet-`depth` graph (+ training-snapshot extras)."""
    with torch.device("meta"):
        model = build_model(ModelConfig(depth=depth, input_size=(384, 288)))
    ours = model.state_dict()
    rng = np.random.default_rng(seed)
    tensors = {}
    for tf, key in name_map(model).items():
        tensors[tf] = rng.standard_normal(_tf_shape(ours[key]), dtype=np.float32)
    if optimizer:
        for tf in [n for n in tensors if n.endswith(("/weights", "/biases", "/gamma", "/beta"))]:
            tensors[tf + "/Adam"] = np.zeros_like(tensors[tf])
            tensors[tf + "/Adam_1"] = np.zeros_like(tensors[tf])
        tensors.update(beta1_power=np.float32(0.5), beta2_power=np.float32(0.5), Variable=np.float32(5e-5))
    return tensors


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", default="/tmp/posefix_bench_import", help="where the synthetic bundle goes")
    p.add_argument("--depth", type=int, default=152, choices=[50, 101, 152])
    p.add_argument("--optimizer", action="store_true", help="add Adam slots etc. (a training snapshot)")
    p.add_argument("--keep", action="store_true", help="keep the files")
    args = p.parse_args(argv)
    work = Path(args.workdir)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    try:
        t = time.perf_counter()
        tensors = synthetic_tensors(args.depth, args.optimizer)
        prefix = write_tf_checkpoint(work / "snapshot_140.ckpt", tensors)
        del tensors
        print(f"wrote the synthetic bundle in {time.perf_counter() - t:.1f} s")
        ckpt = TFCheckpoint(prefix)
        model_bytes = sum(e.size for n, e in ckpt.entries.items() if "Adam" not in n)
        total_bytes = sum(e.size for e in ckpt.entries.values())
        mb = model_bytes / 1e6
        print(f"bundle: {len(ckpt.entries)} tensors, {total_bytes / 1e6:.1f} MB on disk, model tensors {mb:.1f} MB")

        t0 = time.perf_counter()
        TFCheckpoint(prefix).read([n for n in ckpt.entries if "Adam" not in n], check_crc=False)
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        imported = convert_posefix_tf(prefix, dataset="coco", input_size=(384, 288))
        t_convert = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = work / "imported.pth"
        save_model(imported.model, imported.cfg, imported.contract, imported.source, out=out)
        t_save = time.perf_counter() - t0
        total = t_convert + t_save
        print(f"read model tensors without crc: {t_read:6.2f} s  {mb / t_read:7.1f} MB/s")
        print(f"read + crc32c + convert:        {t_convert:6.2f} s  {mb / t_convert:7.1f} MB/s")
        print(f"save our checkpoint:            {t_save:6.2f} s  {mb / t_save:7.1f} MB/s")
        print(f"import total:                   {total:6.2f} s  {mb / total:7.1f} MB/s  (target < 30 s)")
        print(f"skipped: {imported.report.skipped or 'nothing'}; {imported.report.params:,} parameters")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
